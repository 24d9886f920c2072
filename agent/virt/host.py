"""The Host: the agent's one libvirt connection, its events, its reconnects and host facts.

Nothing else in the agent opens a libvirt connection or reads host capabilities: callers run
their blocking libvirt work through `Host.run(fn, ...)`, which hands `fn` the live connection
inside the blocking executor. The Host holds no policy: back-off and error classification
come from `agent.virt.reconnect`, what to do about events is the listener's business.

Connection life: `start(listener)` binds libvirt's events to the running loop (see
`agent.virt.eventloop`) and starts a supervisor task that connects, retrying with back-off.
While connected it watches the connection three ways: libvirt's close callback (EOF,
keepalive timeout), calls that fail with a connection error, and a periodic liveness probe.
When the connection is lost every call fails at once with `HypervisorUnavailable`, the
listener hears `connection_lost`, and the supervisor reconnects, registers every event
callback again and tells the listener `connection_restored`. `aclose()` stops all of it.

Errors: `run` is the one edge libvirt's errors cross, translated into the agent's typed
errors by `agent.virt.libvirt_errors.translate`; no caller sees a `libvirtError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import libvirt

from agent.errors import HypervisorError, HypervisorUnavailable
from agent.virt.connection import (
    CLOSE_REASONS,
    OpenConnection,
    Version,
    close_connection,
    open_connection,
    pack_version,
)
from agent.virt.domains import (
    DomainInfo,
    DomainRecord,
    read_domain_info,
    read_domain_record,
    read_domain_records,
)
from agent.virt.errors import HostAlreadyStarted, HostClosed
from agent.virt.eventloop import bind_libvirt_events
from agent.virt.events import DomainEvent
from agent.virt.host_facts import HostFacts, read_host_facts, read_uptime
from agent.virt.libvirt_errors import error_code, is_lost, translate
from agent.virt.reconnect import Backoff, describe

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class Executor(Protocol):
    """The blocking-call helper the Host runs every libvirt call in (`BlockingExecutor`)."""

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


class HostListener(Protocol):
    """Who the Host tells about events and connection changes; called on the event loop.

    The calls must not block: they hand the news on (to an actor's mailbox) and return.
    """

    def domain_event(self, event: DomainEvent) -> None: ...

    def connection_lost(self, reason: str) -> None: ...

    def connection_restored(self) -> None: ...


class Host:
    """One libvirt connection to `uri` and everything read through it.

    `executor` runs every blocking call. `instances_path` is where local instance disks live
    (for the disk facts). `liveness_interval` is how often an idle connection is probed,
    `probe_timeout` how long a probe may take before the connection counts as lost, and
    `keepalive` libvirt's (interval seconds, missed replies) before it closes a silent
    connection itself. `backoff` spaces the reconnect attempts.
    """

    def __init__(
        self,
        uri: str,
        executor: Executor,
        *,
        instances_path: str,
        liveness_interval: float = 5.0,
        probe_timeout: float = 10.0,
        keepalive: tuple[int, int] = (5, 3),
        close_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.uri = uri
        self.instances_path = instances_path
        self._executor = executor
        self._liveness_interval = liveness_interval
        self._probe_timeout = probe_timeout
        self._keepalive = keepalive
        self._close_timeout = close_timeout
        self._backoff = backoff if backoff is not None else Backoff()
        self._opened: OpenConnection | None = None  # the live connection, None while disconnected
        self._last: OpenConnection | None = None  # the most recent connection, for its versions
        self._generation = 0  # numbers connections; events of an older one are dropped
        self._down_reason = "not connected yet"
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()  # set by aclose: waits for a connection end there
        self._listener: HostListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._sequence = itertools.count(1)
        self.connects = 0  # successful connections so far (the first one included)
        self.connect_failures = 0  # failed attempts so far

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, listener: HostListener) -> None:
        """Bind libvirt's events to the running loop and start connecting in the background.

        Returns at once; `wait_connected()` waits for the connection. Raises
        `EventLoopMismatch` if libvirt's events are bound to another loop in this process,
        `HostAlreadyStarted` on a second call, `HostClosed` after `aclose()`.
        """
        if self._closed:
            raise HostClosed(uri=self.uri)
        if self._supervisor is not None:
            raise HostAlreadyStarted(uri=self.uri)
        self._loop = asyncio.get_running_loop()
        bind_libvirt_events(self._loop)
        self._listener = listener
        self._supervisor = asyncio.create_task(self._supervise(), name=f"libvirt-host {self.uri}")
        self._supervisor.add_done_callback(self._supervisor_done)

    async def wait_connected(self) -> None:
        """Wait until the Host is connected (the caller bounds the wait with its deadline);
        `HostClosed` when it is closed meanwhile (an agent stopping while it adopts)."""
        if self._closed:
            raise HostClosed(uri=self.uri)
        if self._connected.is_set():
            return
        waits = {
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self._closing.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self._closed:
            raise HostClosed(uri=self.uri)

    async def aclose(self) -> None:
        """Stop supervising and close the connection; calls then raise `HostClosed`.

        Idempotent. A connection attempt in progress is waited for and closed too. The close
        itself is bounded by `close_timeout`: a libvirtd that does not answer is abandoned.
        """
        self._closed = True
        self._closing.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait([supervisor])
        opened, self._opened = self._opened, None
        self._connected.clear()
        if opened is not None:
            await self._close(opened)

    async def __aenter__(self) -> Host:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        return self._opened is not None

    # --- calls -----------------------------------------------------------------------------

    async def run(
        self,
        fn: Callable[Concatenate[libvirt.virConnect, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(conn, *args, **kwargs)` in the blocking executor, with the live connection.

        Raises `HypervisorUnavailable` at once while disconnected, and when `fn` fails
        because the connection broke (which also starts the reconnect). Any other libvirt
        error comes out translated (`libvirt_errors.translate`): a vanished domain is
        `InstanceNotFound` when libvirt names its uuid, the rest `HypervisorError` or
        narrower. Never keep `conn` or objects from it past the call: after a reconnect they
        belong to a dead connection.
        """
        return await self.run_on(None, fn, *args, **kwargs)

    async def run_on(
        self,
        uuid: str | None,
        fn: Callable[Concatenate[libvirt.virConnect, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`run` for work on the domain of instance `uuid`: libvirt's errors about the domain
        name that instance (a vanished domain is `InstanceNotFound(uuid)`, a silent guest
        agent `GuestAgentUnavailable(uuid)`). `run_on(None, ...)` is `run(...)`."""
        opened, generation = self._require(), self._generation
        try:
            return await self._executor.run(fn, opened.conn, *args, **kwargs)
        except libvirt.libvirtError as exc:
            error = translate(exc, uri=self.uri, uuid=uuid)
            if isinstance(error, HypervisorUnavailable):
                if await self._still_alive(opened):
                    # A transport error of another connection libvirtd made for this call
                    # (a migration's to its peer): the call failed, ours is fine.
                    reason = exc.get_error_message() or str(exc)
                    origin = exc.get_error_domain() or 0
                    raise HypervisorError(
                        code=error_code(exc), origin=origin, reason=reason
                    ) from exc
                self._mark_lost(generation, error.reason)
            raise error from exc

    async def _still_alive(self, opened: OpenConnection) -> bool:
        """Whether libvirt still counts the connection alive (no round trip: its keepalive's
        view), after a call failed with what looks like a lost connection."""
        try:
            return bool(await self._executor.run(opened.conn.isAlive))
        except libvirt.libvirtError:
            return False

    def has_min_version(self, libvirt: Version | None = None, qemu: Version | None = None) -> bool:
        """Whether libvirt is at least `libvirt` and the hypervisor is QEMU at least `qemu`.

        Uses the versions read when the current (or last) connection opened; raises
        `HypervisorUnavailable` if the Host never connected.
        """
        opened = self._last
        if opened is None:
            raise HypervisorUnavailable(uri=self.uri, reason=self._down_reason)
        if libvirt is not None and opened.libvirt_version < pack_version(libvirt):
            return False
        if qemu is not None:
            if opened.hypervisor_type != "QEMU":
                return False
            return opened.hypervisor_version >= pack_version(qemu)
        return True

    async def list_domains(self) -> dict[str, DomainRecord]:
        """Every domain, running or only defined, by uuid, with its state."""
        return await self.run(read_domain_records)

    async def domain_record(self, uuid: str) -> DomainRecord:
        """The domain `uuid` and its current state; `InstanceNotFound` if libvirt has none."""
        return await self.run_on(uuid, read_domain_record, uuid)

    async def domain_info(self, uuid: str) -> DomainInfo:
        """`virDomainGetInfo` of the domain `uuid`; `InstanceNotFound` if libvirt has none."""
        return await self.run_on(uuid, read_domain_info, uuid)

    async def get_domain(self, uuid: str) -> libvirt.virDomain:
        """The libvirt domain `uuid`; `InstanceNotFound` if libvirt has none.

        Use the result only in calls made through `run`, never after a reconnect.
        """
        return await self.run_on(uuid, lambda conn: conn.lookupByUUIDString(uuid))

    async def get_host_facts(self) -> HostFacts:
        return await self.run(read_host_facts, self.instances_path)

    async def get_uptime(self) -> float:
        """Seconds since the hypervisor host booted (the agent runs on that host)."""
        self._require()
        return await self._executor.run(read_uptime)

    # --- connection supervision ------------------------------------------------------------

    def _require(self) -> OpenConnection:
        if self._closed:
            raise HostClosed(uri=self.uri)
        if self._opened is None:
            raise HypervisorUnavailable(uri=self.uri, reason=self._down_reason)
        return self._opened

    async def _supervise(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect()
            except libvirt.libvirtError as exc:
                self.connect_failures += 1
                self._down_reason = f"cannot connect: {describe(exc)}"
                delay = self._backoff.delay(failures)
                failures += 1
                log.warning("libvirt %s: %s; retrying in %.1fs", self.uri, self._down_reason, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            await self._watch()

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A bug, not an outage: the Host stays disconnected; say so loudly.
            self._down_reason = f"the connection supervisor failed: {task.exception()!r}"
            log.error("libvirt %s: %s", self.uri, self._down_reason, exc_info=task.exception())

    async def _connect(self) -> None:
        generation = self._generation + 1
        deliver = partial(self._deliver_threadsafe, generation)
        job = asyncio.ensure_future(
            self._executor.run(
                open_connection, self.uri, self._keepalive, self._on_close, generation, deliver
            )
        )
        try:
            opened = await asyncio.shield(job)
        except asyncio.CancelledError:
            # The open cannot be interrupted: let it finish, then close what it opened.
            with contextlib.suppress(libvirt.libvirtError):
                await self._close(await job)
            raise
        self._generation = generation
        self._opened = self._last = opened
        self.connects += 1
        self._lost.clear()
        self._connected.set()
        log.info("libvirt %s: connected (connection %d)", self.uri, generation)
        if generation > 1 and self._listener is not None:
            self._listener.connection_restored()

    async def _watch(self) -> None:
        """Return once the connection is lost, after closing it; probe it while idle."""
        current = self._opened
        while not self._lost.is_set():
            try:
                async with asyncio.timeout(self._liveness_interval):
                    await self._lost.wait()
            except TimeoutError:
                await self._probe()
        self._opened = None
        if current is not None:
            await self._close(current)

    async def _probe(self) -> None:
        opened, generation = self._opened, self._generation
        if opened is None:
            return
        try:
            async with asyncio.timeout(self._probe_timeout):
                await self._executor.run(opened.conn.getLibVersion)
        except TimeoutError:
            reason = f"liveness probe got no answer within {self._probe_timeout}s"
            self._mark_lost(generation, reason)
        except libvirt.libvirtError as exc:
            if is_lost(exc):
                self._mark_lost(generation, describe(exc))
            else:
                log.warning("libvirt %s: liveness probe failed: %s", self.uri, describe(exc))

    def _mark_lost(self, generation: int, reason: str) -> None:
        """Connection `generation` is gone: fail calls from now on and wake the supervisor."""
        if generation != self._generation or self._lost.is_set() or self._closed:
            return
        self._down_reason = reason
        self._connected.clear()
        self._lost.set()
        if self._opened is not None:
            # Calls fail fast from here on; the supervisor closes the connection itself.
            self._opened = None
            log.warning("libvirt %s: connection lost: %s", self.uri, reason)
            if self._listener is not None:
                self._listener.connection_lost(reason)

    async def _close(self, opened: OpenConnection) -> None:
        job = self._executor.run(close_connection, opened)
        try:
            async with asyncio.timeout(self._close_timeout):
                await job
        except TimeoutError:
            log.warning("libvirt %s: close abandoned after %.1fs", self.uri, self._close_timeout)

    # --- callbacks from libvirt (any thread) -----------------------------------------------

    def _on_close(self, _conn: libvirt.virConnect, reason: int, generation: int) -> None:
        cause = CLOSE_REASONS.get(reason, f"reason {reason}")
        self._call_on_loop(self._mark_lost, generation, f"libvirt closed the connection: {cause}")

    def _deliver_threadsafe(self, generation: int, event: DomainEvent) -> None:
        # Always through the loop's queue, whatever thread this is: one FIFO keeps the order.
        self._call_on_loop(self._deliver, generation, event)

    def _deliver(self, generation: int, event: DomainEvent) -> None:
        if generation != self._generation or self._listener is None or self._closed:
            return
        numbered = event.numbered(next(self._sequence))
        try:
            self._listener.domain_event(numbered)
        except Exception:
            # A libvirt callback has nobody to raise to; the listener's bug must not stop
            # the delivery of later events.
            log.exception("libvirt %s: listener failed on %s", self.uri, numbered)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            log.debug("libvirt %s: callback after the event loop closed", self.uri)
