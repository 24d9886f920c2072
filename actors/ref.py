"""`ActorRef`: the handle senders hold to talk to one actor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from actors.cell import ActorCell, running_cell
from actors.deadletters import DeadLetterReason
from actors.errors import (
    ActorStopped,
    AskTimeout,
    DeadlineExpired,
    MailboxFull,
    ReentrantAsk,
    UnknownMessage,
)
from actors.message import NO_ARGS, Message, _current_message, current_context


class ActorRef:
    """A handle on one actor incarnation chain at one address.

    A ref stays bound to the actor it was obtained for: once that actor stopped, its ref
    never reaches a new actor spawned later at the same address (look that one up again).
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    @property
    def address(self) -> str:
        return self._cell.address

    @property
    def is_alive(self) -> bool:
        """False once the actor stopped accepting messages (stopping or stopped)."""
        return not self._cell.mailbox.closed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)

    def __repr__(self) -> str:
        return f"ActorRef({self._cell.address!r}, alive={self.is_alive})"

    async def tell(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        context: Any = None,
        wait: bool = True,
    ) -> None:
        """Send without waiting for the handler. Returns once the message is queued.

        A full mailbox makes this wait for room, in arrival order, until `deadline` (absolute
        `time.monotonic()`; `DeadlineExpired` after it); with `wait=False` it raises
        `MailboxFull` at once instead. To a stopped actor the message goes to the dead
        letters. `context` defaults to the context of the message being handled, if any.
        Raises `UnknownMessage` when the actor has no such handler. On cancellation the
        message is not queued.
        """
        cell = self._cell
        if method not in cell.handlers:
            raise UnknownMessage(address=cell.address, method=method)
        message = Message(
            method,
            NO_ARGS if args is None else args,
            deadline,
            current_context() if context is None else context,
        )
        if cell.mailbox.closed:
            cell.dead_letter(message, DeadLetterReason.STOPPED)
            return
        if cell.deliver(message):
            return
        if not wait or cell.in_own_task():
            # An actor waiting for room in its own mailbox would wait for itself forever.
            raise MailboxFull(address=cell.address, capacity=cell.mailbox.capacity)
        if deadline is None:
            delivered = await cell.deliver_waiting(message)
        else:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    delivered = await cell.deliver_waiting(message)
            except TimeoutError:
                raise DeadlineExpired(address=cell.address, method=method) from None
        if not delivered:
            cell.dead_letter(message, DeadLetterReason.STOPPED)

    async def ask(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        context: Any = None,
        start_deadline: float | None = None,
    ) -> Any:
        """Send and wait for the handler's return value.

        The wait ends at `deadline` (absolute `time.monotonic()`) or after `timeout` seconds,
        whichever comes first, with `AskTimeout`; the message carries that deadline, so an
        actor that reaches it too late skips it. `start_deadline` instead bounds only the
        start: a message not started by then is skipped (`DeadlineExpired`), but one that
        started is waited for until it finishes — what a caller needs that must not report
        (or acknowledge) before the effect is complete. The handler's `VirtactorError` is raised
        here as is, any other exception as `HandlerFailed`. Raises `ActorStopped` when the
        actor is or gets stopped before answering, `UnknownMessage` for a method it has no
        handler for, `ReentrantAsk` when an actor asks itself. When the asker is cancelled
        the handler still runs if it already started or has no deadline; its answer is
        discarded.
        """
        cell = self._cell
        if method not in cell.handlers:
            raise UnknownMessage(address=cell.address, method=method)
        if running_cell.get() is cell and cell.in_own_task():
            raise ReentrantAsk(address=cell.address, method=method)
        if timeout is not None:
            limit = time.monotonic() + timeout
            if deadline is None or limit < deadline:
                deadline = limit
        if context is None:
            current = _current_message.get()
            context = None if current is None else current.context
        reply: asyncio.Future[Any] = asyncio.Future(loop=asyncio.get_running_loop())
        if start_deadline is not None:
            if deadline is not None:
                raise ValueError("ask takes a deadline or a start_deadline, not both")
            message = Message(
                method, NO_ARGS if args is None else args, start_deadline, context, reply
            )
            if not cell.deliver(message) and not await cell.deliver_waiting(message):
                cell.dead_letter(message, DeadLetterReason.STOPPED)
                raise ActorStopped(address=cell.address)
            return await reply
        message = Message(method, NO_ARGS if args is None else args, deadline, context, reply)
        if cell.mailbox.closed:
            cell.dead_letter(message, DeadLetterReason.STOPPED)
            raise ActorStopped(address=cell.address)
        if deadline is None:
            if not cell.deliver(message) and not await cell.deliver_waiting(message):
                cell.dead_letter(message, DeadLetterReason.STOPPED)
                raise ActorStopped(address=cell.address)
            return await reply
        budget = deadline - time.monotonic()
        limit_scope = asyncio.timeout(budget)
        try:
            async with limit_scope:
                if not cell.deliver(message) and not await cell.deliver_waiting(message):
                    cell.dead_letter(message, DeadLetterReason.STOPPED)
                    raise ActorStopped(address=cell.address)
                return await reply
        except TimeoutError:
            if limit_scope.expired():
                raise AskTimeout(
                    address=cell.address, method=method, timeout=max(budget, 0.0)
                ) from None
            raise
