"""`HostRuntime`: the libvirt Host, its event bridge and the host actor, wired together.

    libvirt ──events──> Host ──TeeListener──> HostEventRelay ──tell──> HostActor
                         ▲         │           (reboot flaps held)       │ route / adopt
                         │         └─> DeviceEvents (detach waits)       ▼
                         ├──── LibvirtHypervisor <───────────────── InstanceActor(s)
                         └──── LibvirtInstanceDriver <──────────────────┘

The agent starts one per process: `start()` spawns the host actor at `HOST_ADDRESS` and
starts connecting; `aclose()` stops all three. `readiness` and `instance_factory` are what
the RPC dispatcher needs (`is_ready`, and the factory it spawns instance actors with). With
`guest` settings, instance actors get a `LibvirtInstanceDriver` and serve the instance
methods; without, they only keep their power state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors import FIREWALL_ADDRESS, HOST_ADDRESS, TRACKER_ADDRESS, Actor, ActorRef, ActorSystem
from actors.firewall import FirewallActor, FirewallSettings
from actors.host import HostActor, HostActorSettings, Readiness
from actors.instance import EventSink, InstanceActor, InstanceSettings
from actors.instance.migration import MigrationSupport
from actors.migration.actor import MigrationActor, PeerCalls
from actors.migration.request import MigrationRequest
from actors.migration.settings import MigrationSettings
from actors.migration.slots import MigrationSlots
from actors.records import RecordSaver
from actors.tracker import ResourceTrackerActor, TrackerSettings
from agent.virt.errors import InstancesPathUnavailable
from agent.virt.event_relay import HostEventRelay
from agent.virt.firewall.driver import NWFilterDriver
from agent.virt.guest.device_events import DeviceEvents, TeeListener
from agent.virt.guest.settings import GuestSettings
from agent.virt.host import Host
from agent.virt.hypervisor import LibvirtHypervisor
from agent.virt.images import ImageCache
from agent.virt.instance_driver import LibvirtInstanceDriver
from agent.virt.migration.driver import LibvirtMigrationDriver, peer_uri
from agent.virt.reconnect import Backoff
from agent.virt.resize.driver import LibvirtResizeDriver

# (uuid, hypervisor, sink, *, down_confirm_delay[, driver, settings, records]) -> the
# instance's actor; InstanceActor is one. `driver` and `settings` are passed only when guests
# are configured, `records` only when the agent keeps records in the object backend.
InstanceFactory = Callable[..., Actor]


@dataclass(slots=True, frozen=True)
class HostRuntimeSettings:
    """Values from the agent's configuration (`[agent]` and `[libvirt]`), in seconds."""

    uri: str
    host: str
    instances_path: str
    host_ip: str | None = None
    liveness_interval: float = 5.0
    resync_interval: float = 300.0
    heartbeat_interval: float = 10.0
    reboot_flap_delay: float = 2.0
    connect_timeout: float = 60.0
    keepalive: tuple[int, int] = (5, 3)
    backoff: Backoff = field(default_factory=Backoff)
    guest: GuestSettings | None = None  # None: no instance driver
    instance: InstanceSettings = field(default_factory=InstanceSettings)
    tracker: TrackerSettings | None = None  # None: no resource tracker (nothing is claimed)
    migration: MigrationSettings | None = None  # None: no live migrations (with `peers`)
    firewall: FirewallSettings = field(default_factory=FirewallSettings)


