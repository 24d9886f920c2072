"""`ActorSystem`: the registry of a process's actors, and the owner of their tasks."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any

from actors.actor import Actor
from actors.addresses import address_kind
from actors.blocking import BlockingExecutor
from actors.cell import CHILD_FAILED, ActorCell
from actors.deadletters import DeadLetterReason, DeadLetters
from actors.errors import ActorAlreadyExists, ActorNotFound, ActorStopped
from actors.message import NO_ARGS, Message, current_context
from actors.ref import ActorRef
from actors.stats import ActorStats, RetiredStats, SystemStats
from actors.supervision import ActorFailure, RestartStrategy

_log = logging.getLogger(__name__)

ActorFactory = Callable[[], Actor]


class ActorSystem:
    """Spawns, finds and stops actors; owns every task they run on.

    `executor` is the process's one pool for blocking calls (`self.system.executor` inside
    an actor); the system uses it but does not shut it down. `mailbox_capacity` and
    `restart_strategy` are defaults for actors that set none. `on_give_up` is called with
    the `ActorFailure` of every actor that crashed past its strategy and stopped.

    Use it as `async with ActorSystem(...) as system:` or call `aclose()`: afterwards no task
    of the system is left. Like asyncio itself it is not thread-safe: use it from its loop.
    """

    def __init__(
        self,
        *,
        executor: BlockingExecutor,
        mailbox_capacity: int = 1000,
        restart_strategy: RestartStrategy | None = None,
        stop_timeout: float = 10.0,
        dead_letters: DeadLetters | None = None,
        on_give_up: Callable[[ActorFailure], None] | None = None,
    ) -> None:
        self.executor = executor
        self.mailbox_capacity = mailbox_capacity
        self.restart_strategy = restart_strategy or RestartStrategy()
        self.stop_timeout = stop_timeout
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self.stats = SystemStats()
        self._on_give_up = on_give_up
        self._cells: dict[str, ActorCell] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> ActorSystem:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the registry ---------------------------------------------------------------------

    def spawn(
        self,
        address: str,
        actor: Actor | ActorFactory,
        *,
        mailbox_capacity: int | None = None,
        restart_strategy: RestartStrategy | None = None,
        parent: str | None = None,
    ) -> ActorRef:
        """Create an actor at `address` and return its ref; its `on_start` runs before its
        first message, in the actor's own task.

        Pass a factory (the class itself, or any callable returning an `Actor`) so that a
        restart starts from fresh state; an instance is restarted as is. `parent` is the
        address of the actor told (`on_child_failed`) if this one gives up restarting.
        Raises `ActorAlreadyExists` when the address is taken (a stopping actor holds its
        address until its `on_stop` has finished), `ActorStopped` after `aclose()`.
        """
        if self._closed:
            raise ActorStopped(address=address)
        if address in self._cells:
            raise ActorAlreadyExists(address=address)
        if isinstance(actor, Actor):
            instance, factory = actor, None
        else:
            instance, factory = actor(), actor
            if not isinstance(instance, Actor):
                raise TypeError(f"factory for {address!r} returned {instance!r}, not an Actor")
        cls = type(instance)
        capacity = mailbox_capacity or cls.mailbox_capacity or self.mailbox_capacity
        strategy = restart_strategy or cls.restart_strategy or self.restart_strategy
        cell = ActorCell(self, address, instance, factory, capacity, strategy, parent)
        self._cells[address] = cell
        self.stats.spawned += 1
        return ActorRef(cell)

    def get_or_spawn(
        self,
        address: str,
        factory: ActorFactory,
        *,
        mailbox_capacity: int | None = None,
        restart_strategy: RestartStrategy | None = None,
        parent: str | None = None,
    ) -> ActorRef:
        """The actor at `address`, spawned from `factory` if there is none.

        Atomic on the event loop (nothing is awaited), so concurrent callers get one actor.
        A stopping actor is returned as is (its ref refuses messages with `ActorStopped`).
        """
        cell = self._cells.get(address)
        if cell is not None:
            return ActorRef(cell)
        return self.spawn(
            address,
            factory,
            mailbox_capacity=mailbox_capacity,
            restart_strategy=restart_strategy,
            parent=parent,
        )

    def lookup(self, address: str) -> ActorRef:
        """The actor at `address`; raises `ActorNotFound` when there is none."""
        cell = self._cells.get(address)
        if cell is None:
            raise ActorNotFound(address=address)
        return ActorRef(cell)

    def __contains__(self, address: object) -> bool:
        return address in self._cells

    def __len__(self) -> int:
        return len(self._cells)

    def addresses(self) -> list[str]:
        return list(self._cells)

    # -- messaging shortcuts ---------------------------------------------------------------

    async def tell(
        self,
        address: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        context: Any = None,
        wait: bool = True,
    ) -> None:
        """`ActorRef.tell` by address; to a missing actor the message is a dead letter."""
        cell = self._cells.get(address)
        if cell is None:
            self._not_found(address, method, deadline, context)
            return
        await ActorRef(cell).tell(method, args, deadline=deadline, context=context, wait=wait)

    async def ask(
        self,
        address: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        context: Any = None,
    ) -> Any:
        """`ActorRef.ask` by address; raises `ActorNotFound` at once for a missing actor."""
        cell = self._cells.get(address)
        if cell is None:
            self._not_found(address, method, deadline, context)
            raise ActorNotFound(address=address)
        return await ActorRef(cell).ask(
            method, args, timeout=timeout, deadline=deadline, context=context
        )

    def _not_found(self, address: str, method: str, deadline: float | None, context: Any) -> None:
        context = current_context() if context is None else context
        message = Message(method, NO_ARGS, deadline, context)
        self.dead_letters.record(address, message, DeadLetterReason.NOT_FOUND)

    # -- stopping ---------------------------------------------------------------------------

    async def stop(self, address: str, timeout: float | None = None) -> None:
        """Stop the actor at `address` and wait until it is gone.

        It refuses new messages at once; queued and in-flight messages get `timeout` seconds
        (default `stop_timeout`) to finish, then are cancelled (their askers get
        `ActorStopped`); then `on_stop` runs, bounded by `timeout` too. Several callers share
        one stop; cancelling a caller does not cancel the stop. Called from the actor's own
        handler, it only starts the stop and returns: the actor stops after that handler.
        Raises `ActorNotFound` for an unknown address.
        """
        cell = self._cells.get(address)
        if cell is None:
            raise ActorNotFound(address=address)
        stopping = self._stop_task_of(cell, self.stop_timeout if timeout is None else timeout)
        if not cell.in_own_task():
            await asyncio.shield(stopping)

    async def aclose(self, timeout: float | None = None) -> None:
        """Stop every actor (as `stop`, all at once), then cancel and await whatever task of
        the system is left. Must not be called from inside one of this system's actors.
        """
        if asyncio.current_task() in self._tasks:
            raise RuntimeError("ActorSystem.aclose() called from one of its own actors")
        self._closed = True
        timeout = self.stop_timeout if timeout is None else timeout
        stops = [self._stop_task_of(cell, timeout) for cell in list(self._cells.values())]
        if stops:
            await asyncio.wait(stops)
        leftovers = [task for task in self._tasks if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            _, pending = await asyncio.wait(leftovers, timeout=timeout)
            for task in pending:
                _log.error("task %s ignores cancellation; left running", task.get_name())

    def _stop_task_of(self, cell: ActorCell, timeout: float) -> asyncio.Task[None]:
        if cell.stop_task is None:
            cell.mailbox.close()  # refuse new messages now, not when the task first runs
            cell.stop_task = self._start_task(cell.stop(timeout), f"stop:{cell.address}")
        return cell.stop_task

    # -- observability ----------------------------------------------------------------------

    def stats_of(self, address: str) -> ActorStats:
        """The live counters of the actor at `address`; raises `ActorNotFound`."""
        cell = self._cells.get(address)
        if cell is None:
            raise ActorNotFound(address=address)
        return cell.stats

    def iter_stats(self) -> Iterator[tuple[str, ActorStats]]:
        """(address, live counters) of every actor, for an exporter's scrape."""
        for address, cell in list(self._cells.items()):
            yield address, cell.stats

    # -- for ActorCell ----------------------------------------------------------------------

    def _start_task(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        # A fresh context: the task must not inherit whichever sender happened to start it.
        task = asyncio.get_running_loop().create_task(
            coroutine, name=name, context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("actor task %s died: %r", task.get_name(), exc, exc_info=exc)

    def _forget(self, cell: ActorCell) -> None:
        if self._cells.get(cell.address) is cell:
            del self._cells[cell.address]
            self.stats.stopped += 1
            kind = address_kind(cell.address)
            self.stats.retired.setdefault(kind, RetiredStats()).absorb(cell.stats)

    def _gave_up(self, cell: ActorCell, failure: ActorFailure) -> None:
        self._forget(cell)
        self.stats.gave_up += 1
        _log.error(
            "%s gave up after %d restarts: %r",
            failure.address,
            failure.restarts,
            failure.error,
            extra={"actor": failure.address},
        )
        parent = self._cells.get(cell.parent) if cell.parent is not None else None
        if parent is not None and not parent.mailbox.closed:
            parent.deliver_runtime(Message(CHILD_FAILED, {"failure": failure}))
        if self._on_give_up is not None:
            try:
                self._on_give_up(failure)
            except Exception as exc:
                _log.error("on_give_up callback failed: %r", exc, exc_info=exc)
