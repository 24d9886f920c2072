"""The host actor: the hypervisor host's mailbox, its guests' adoption and its events.

It serves the host-scoped methods of the ComputeDriver contract (same names), adopts every
existing domain into an instance actor at `init_host`, routes domain events to the owning
instance actor in arrival order (publishing each lifecycle transition among them as a
`LifecycleEvent` on `instance.<uuid>.lifecycle`), resynchronises every instance periodically
and after each reconnect, and publishes the host's own events: connection lost/restored,
enabled/disabled, and the `Service` heartbeat.

It talks to the hypervisor only through `HostHypervisor` (the agent's libvirt side
implements it) and to the bus only through an `EventSink`, so it imports nothing of the
agent. A lost hypervisor connection disables the service automatically, as nova does
("AUTO: Connection to libvirt lost: ..."), and the reconnect enables it again, unless an
operator disabled it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from actors.actor import Actor
from actors.addresses import INSTANCE_PREFIX, instance_address
from actors.handlers import handler
from actors.host_contract import HostContractHandlers
from actors.instance import EventSink, InstanceHypervisor
from actors.lifecycle_events import lifecycle_topic, lifecycle_transition
from actors.records import RecordSaver
from actors.ref import ActorRef
from schemas.objects.compute_node import ComputeNode
from schemas.objects.enums import PowerState
from schemas.objects.service import Service
from schemas.objects.virt import InstanceInfo, LifecycleEvent

log = logging.getLogger(__name__)

AUTO_DISABLED_PREFIX = "AUTO: "
SERVICE_BINARY = "virtactor-compute"
# Names each service's uuid after its host, so a restarted agent reports the same service.
_SERVICE_NAMESPACE = uuid_module.UUID("8f5c3f2e-5d1a-4c0e-9b7e-6a2f1c4d9e01")


@dataclass(slots=True, frozen=True)
class DomainSummary:
    """One domain the hypervisor has; `power_state` None when it cannot be read."""

    uuid: str
    name: str
    power_state: PowerState | None


class HostHypervisor(InstanceHypervisor, Protocol):
    """What the host actor needs from the hypervisor (the agent's LibvirtHypervisor).

    Methods raise the agent's `HypervisorUnavailable` (retryable) while it is unreachable,
    and `InstanceNotFound` for a uuid it has no domain of.
    """

    async def wait_connected(self) -> None: ...

    async def list_domains(self) -> list[DomainSummary]: ...

    async def get_info(self, uuid: str) -> InstanceInfo: ...

    async def get_available_resource(self, nodename: str) -> ComputeNode: ...

    async def get_available_nodes(self) -> list[str]: ...

    async def get_host_uptime(self) -> float: ...

    async def get_per_instance_usage(self) -> dict[str, InstanceInfo]: ...

    async def get_all_bw_counters(
        self, instance_uuids: list[str] | None
    ) -> list[dict[str, Any]]: ...

    async def get_all_volume_usage(
        self, instance_uuids: list[str] | None
    ) -> list[dict[str, Any]]: ...

    async def get_host_cpu_stats(self) -> dict[str, int]:
        """kernel, idle, user, iowait (ns, all CPUs) and frequency (MHz)."""
        ...

    async def manage_image_cache(self, live_holders: list[str]) -> dict[str, Any]:
        """One pass of the image cache with `live_holders` the instances still alive;
        `NotSupported` when the agent keeps no image cache (no guests configured)."""
        ...


class Readiness:
    """Whether the host finished adopting its guests: the RPC dispatcher's `is_ready`.

    Instance calls are refused (`AgentInitializing`, which callers retry) until it is ready;
    instance casts wait for it (`wait`), unacknowledged. It outlives restarts of the host
    actor, which receive the same object.
    """

    __slots__ = ("_event", "ready")

    def __init__(self) -> None:
        self.ready = False
        self._event: asyncio.Event | None = None

    def __call__(self) -> bool:
        return self.ready

    def set_ready(self) -> None:
        self.ready = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Until the host is ready."""
        if self.ready:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()


@dataclass(slots=True, frozen=True)
class HostActorSettings:
    """`host` is the service's host name (its routing word); intervals are seconds."""

    host: str
    host_ip: str | None = None
    resync_interval: float = 300.0
    heartbeat_interval: float = 10.0
    connect_timeout: float = 60.0  # how long init_host waits for the hypervisor
    adopt_concurrency: int = 8
    image_cache_interval: float = 0.0  # seconds between manage_image_cache passes; 0: none

    def __post_init__(self) -> None:
        for name in ("resync_interval", "heartbeat_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.image_cache_interval < 0:
            raise ValueError(
                f"image_cache_interval must be >= 0 seconds, got {self.image_cache_interval}"
            )
        if self.adopt_concurrency < 1:
            raise ValueError(f"adopt_concurrency must be >= 1, got {self.adopt_concurrency}")


def host_topic(host: str, event: str) -> str:
    return f"host.{host}.{event}"


def service_uuid(host: str) -> str:
    return str(uuid_module.uuid5(_SERVICE_NAMESPACE, f"{host}/{SERVICE_BINARY}"))


@dataclass(slots=True)
class ServiceStatus:
    """The changing part of the host's `Service` record."""

    disabled: bool = False
    disabled_reason: str | None = None
    report_count: int = 0
    last_seen_up: datetime | None = None

    def disable(self, reason: str) -> None:
        self.disabled, self.disabled_reason = True, reason

    def enable(self) -> None:
        self.disabled, self.disabled_reason = False, None


class HostActor(HostContractHandlers, Actor):
    """The actor at `HOST_ADDRESS`. See the module docstring.

    `instance_factory(uuid)` makes the actor of instance `uuid` (the same factory the RPC
    dispatcher spawns with). `readiness` is set once `init_host` adopted every domain.
    """

    def __init__(
        self,
        settings: HostActorSettings,
        hypervisor: HostHypervisor,
        sink: EventSink,
        instance_factory: Callable[[str], Actor],
        *,
        readiness: Readiness | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        records: RecordSaver | None = None,
    ) -> None:
        self.settings = settings
        self.readiness = readiness if readiness is not None else Readiness()
        self.status = ServiceStatus()
        self.resyncs = 0
        self._hypervisor = hypervisor
        self._sink = sink
        self._instance_factory = instance_factory
        self._clock = clock
        self._records = records or RecordSaver(None)
        self._tickers: list[asyncio.Task[None]] = []

    # --- life cycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        me = self.system.lookup(self.address)
        self._tickers = [
            asyncio.create_task(
                _every(self.settings.resync_interval, lambda: me.tell("sync_power_states")),
                name=f"{self.address}:resync",
            ),
            asyncio.create_task(
                _every(self.settings.heartbeat_interval, lambda: me.tell("report_heartbeat")),
                name=f"{self.address}:heartbeat",
            ),
        ]
        if self.settings.image_cache_interval > 0:
            self._tickers.append(
                asyncio.create_task(
                    _every(
                        self.settings.image_cache_interval, lambda: me.tell("manage_image_cache")
                    ),
                    name=f"{self.address}:image-cache",
                )
            )

    async def on_stop(self) -> None:
        for ticker in self._tickers:
            ticker.cancel()
        if self._tickers:
            await asyncio.wait(self._tickers)
        self._tickers = []

    # --- adoption and resync ---------------------------------------------------------------

    @handler
    async def init_host(self) -> list[str]:
        """Adopt every domain of the hypervisor, running or not, into an instance actor whose
        power state is read from the hypervisor; then the host is ready. Guests are left
        exactly as they are. Returns the adopted uuids, sorted.

        Waits up to `connect_timeout` for the hypervisor; raises `HypervisorUnavailable`
        if it is still unreachable.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._hypervisor.wait_connected()
        domains = await self._hypervisor.list_domains()
        limit = asyncio.Semaphore(self.settings.adopt_concurrency)

        async def adopt(uuid: str) -> None:
            async with limit:
                await self._instance(uuid).ask("sync_power_state")

        try:
            async with asyncio.TaskGroup() as group:
                for domain in domains:
                    group.create_task(adopt(domain.uuid))
        except ExceptionGroup as failed:
            # The asker gets the first typed error, as from any handler, not a group.
            raise failed.exceptions[0] from failed
        self.readiness.set_ready()
        adopted = sorted(domain.uuid for domain in domains)
        log.info("host %s adopted %d domains", self.settings.host, len(adopted))
        return adopted

    @handler
    async def sync_power_states(self) -> int:
        """Resynchronise: every instance actor and every domain re-reads its power state
        (domains without an actor are adopted). Returns how many were told; 0 before
        `init_host`, which reads everything itself."""
        if not self.readiness.ready:
            return 0
        self.resyncs += 1
        uuids = {d.uuid for d in await self._hypervisor.list_domains()}
        uuids.update(
            address.removeprefix(INSTANCE_PREFIX)
            for address in self.system.addresses()
            if address.startswith(INSTANCE_PREFIX)
        )
        for uuid in sorted(uuids):
            # tell, not ask: a long operation of one instance must not hold up the host.
            await self._instance(uuid).tell("sync_power_state")
        return len(uuids)

    @handler
    async def route_domain_event(
        self,
        uuid: str,
        kind: str,
        detail: str = "",
        sequence: int = 0,
        occurred_at: float | None = None,
    ) -> None:
        """Hand a domain event to its instance actor, in arrival order (an unknown domain is
        adopted), and publish its lifecycle transition, if it is one, stamped `occurred_at`
        (seconds since the epoch; now when not given). Dropped before `init_host`, which
        reads every domain anyway."""
        if not self.readiness.ready:
            return
        address = instance_address(uuid)
        if kind == "undefined" and address not in self.system:
            return
        args = {"kind": kind, "detail": detail, "sequence": sequence}
        await self._instance(uuid).tell("domain_event", args)
        transition = lifecycle_transition(kind, detail)
        if transition is not None:
            at = self._clock() if occurred_at is None else datetime.fromtimestamp(occurred_at, UTC)
            event = LifecycleEvent(instance_uuid=uuid, transition=transition, timestamp=at)
            await self._sink.publish(lifecycle_topic(uuid), event)

    @handler
    async def hypervisor_connection_lost(self, reason: str) -> None:
        """Disable the service automatically and say so on the bus."""
        if not self.status.disabled:
            self.status.disable(f"{AUTO_DISABLED_PREFIX}Connection to libvirt lost: {reason}")
        await self._publish("connection")

    @handler
    async def hypervisor_connection_restored(self) -> None:
        """Enable the service again if the connection loss disabled it, and resynchronise."""
        reason = self.status.disabled_reason or ""
        if self.status.disabled and reason.startswith(AUTO_DISABLED_PREFIX):
            self.status.enable()
        await self._publish("connection")
        await self.sync_power_states()

    @handler
    async def report_heartbeat(self) -> None:
        """Publish the `Service` heartbeat."""
        self.status.report_count += 1
        self.status.last_seen_up = self._clock()
        await self._publish("heartbeat")

    # --- the ComputeDriver host methods ----------------------------------------------------

    @handler
    async def get_available_resource(self, nodename: str) -> ComputeNode:
        return await self._hypervisor.get_available_resource(nodename)

    @handler
    async def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return await self._hypervisor.get_available_nodes()

    @handler
    async def get_host_uptime(self) -> float:
        """Seconds since the hypervisor host booted."""
        return await self._hypervisor.get_host_uptime()

    @handler
    async def get_host_ip_addr(self) -> str | None:
        return self.settings.host_ip

    @handler
    async def set_host_enabled(self, enabled: bool) -> str:
        """Enable or disable the service (new guests are not scheduled to a disabled host)."""
        if enabled:
            self.status.enable()
        else:
            self.status.disable("disabled by an operator")
        await self._publish("status")
        return "enabled" if enabled else "disabled"

    @handler
    async def host_maintenance_mode(self, host: str, mode: bool) -> str:
        """Put the host in (True) or out of (False) maintenance: it is disabled meanwhile."""
        if mode:
            self.status.disable("maintenance")
        else:
            self.status.enable()
        await self._publish("status")
        return "on_maintenance" if mode else "off_maintenance"

    @handler
    async def list_instances(self) -> list[str]:
        """The names of every domain, running or not."""
        return sorted(d.name for d in await self._hypervisor.list_domains())

    @handler
    async def list_instance_uuids(self) -> list[str]:
        return sorted(d.uuid for d in await self._hypervisor.list_domains())

    @handler
    async def instance_exists(self, uuid: str) -> bool:
        return any(d.uuid == uuid for d in await self._hypervisor.list_domains())

    @handler
    async def get_info(self, uuid: str) -> InstanceInfo:
        """State and counters of any domain of this host; `InstanceNotFound` otherwise."""
        return await self._hypervisor.get_info(uuid)

    @handler
    async def get_per_instance_usage(self) -> dict[str, InstanceInfo]:
        return await self._hypervisor.get_per_instance_usage()

    @handler
    async def get_all_bw_counters(
        self, instance_uuids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        return await self._hypervisor.get_all_bw_counters(instance_uuids)

    @handler
    async def get_all_volume_usage(
        self, instance_uuids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        return await self._hypervisor.get_all_volume_usage(instance_uuids)

    # --- helpers ---------------------------------------------------------------------------

    def _instance(self, uuid: str) -> ActorRef:
        factory = self._instance_factory
        return self.system.get_or_spawn(instance_address(uuid), lambda: factory(uuid))

    async def _publish(self, event: str) -> None:
        # Saved whole each time: a heartbeat after an object-backend outage catches up.
        service = self.service()
        await self._records.save(service.obj_clone(), whole=True)
        await self._sink.publish(host_topic(self.settings.host, event), service)

    def service(self) -> Service:
        """The host's `Service` record as it stands now (a new object each time)."""
        return Service(
            uuid=service_uuid(self.settings.host),
            host=self.settings.host,
            binary=SERVICE_BINARY,
            topic="compute",
            disabled=self.status.disabled,
            disabled_reason=self.status.disabled_reason,
            report_count=self.status.report_count,
            last_seen_up=self.status.last_seen_up,
        )


async def _every(interval: float, tick: Callable[[], Awaitable[None]]) -> None:
    """Call `tick` every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await tick()
