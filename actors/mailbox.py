"""A bounded mailbox with back-pressure that costs next to nothing while empty.

The queue is a plain deque, created on the first message and dropped again when the actor
goes idle, so an idle actor holds no deque, no task and no waiter. Senders that find it full
either wait for room, in arrival order, or are refused at once; nothing is ever dropped here.
"""

from __future__ import annotations

import asyncio
from collections import deque

from actors.message import Message


class Mailbox:
    """The queue of one actor. Not thread-safe: used from its event loop only."""

    __slots__ = ("_putters", "_queue", "_reserved", "capacity", "closed")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.closed = False
        self._queue: deque[Message] | None = None
        # Senders waiting for room, oldest first; `_reserved` counts slots promised to
        # senders already woken but not yet run, so a newcomer cannot take their place.
        self._putters: deque[asyncio.Future[None]] | None = None
        self._reserved = 0

    def __len__(self) -> int:
        return 0 if self._queue is None else len(self._queue)

    def has_room(self) -> bool:
        """True when a new sender may enqueue now without overtaking a waiting one."""
        return not self._putters and len(self) + self._reserved < self.capacity

    def put_nowait(self, message: Message) -> bool:
        """Enqueue if there is room now; False when full. The caller checks `closed` first."""
        # has_room() and _append() inlined: this runs for every message sent.
        queue = self._queue
        if queue is None:
            if self._putters or self._reserved >= self.capacity:
                return False
            self._queue = queue = deque()
        elif self._putters or len(queue) + self._reserved >= self.capacity:
            return False
        queue.append(message)
        return True

    def push(self, message: Message) -> None:
        """Enqueue past the capacity: only for the runtime's own messages, which must land."""
        self._append(message)

    async def put(self, message: Message) -> bool:
        """Wait for room, then enqueue; False when the mailbox is or gets closed.

        Waiting senders are served in arrival order. On cancellation (the caller's deadline
        or task) the message is not enqueued and any room promised to this sender passes on.
        """
        if self.closed:
            return False
        if self.has_room():
            self._append(message)
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._putters is None:
            self._putters = deque()
        self._putters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Woken, then cancelled before running: hand the promised slot on.
                self._reserved -= 1
                self._wake_putter()
            elif self._putters is not None and waiter in self._putters:
                self._putters.remove(waiter)
            raise
        self._reserved -= 1
        if self.closed:
            return False
        self._append(message)
        return True

    def pop(self) -> Message | None:
        """The oldest message, or None when empty. Wakes one waiting sender per freed slot."""
        queue = self._queue
        if not queue:
            return None
        message = queue.popleft()
        if self._putters:
            self._wake_putter()
        return message

    def release_if_empty(self) -> None:
        """Drop the empty deque so an idle actor holds none (about 600 bytes each)."""
        if self._queue is not None and not self._queue and not self._putters:
            self._queue = None

    def close(self) -> None:
        """Refuse new messages from now on; waiting senders wake and see `closed`."""
        self.closed = True
        putters, self._putters = self._putters, None
        while putters:
            waiter = putters.popleft()
            if not waiter.done():
                self._reserved += 1
                waiter.set_result(None)

    def drain(self) -> list[Message]:
        """Remove and return every queued message (used when the actor stops)."""
        queue, self._queue = self._queue, None
        return list(queue) if queue else []

    def _append(self, message: Message) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(message)

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters and len(self) + self._reserved < self.capacity:
            waiter = putters.popleft()
            if not waiter.done():
                self._reserved += 1
                waiter.set_result(None)
