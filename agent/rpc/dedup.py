"""De-duplication of requests by message id, so a redelivered request never runs twice.

A broker redelivers a request whose acknowledgement was lost (consumer crash, connection cut,
failover); a client re-sends a call after reconnecting. Both carry the original message id. The
first delivery runs; a duplicate that arrives while it runs waits for the same result; one that
arrives later gets the cached reply. Entries expire after `ttl` seconds and the cache holds at
most `capacity` finished entries (oldest evicted first), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    result: asyncio.Future[bytes | None]
    finished_at: float | None = None


class ReplyCache:
    """Runs each message id's work once and remembers its encoded reply."""

    def __init__(
        self,
        capacity: int = 10_000,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def run_once(
        self, message_id: str, work: Callable[[], Awaitable[bytes | None]]
    ) -> tuple[bytes | None, bool]:
        """Run `work` unless `message_id` ran (or runs) already; returns (reply, was_duplicate).

        If `work` raises, nothing is remembered, so a redelivery runs it again. Cancelling the
        first runner cancels the shared work; waiting duplicates then see `CancelledError` too.
        """
        self._expire()
        entry = self._entries.get(message_id)
        if entry is not None:
            self.duplicates += 1
            return await asyncio.shield(entry.result), True
        entry = _Entry(asyncio.get_running_loop().create_future())
        self._entries[message_id] = entry
        try:
            reply = await work()
        except BaseException as exc:
            del self._entries[message_id]
            if isinstance(exc, asyncio.CancelledError):
                entry.result.cancel()
            else:
                entry.result.set_exception(exc)
                entry.result.exception()  # consumed here: waiters re-raise their own copy
            raise
        entry.result.set_result(reply)
        entry.finished_at = self._clock()
        self._entries.move_to_end(message_id)
        self._evict()
        return reply, False

    def _expire(self) -> None:
        horizon = self._clock() - self.ttl
        while self._entries:
            oldest_id, oldest = next(iter(self._entries.items()))
            if oldest.finished_at is None or oldest.finished_at > horizon:
                return
            del self._entries[oldest_id]

    def _evict(self) -> None:
        while len(self._entries) > self.capacity:
            oldest_id, oldest = next(iter(self._entries.items()))
            if oldest.finished_at is None:
                return  # never drop work in progress; its duplicates must still find it
            del self._entries[oldest_id]