class HostRuntime:
    """See the module docstring. `instance_factory(uuid, hypervisor, sink,
    down_confirm_delay=...)` makes instance actors (default: `InstanceActor`); the delay is
    the reboot-flap delay, so a reboot's "shut off" is neither routed nor published."""

    def __init__(
        self,
        system: ActorSystem,
        sink: EventSink,
        settings: HostRuntimeSettings,
        *,
        instance_factory: InstanceFactory = InstanceActor,
        records: RecordSaver | None = None,
        peers: PeerCalls | None = None,
    ) -> None:
        """`records` saves the actors' records in the object backend (None: not kept);
        `peers` calls other agents (live migration needs it, and `settings.migration`)."""
        self.system = system
        self.sink = sink
        self.settings = settings
        self.readiness = Readiness()
        self.host = Host(
            settings.uri,
            system.executor,
            instances_path=settings.instances_path,
            liveness_interval=settings.liveness_interval,
            keepalive=settings.keepalive,
            backoff=settings.backoff,
        )
        self.device_events = DeviceEvents()
        self.instance_driver: LibvirtInstanceDriver | None = None
        cache = None
        if settings.guest is not None:
            cache = ImageCache(settings.guest.images_path, settings.guest.image_cache_path)
            self.instance_driver = LibvirtInstanceDriver(
                self.host,
                settings.guest,
                cache,
                self.device_events,
                filter_interfaces=settings.firewall.enabled,
            )
        self.hypervisor = LibvirtHypervisor(
            self.host,
            service_host=settings.host,
            host_ip=settings.host_ip,
            image_cache=cache,
            image_cache_max_age=(
                settings.guest.image_cache_max_age if settings.guest is not None else 0.0
            ),
        )
        self._make_instance = instance_factory
        self.records = records
        self.migrations: MigrationSupport | None = None
        if self.instance_driver is not None and settings.migration is not None and peers:
            self.migrations = self._migration_support(
                settings.migration, peers, self.instance_driver.image_cache
            )
        self.bridge: HostEventRelay | None = None
        self.ref: ActorRef | None = None
        self.tracker: ActorRef | None = None
        self.firewall: ActorRef | None = None

    def instance_factory(self, uuid: str) -> Actor:
        """The actor of instance `uuid`, for `ActorSystem.get_or_spawn`."""
        extra: dict[str, Any] = {}
        if self.instance_driver is not None:
            extra = {
                "driver": self.instance_driver,
                "settings": self.settings.instance,
                "host": self.settings.host,
            }
            if self.records is not None:
                extra["records"] = self.records
            if self.migrations is not None:
                extra["migrations"] = self.migrations
        return self._make_instance(
            uuid,
            self.hypervisor,
            self.sink,
            down_confirm_delay=self.settings.reboot_flap_delay,
            **extra,
        )

    async def start(self) -> ActorRef:
        """Spawn the host actor and start connecting; returns the host actor's ref.

        Call `init_host` on it next (it waits for the connection).
        """
        # The agent's own directory: the audit measures it before the first guest is made.
        path = self.settings.instances_path
        try:
            await self.system.executor.run(lambda: os.makedirs(path, exist_ok=True))
        except OSError as exc:
            raise InstancesPathUnavailable(path=path, reason=exc.strerror or str(exc)) from exc
        actor_settings = HostActorSettings(
            host=self.settings.host,
            host_ip=self.settings.host_ip,
            resync_interval=self.settings.resync_interval,
            heartbeat_interval=self.settings.heartbeat_interval,
            connect_timeout=self.settings.connect_timeout,
            # Only an agent with guests keeps an image cache to clean.
            image_cache_interval=(
                self.settings.guest.image_cache_interval if self.settings.guest is not None else 0.0
            ),
        )
        ref = self.system.spawn(
            HOST_ADDRESS,
            lambda: HostActor(
                actor_settings,
                self.hypervisor,
                self.sink,
                self.instance_factory,
                readiness=self.readiness,
                records=self.records,
            ),
        )
        self.ref = ref
        if self.settings.tracker is not None:
            self.tracker = self.system.spawn(TRACKER_ADDRESS, self._make_tracker)
        self.firewall = self.system.spawn(FIREWALL_ADDRESS, self._make_firewall)
        self.bridge = HostEventRelay(ref.tell, flap_delay=self.settings.reboot_flap_delay)
        self.bridge.start()
        # Detach waits see DEVICE_REMOVED first: the actor that waits is busy, its mailbox shut.
        await self.host.start(TeeListener(self.bridge, self.device_events))
        return ref

    def _migration_support(
        self, settings: MigrationSettings, peers: PeerCalls, cache: ImageCache
    ) -> MigrationSupport:
        driver = LibvirtMigrationDriver(self.host, self.settings.instances_path, cache)
        address = settings.listen_address or self.settings.host_ip or "127.0.0.1"
        slots = MigrationSlots(
            self.settings.host,
            settings.max_outgoing,
            settings.max_incoming,
            settings.incoming_slot_timeout,
        )

        def make_actor(request: MigrationRequest) -> MigrationActor:
            return MigrationActor(
                self.settings.host,
                request,
                settings,
                peers,
                driver,
                self.sink,
                records=self.records,
                slots=slots,
            )

        return MigrationSupport(
            host=self.settings.host,
            libvirt_uri=settings.peer_uri or peer_uri(self.settings.uri, address),
            address=address,
            inbound_address=settings.inbound_address or address,
            settings=settings,
            driver=driver,
            make_actor=make_actor,
            slots=slots,
            peers=peers,
            resize=LibvirtResizeDriver(
                self.host,
                self.instance_driver.settings,
                cache,
                filter_interfaces=self.instance_driver.filter_interfaces,
            )
            if self.instance_driver is not None
            else None,
        )

    def _make_tracker(self) -> ResourceTrackerActor:
        assert self.settings.tracker is not None
        return ResourceTrackerActor(
            self.settings.host,
            self.settings.tracker,
            self.hypervisor,
            self.sink,
            records=self.records,
            objects=self.records.objects if self.records is not None else None,
        )

    def _make_firewall(self) -> FirewallActor:
        settings = self.settings.firewall
        return FirewallActor(
            self.settings.host,
            settings,
            NWFilterDriver(self.host) if settings.enabled else None,
            objects=self.records.objects if self.records is not None else None,
        )

    async def aclose(self) -> None:
        """Close the connection, stop the bridge, stop the host actor (instance actors stay
        with the actor system, which stops them when it closes)."""
        await self.host.aclose()
        if self.bridge is not None:
            await self.bridge.aclose()
        if self.ref is not None and HOST_ADDRESS in self.system:
            await self.system.stop(HOST_ADDRESS)
        if self.tracker is not None and TRACKER_ADDRESS in self.system:
            await self.system.stop(TRACKER_ADDRESS)
        if self.firewall is not None and FIREWALL_ADDRESS in self.system:
            await self.system.stop(FIREWALL_ADDRESS)
