"""libvirt's one event loop per process, bound to one asyncio loop and safe from any thread.

Two facts shape this module:

- libvirt has ONE event-loop implementation per process, forever: `virEventRegisterImpl`
  ignores every registration after the first
  (https://libvirt.org/html/libvirt-libvirt-event.html#virEventRegisterImpl), and libvirtaio's
  implementation is tied to one asyncio loop. So the first `bind_libvirt_events(loop)` binds
  libvirt's events to that loop for the life of the process, and a later call from another
  running loop raises `EventLoopMismatch` instead of silently losing every event.
- libvirt calls the implementation's add/update/remove hooks from whichever thread is inside a
  libvirt call. The agent makes every blocking call in a worker thread, but libvirtaio touches
  its asyncio loop directly (`add_reader`, `ensure_future`), which is only safe on the loop's
  own thread: in debug mode asyncio refuses it and the event is lost. `LoopBoundEventImpl`
  queues each hook call and replays the queue, in call order, on the loop thread; ids are
  handed out at once because libvirt needs them synchronously.

Replaying later opens one race: libvirt closes a socket right after removing its handle, and
the loop may hand the same descriptor number to another transport before the removal is
replayed, which would then unregister that transport. So each watched descriptor is
`dup()`ed at once, in the calling thread: the loop watches the duplicate (same socket, same
readiness), which only this module closes, after unregistering it.

The binding is process state because libvirt's registration is process state; it is the one
exception to "no global mutable state", and it is kept here, behind one function.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import libvirt
import libvirtaio

from agent.virt.errors import EventLoopMismatch

log = logging.getLogger(__name__)

HandleCallback = Callable[[int, int, int, Any], None]
TimeoutCallback = Callable[[int, Any], None]


class LoopBoundEventImpl:
    """libvirtaio's event implementation, fed from any thread, acting only on `loop`'s thread.

    Hook calls are appended to one FIFO queue. On the loop's thread the queue is replayed at
    once; from any other thread a replay is scheduled with `call_soon_threadsafe`. Either way
    the operations reach libvirtaio in the order libvirt made them, so a handle removed and
    its descriptor number reused by a new socket are seen in that order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._inner = libvirtaio.virEventAsyncIOImpl(loop=loop)
        self._lock = threading.Lock()  # guards everything below; hooks arrive on any thread
        self._pending: deque[Callable[[], None]] = deque()
        self._ids = itertools.count(1)
        self._live: set[int] = set()  # ids libvirt holds (added, not yet removed)
        self._inner_ids: dict[int, int] = {}  # our id -> libvirtaio's, once replayed
        self._duplicates: dict[int, int] = {}  # handle id -> the descriptor the loop watches
        self._replay_scheduled = False
        self._replaying = False

    def register(self) -> None:
        """Make this libvirt's event implementation (first registration in the process wins)."""
        libvirt.virEventRegisterImpl(
            self._add_handle,
            self._update_handle,
            self._remove_handle,
            self._add_timeout,
            self._update_timeout,
            self._remove_timeout,
        )

    @property
    def pending(self) -> int:
        """Hook calls queued and not yet replayed on the loop (for tests and metrics)."""
        with self._lock:
            return len(self._pending)

    # --- the six hooks libvirt calls, from any thread -----------------------------------------

    def _add_handle(self, fd: int, events: int, cb: HandleCallback, opaque: Any) -> int:
        try:
            watched = os.dup(fd)
        except OSError as exc:
            log.warning("libvirt asked to watch descriptor %d, which is unusable: %s", fd, exc)
            return -1
        watch = self._new_id()

        def add() -> None:
            # libvirt expects its own watch id and descriptor back, not libvirtaio's.
            def dispatch(_inner: int, _watched: int, events: int, opaque: Any) -> None:
                cb(watch, fd, events, opaque)

            self._inner_ids[watch] = self._inner._add_handle(watched, events, dispatch, opaque)

        with self._lock:
            self._duplicates[watch] = watched
        self._submit(add)
        return watch

    def _update_handle(self, watch: int, events: int) -> None:
        self._submit(lambda: self._replay_update(watch, self._inner._update_handle, events))

    def _remove_handle(self, watch: int) -> int:
        if not self._forget(watch):
            return -1
        with self._lock:
            watched = self._duplicates.pop(watch)

        def remove() -> None:
            try:
                inner = self._inner_ids.pop(watch, None)
                if inner is not None:
                    self._inner._remove_handle(inner)
            finally:
                os.close(watched)

        self._submit(remove)
        return 0

    def _add_timeout(self, timeout: int, cb: TimeoutCallback, opaque: Any) -> int:
        timer = self._new_id()

        def add() -> None:
            def dispatch(_inner: int, opaque: Any) -> None:
                cb(timer, opaque)

            self._inner_ids[timer] = self._inner._add_timeout(timeout, dispatch, opaque)

        self._submit(add)
        return timer

    def _update_timeout(self, timer: int, timeout: int) -> None:
        self._submit(lambda: self._replay_update(timer, self._inner._update_timeout, timeout))

    def _remove_timeout(self, timer: int) -> int:
        if not self._forget(timer):
            return -1

        def remove() -> None:
            inner = self._inner_ids.pop(timer, None)
            if inner is not None:
                self._inner._remove_timeout(inner)

        self._submit(remove)
        return 0

    # --- queue and replay ------------------------------------------------------------------

    def _new_id(self) -> int:
        with self._lock:
            ident = next(self._ids)
            self._live.add(ident)
            return ident

    def _forget(self, ident: int) -> bool:
        with self._lock:
            if ident not in self._live:
                return False
            self._live.discard(ident)
            return True

    def _replay_update(self, ident: int, update: Callable[[int, int], None], value: int) -> None:
        inner = self._inner_ids.get(ident)
        if inner is not None:
            update(inner, value)

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _submit(self, operation: Callable[[], None]) -> None:
        on_loop = self._on_loop_thread()
        with self._lock:
            self._pending.append(operation)
            schedule = not on_loop and not self._replay_scheduled
            if schedule:
                self._replay_scheduled = True
        if on_loop:
            self._replay()
        elif schedule:
            try:
                self.loop.call_soon_threadsafe(self._scheduled_replay)
            except RuntimeError:
                # The bound loop is closed: no event will ever be dispatched in this process.
                log.warning("libvirt event hook called after event loop %r closed", self.loop)

    def _scheduled_replay(self) -> None:
        with self._lock:
            self._replay_scheduled = False
        self._replay()

    def _replay(self) -> None:
        # A hook called while replaying (libvirt re-entered from a callback) is appended to
        # the queue and replayed by the outer loop, after everything queued before it.
        if self._replaying:
            return
        self._replaying = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    operation = self._pending.popleft()
                try:
                    operation()
                except (OSError, ValueError, KeyError, AssertionError):
                    # One bad hook call (a descriptor libvirt closed too early, an id it
                    # reused) must not stall the ones queued behind it.
                    log.exception("replaying a libvirt event-loop hook call failed")
        finally:
            self._replaying = False


