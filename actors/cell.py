"""The runtime side of one actor: its mailbox, its drain task, supervision and stopping.

An idle actor has no task. The first message starts a drain task that handles queued
messages one by one, in arrival order, and ends when the mailbox is empty again; at most
one drain task exists per actor, which is what serialises its handlers.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Callable
from contextvars import ContextVar
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any

from actors.actor import Actor
from actors.deadletters import DeadLetterReason
from actors.errors import ActorStopped, DeadlineExpired, HandlerFailed, UnknownMessage
from actors.handlers import HandlerFunction
from actors.mailbox import Mailbox
from actors.message import Message, _current_message
from actors.stats import ActorStats
from actors.supervision import ActorFailure, RestartStrategy, restart_delay
from schemas.errors import VirtactorError

if TYPE_CHECKING:
    from actors.system import ActorSystem

_log = logging.getLogger(__name__)

CHILD_FAILED = "__child_failed__"

running_cell: ContextVar[ActorCell | None] = ContextVar("virtactor_running_cell", default=None)


async def _child_failed(actor: Actor, failure: ActorFailure) -> None:
    await actor.on_child_failed(failure)


# Messages the runtime itself sends; their names cannot be declared with @handler.
_RUNTIME_HANDLERS: dict[str, HandlerFunction] = {CHILD_FAILED: _child_failed}


class ActorCell:
    """Everything the runtime keeps for one actor. Internal: callers hold an `ActorRef`."""

    __slots__ = (
        "_backing_off",
        "_restart_times",
        "_started",
        "actor",
        "address",
        "factory",
        "handlers",
        "mailbox",
        "parent",
        "stats",
        "stop_task",
        "stopped",
        "strategy",
        "system",
        "task",
    )

    def __init__(
        self,
        system: ActorSystem,
        address: str,
        actor: Actor,
        factory: Callable[[], Actor] | None,
        capacity: int,
        strategy: RestartStrategy,
        parent: str | None,
    ) -> None:
        self.system = system
        self.address = address
        self.factory = factory
        self.strategy = strategy
        self.parent = parent
        self.mailbox = Mailbox(capacity)
        self.stats = ActorStats(self.mailbox)
        self.task: asyncio.Task[None] | None = None
        self.stop_task: asyncio.Task[None] | None = None
        self.stopped = False
        self._restart_times: list[float] | None = None
        self._backing_off = False
        self._bind(actor)
        # An actor without its own on_start needs no task until its first message.
        self._started = type(actor).on_start is Actor.on_start
        if not self._started:
            self._start_task()

    def _bind(self, actor: Actor) -> None:
        actor.system = self.system
        actor.address = self.address
        self.actor = actor
        self.handlers = type(actor).handlers

    # -- sending side (called by ActorRef) ----------------------------------------------

    def deliver(self, message: Message) -> bool:
        """Enqueue now if there is room; False when full. The caller checks `closed` first."""
        if self.mailbox.put_nowait(message):
            if self.task is None:
                self._start_task()
            return True
        return False

    async def deliver_waiting(self, message: Message) -> bool:
        """Wait for room and enqueue; False when the actor stopped meanwhile."""
        if not await self.mailbox.put(message):
            return False
        if self.task is None:
            self._start_task()
        return True

    def deliver_runtime(self, message: Message) -> None:
        """Enqueue a runtime message past the capacity (it must not be lost to back-pressure)."""
        self.mailbox.push(message)
        if self.task is None:
            self._start_task()

    def in_own_task(self) -> bool:
        """True when called from this actor's own handler (its drain task)."""
        return running_cell.get() is self and self.task is asyncio.current_task()

    def dead_letter(self, message: Message, reason: DeadLetterReason) -> None:
        self.system.dead_letters.record(self.address, message, reason)

    def _start_task(self) -> None:
        self.task = self.system._start_task(self._drain(), self.address)

    # -- the drain task -----------------------------------------------------------------

    async def _drain(self) -> None:
        running_cell.set(self)  # this task's context is its own (see ActorSystem)
        try:
            if self._started or await self._start():
                await self._handle_queued()
        finally:
            self.task = None
            self.mailbox.release_if_empty()

    async def _handle_queued(self) -> None:  # noqa: PLR0915 (one inlined hot loop)
        """Handle messages until the mailbox is empty (or the actor gave up restarting)."""
        # The hot path of every message: handling is inlined here rather than split into
        # helper coroutines (a coroutine object per message), and what the loop touches per
        # message is held in locals (refreshed when a restart swaps the actor).
        mailbox = self.mailbox
        set_message, reset_message = _current_message.set, _current_message.reset
        actor, handlers = self.actor, self.handlers
        latency = self.stats.latency_or_new()
        bounds, counts = latency.bounds, latency.counts
        first_bound = bounds[0]
        lingered = False
        while True:
            message = mailbox.pop()
            if message is None:
                if lingered or mailbox.closed:
                    return
                # A sender just answered usually sends again within this turn of the
                # loop: yielding once and reusing this task beats starting a new one.
                lingered = True
                await asyncio.sleep(0)
                continue
            lingered = False
            deadline = message.deadline
            if deadline is not None and monotonic() >= deadline:
                self._expire(message)
                continue
            function = handlers.get(message.method)
            if function is None:
                function = _RUNTIME_HANDLERS.get(message.method)
                if function is None:
                    self._unknown(message)
                    continue
            token = set_message(message)
            started = perf_counter()
            try:
                result = await function(actor, **message.args)
            except asyncio.CancelledError as exc:
                crash = self._cancelled(message, exc)
            except Exception as exc:
                crash = self._failed(message, exc)
            else:
                crash = None
                reply = message.reply
                if reply is not None and not reply.done():
                    reply.set_result(result)
            finally:
                reset_message(token)
                elapsed = perf_counter() - started
                # ActorStats.observe, inlined; most handlers land in the first bucket.
                if elapsed <= first_bound:
                    counts[0] += 1
                else:
                    counts[bisect_left(bounds, elapsed)] += 1
                latency.sum += elapsed
            if crash is not None:
                if not await self._restart(crash):
                    return
                actor, handlers = self.actor, self.handlers

    def _cancelled(self, message: Message, exc: asyncio.CancelledError) -> BaseException | None:
        task = self.task
        if task is not None and task.cancelling():
            # The actor itself is being cancelled (stop timed out): propagate.
            self._answer_error(message, ActorStopped(address=self.address))
            raise exc
        # Raised by something the handler awaited, not aimed at the actor: that handler's
        # failure, like any other exception.
        return self._failed(message, exc)

    def _answer_error(self, message: Message, error: BaseException) -> None:
        reply = message.reply
        if reply is not None and not reply.done():
            reply.set_exception(error)

    def _expire(self, message: Message) -> None:
        self.stats.expired += 1
        self.dead_letter(message, DeadLetterReason.EXPIRED)
        self._answer_error(message, DeadlineExpired(address=self.address, method=message.method))

    def _unknown(self, message: Message) -> None:
        # Only reachable when a restart swapped in an actor of another class: senders
        # check the method against the handler table before enqueueing.
        error = UnknownMessage(address=self.address, method=message.method)
        _log.warning("%s", error, extra={"actor": self.address, "context": message.context})
        self._answer_error(message, error)

    def _failed(self, message: Message, exc: BaseException) -> BaseException | None:
        self.stats.failed += 1
        typed = isinstance(exc, VirtactorError)
        if message.reply is not None and typed:
            _log.debug("%s %s failed: %s", self.address, message.method, exc)
        else:
            # A foreign exception is a bug worth a traceback; a typed one sent by tell
            # reaches nobody else, so it is logged too.
            _log.log(
                logging.WARNING if typed else logging.ERROR,
                "%s handler %s failed: %r",
                self.address,
                message.method,
                exc,
                exc_info=None if typed else exc,
                extra={"actor": self.address, "method": message.method, "context": message.context},
            )
        if message.reply is not None:
            error = exc if typed else _wrap(self.address, message.method, exc)
            self._answer_error(message, error)
        return exc if isinstance(exc, self.strategy.fatal) else None

    # -- supervision --------------------------------------------------------------------

    async def _start(self) -> bool:
        """Run `on_start`, restarting per the strategy; False when the actor gave up."""
        while True:
            try:
                await self.actor.on_start()
            except Exception as exc:
                _log.error("%s crashed in on_start: %r", self.address, exc, exc_info=exc)
                if not await self._backoff(exc):
                    return False
                continue
            self._started = True
            return True

    async def _restart(self, crash: BaseException) -> bool:
        """End the crashed incarnation and start a new one; False when the actor gave up."""
        await self._run_on_stop(self.system.stop_timeout)  # a hung on_stop must not freeze it
        if not await self._backoff(crash):
            return False
        return await self._start()

    async def _backoff(self, crash: BaseException) -> bool:
        """Wait the back-off and make the next incarnation; False when giving up or stopping."""
        while True:
            if self.mailbox.closed:
                return False  # stopping: a new incarnation would only be stopped again
            now = monotonic()
            window = self.strategy.window
            recent = [when for when in self._restart_times or () if now - when < window]
            delay = restart_delay(self.strategy, recent, now)
            if delay is None:
                self._give_up(crash)
                return False
            self._restart_times = [*recent, now]
            self.stats.restarts += 1
            _log.warning(
                "%s restarting in %.3fs (restart %d in %.0fs window) after %r",
                self.address,
                delay,
                len(self._restart_times),
                window,
                crash,
                extra={"actor": self.address},
            )
            self._backing_off = True
            try:
                await asyncio.sleep(delay)
            finally:
                self._backing_off = False
            if self.factory is None:
                return True  # spawned from an instance: the same object starts again
            try:
                self._bind(self.factory())
            except Exception as exc:
                _log.error("%s factory failed: %r", self.address, exc, exc_info=exc)
                crash = exc
                continue
            return True

    def _give_up(self, crash: BaseException) -> None:
        self.mailbox.close()
        self._fail_pending()
        self.stopped = True
        self.system._gave_up(self, ActorFailure(self.address, crash, self.stats.restarts))

    # -- stopping -----------------------------------------------------------------------

    async def stop(self, timeout: float) -> None:
        """Refuse new messages, let queued and in-flight ones finish within `timeout`, cancel
        what is left, then run `on_stop` (bounded by `timeout` again). Runs in its own task.
        """
        self.mailbox.close()
        task = self.task
        if task is not None:
            if self._backing_off:
                task.cancel()
            if not await _finished(task, timeout):
                _log.warning("%s still busy after %.3fs; cancelling it", self.address, timeout)
                task.cancel()
                if not await _finished(task, timeout):
                    _log.error("%s ignores cancellation; on_stop skipped", self.address)
        self._fail_pending()
        if self.task is None:
            await self._run_on_stop(timeout)
        self.stopped = True
        self.system._forget(self)

    def _fail_pending(self) -> None:
        for message in self.mailbox.drain():
            self.dead_letter(message, DeadLetterReason.STOPPED)
            self._answer_error(message, ActorStopped(address=self.address))

    async def _run_on_stop(self, timeout: float | None) -> None:
        if not self._started:
            return
        self._started = False
        limit = asyncio.timeout(timeout)
        try:
            async with limit:
                await self.actor.on_stop()
        except TimeoutError as exc:
            if not limit.expired():
                _log.error("%s on_stop failed: %r", self.address, exc, exc_info=exc)
            else:
                _log.error("%s on_stop did not finish within %.3fs", self.address, timeout)
        except Exception as exc:
            _log.error("%s on_stop failed: %r", self.address, exc, exc_info=exc)


def _wrap(address: str, method: str, exc: BaseException) -> HandlerFailed:
    error = HandlerFailed(
        address=address, method=method, exc_type=type(exc).__name__, exc_message=str(exc)
    )
    error.__cause__ = exc
    return error


async def _finished(task: asyncio.Task[Any], timeout: float) -> bool:
    done, _ = await asyncio.wait({task}, timeout=timeout)
    return bool(done)