_binding_lock = threading.Lock()
_bound: LoopBoundEventImpl | None = None


def bind_libvirt_events(loop: asyncio.AbstractEventLoop) -> LoopBoundEventImpl:
    """Bind libvirt's event loop to `loop` the first time; later, check it is still `loop`.

    Call it from coroutines running on `loop` before opening a connection whose events must
    be delivered. Raises `EventLoopMismatch` when libvirt's events are already bound to
    another loop (a closed one included: libvirt can never be rebound), and
    `EventLoopMismatch` too when libvirtaio was registered directly by other code.
    """
    global _bound  # noqa: PLW0603 - mirrors libvirt's own once-per-process registration
    with _binding_lock:
        if _bound is None:
            foreign = libvirtaio.getCurrentImpl()
            if foreign is not None:
                raise EventLoopMismatch(bound=repr(foreign.loop), running=repr(loop))
            impl = LoopBoundEventImpl(loop)
            impl.register()
            # Every failing call also raises libvirtError to its caller; libvirt's default
            # handler would print each one to stderr a second time.
            libvirt.registerErrorHandler(_log_libvirt_error, None)
            _bound = impl
            log.debug("libvirt events bound to event loop %r", loop)
            return impl
        if _bound.loop is not loop:
            bound = repr(_bound.loop) + (" (closed)" if _bound.loop.is_closed() else "")
            raise EventLoopMismatch(bound=bound, running=repr(loop))
        return _bound


def _log_libvirt_error(_context: Any, error: tuple[Any, ...]) -> None:
    log.debug("libvirt error: %s", error[2] if len(error) > 2 else error)


def bound_event_loop() -> asyncio.AbstractEventLoop | None:
    """The loop libvirt's events are bound to in this process, or None before the first bind."""
    with _binding_lock:
        return None if _bound is None else _bound.loop
