"""`Agent`: one compute agent process, assembled from configuration.

    transport (AMQP, or the in-process bus) ──> Dispatcher ──> actors (host, instances)
                                                                 │
    libvirt <── Host / LibvirtHypervisor <── HostRuntime ────────┘ ──> EventPublisher ──> bus
                                                   actors' save() ──> `objects` ──> conductor

`start()` connects the transport, listens for event subscribers' announcements (and asks
for them: `agent.rpc.subscribers`), starts the host runtime (libvirt connection, event bridge,
host actor), serves the host's queue and adopts the running guests in the background:
instance commands are answered `AgentInitializing` until adoption is done. `aclose()` stops
serving (in-flight requests finish), then the actors, then libvirt and the transport.

`objects` is the agent's object indirection (`BusIndirection`): remotable object calls made
under `use_indirection(agent.objects)` go to the conductors. On the in-process bus no other
process can run one, so the agent runs its own there (`conductor`), on the SQLite file of
`[conductor] database_url` (by default in `instances_path`), migrated as it starts: the
embedded default needs no database server. Over AMQP, conductors are their own processes
(`virtactor conductor`, docs/conductor.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import cast

from actors import ActorRef, ActorSystem, BlockingExecutor
from actors.firewall import FirewallActor, FirewallSettings
from actors.host import HostActor, Readiness
from actors.instance import InstanceActor, InstanceSettings
from actors.migration.settings import MigrationSettings
from actors.records import RecordSaver
from actors.tracker import ResourceTrackerActor, TrackerSettings
from agent.client import ComputeClient
from agent.conductor.indirection import BusIndirection
from agent.conductor.service import Conductor, running_conductor
from agent.config import AgentConfig, ConfigError
from agent.config_check import parse_listen
from agent.observability.collector import AgentSources, agent_registry
from agent.observability.endpoint import MetricsEndpoint
from agent.observability.spans import Spans, spans_from_config
from agent.rpc.catalogue import exposed_methods
from agent.rpc.dedup import ReplyCache
from agent.rpc.events import EventPublisher
from agent.rpc.journal import Resolved, instance_asks, instance_records, resolve_unfinished
from agent.rpc.manifest_store import ManifestStore
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.policy import Policy
from agent.rpc.reply_store import ReplyStore
from agent.rpc.server import Dispatcher
from agent.rpc.subscribers import SubscriberWatch
from agent.security.settings import message_security
from agent.transport import (
    CONDUCTOR_QUEUE,
    AmqpSettings,
    AmqpTransport,
    InProcessBus,
    Transport,
)
from agent.transport.amqp_tls import broker_context
from agent.virt.guest.settings import guest_settings_from_config
from agent.virt.runtime import HostRuntime, HostRuntimeSettings
from schemas import DecodeLimits, ObjectRegistry, VirtactorError, default_registry

log = logging.getLogger(__name__)

# Back-off between adoption attempts (each attempt already waits for libvirt itself).
ADOPTION_RETRY_MIN = 1.0
ADOPTION_RETRY_MAX = 30.0


def build_transport(config: AgentConfig, identity: str | None = None) -> Transport:
    """AMQP when a broker URL is configured, else the embedded in-process bus. Over AMQP,
    what it publishes is signed as `identity` (default: the agent's host) when `[security]`
    signing is on; the in-process bus carries no signatures (one process)."""
    if not config.amqp.url:
        return InProcessBus(
            prefetch=config.amqp.prefetch,
            dead_letter_body_bytes=config.amqp.dead_letter_body_bytes,
        )
    return AmqpTransport(
        AmqpSettings(
            url=config.amqp.url,
            prefix=config.amqp.prefix,
            prefetch=config.amqp.prefetch,
            quorum=config.amqp.quorum,
            dead_letter_body_bytes=config.amqp.dead_letter_body_bytes,
            security=message_security(config.security, identity or config.agent.host),
            ssl_context=broker_context(
                config.amqp.url, config.amqp.ca_file, config.amqp.cert_file, config.amqp.key_file
            ),
        )
    )


def instance_settings_from_config(config: AgentConfig) -> InstanceSettings:
    """The instance actors' bounds from `[instance]`; a value out of range is a ConfigError."""
    section = config.instance
    try:
        # The section and the settings have the same fields (a test keeps them so).
        return InstanceSettings(**dataclasses.asdict(section))
    except ValueError as exc:
        raise ConfigError(where="[instance]", reason=str(exc)) from None


def tracker_settings_from_config(config: AgentConfig) -> TrackerSettings:
    """The resource tracker's settings from `[resources]`; one out of range is a ConfigError."""
    try:
        # The section and the settings have the same fields (a test keeps them so).
        return TrackerSettings(**dataclasses.asdict(config.resources))
    except ValueError as exc:
        raise ConfigError(where="[resources]", reason=str(exc)) from None


def migration_settings_from_config(config: AgentConfig) -> MigrationSettings:
    """Live migrations' settings from `[migration]` (checked when the file was loaded)."""
    return MigrationSettings(**dataclasses.asdict(config.migration))


def reply_store_path(config: AgentConfig) -> Path:
    """Where the agent keeps the replies of its finished state-changing requests:
    `[rpc] reply_store`, or a file of its own host's in `instances_path`."""
    if config.rpc.reply_store:
        return Path(config.rpc.reply_store)
    return Path(config.agent.instances_path) / f"_replies.{config.agent.host}.sqlite"


def policy_from_config(config: AgentConfig) -> Policy:
    """Who may call which method: `[policy]` (its rules were checked at load)."""
    section = config.policy
    return Policy(
        section.rules,
        default_host=section.default_host,
        default_instance=section.default_instance,
        claims_from=section.claims_from,
    )


def manifest_store_path(config: AgentConfig) -> Path:
    """Where the agent keeps its callers' manifests: `[rpc] manifest_store`, or a file of its
    own host's in `instances_path` (which may be shared between hosts)."""
    if config.rpc.manifest_store:
        return Path(config.rpc.manifest_store)
    return Path(config.agent.instances_path) / f"_manifests.{config.agent.host}"


class Agent:
    """A running agent for `config.agent.host`. See the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        transport: Transport | None = None,
        registry: ObjectRegistry = default_registry,
        spans: Spans | None = None,
    ) -> None:
        if config.agent.host == CONDUCTOR_QUEUE:
            reason = f"{CONDUCTOR_QUEUE!r} is the object backend's queue; name the host otherwise"
            raise ConfigError(where="[agent] host", reason=reason)
        self.config = config
        self.host = config.agent.host
        self.registry = registry
        self.transport = transport or build_transport(config)
        self._owns_transport = transport is None
        # Spans of the requests served and sent: [tracing]'s, unless given (then not closed).
        self.spans = spans_from_config(config.tracing) if spans is None else spans
        self._owns_spans = spans is None
        self.executor = BlockingExecutor(config.agent.blocking_workers, name="libvirt")
        self.system = ActorSystem(executor=self.executor)
        self.events = EventPublisher(
            self.transport, self.host, registry, config.rpc.version_cap or None
        )
        self.subscribers = SubscriberWatch(
            self.transport,
            self.events,
            answer_wait=config.rpc.subscriber_answer_wait,
            limits=DecodeLimits(max_size=config.rpc.max_message_bytes),
        )
        # Objects sent at the versions the conductors advertise, never above version_cap.
        self.objects = BusIndirection(
            ComputeClient(
                self.transport,
                registry=registry,
                version_cap=config.rpc.version_cap or None,
                limits=DecodeLimits(max_size=config.rpc.max_message_bytes),
                announce_interval=None,
                spans=self.spans,
            ),
            timeout=config.conductor.call_timeout,
        )
        # Calls to other agents (a live migration's steps), with this agent's version caps.
        self.peers = ComputeClient(
            self.transport,
            registry=registry,
            version_cap=config.rpc.version_cap or None,
            rpc_version_cap=config.rpc.rpc_version_cap or None,
            default_timeout=config.migration.peer_timeout,
            limits=DecodeLimits(max_size=config.rpc.max_message_bytes),
            announce_interval=None,
            spans=self.spans,
        )
        # The actors keep their records in the object backend: on the in-process bus always
        # (the agent runs its own conductor), over AMQP unless [conductor] save_records is off
        # (docs/conductor.md, "What runs where").
        embedded = isinstance(self.transport, InProcessBus)
        records = RecordSaver(
            self.objects,
            timeout=config.conductor.save_timeout,
            retry_interval=config.conductor.save_retry_interval,
        )
        self.runtime = HostRuntime(
            self.system,
            self.events,
            HostRuntimeSettings(
                uri=config.libvirt.uri,
                host=self.host,
                host_ip=config.agent.host_ip or None,
                instances_path=config.agent.instances_path,
                liveness_interval=config.libvirt.liveness_interval,
                resync_interval=config.agent.resync_interval,
                heartbeat_interval=config.agent.heartbeat_interval,
                reboot_flap_delay=config.agent.reboot_flap_delay,
                guest=guest_settings_from_config(config),
                instance=instance_settings_from_config(config),
                tracker=tracker_settings_from_config(config),
                migration=migration_settings_from_config(config),
                firewall=FirewallSettings(**dataclasses.asdict(config.firewall)),
            ),
            records=records if embedded or config.conductor.save_records else None,
            peers=self.peers,
        )
        self.manifests = ManifestStore(manifest_store_path(config))
        self.replies = ReplyStore(reply_store_path(config))
        # Instance requests are served once the guests are adopted and the operations the
        # last agent was stopped in are resolved (agent/rpc/journal.py).
        self.serving = Readiness()
        self.resolved: list[Resolved] = []  # how each was, at this start
        self.dispatcher = Dispatcher(
            host=self.host,
            system=self.system,
            methods=MethodTable(
                {
                    Scope.HOST: HostActor,
                    Scope.INSTANCE: InstanceActor,
                    Scope.TRACKER: ResourceTrackerActor,
                    Scope.FIREWALL: FirewallActor,
                },
                exposed=exposed_methods(),
            ),
            instance_factory=self.runtime.instance_factory,
            registry=registry,
            manifest=registry.manifest(),
            limits=DecodeLimits(max_size=config.rpc.max_message_bytes),
            is_ready=self.serving,
            cache=ReplyCache(
                capacity=config.rpc.reply_cache_entries,
                ttl=config.rpc.reply_cache_seconds,
                max_bytes=config.rpc.reply_cache_bytes,
                store=self.replies,
            ),
            manifests=self.manifests,
            spans=self.spans,
            policy=policy_from_config(config),
        )
        # Read at scrape time from the counts above; served when [metrics] listen is set.
        self.metrics_registry = agent_registry(
            AgentSources(
                server=self.dispatcher,
                system=self.system,
                executor=self.executor,
                events=self.events,
                libvirt=lambda: self.runtime.host,
                records=self.runtime.records,
                security=(
                    self.transport.settings.security
                    if isinstance(self.transport, AmqpTransport)
                    else None
                ),
            )
        )
        self.metrics: MetricsEndpoint | None = None
        if config.metrics.listen:
            metrics_host, metrics_port = parse_listen(config.metrics.listen)
            self.metrics = MetricsEndpoint(self.metrics_registry, metrics_host, metrics_port)
        self.conductor: Conductor | None = None  # the embedded one, on the in-process bus
        self._embedded = contextlib.AsyncExitStack()
        self._adoption: asyncio.Task[list[str]] | None = None

    async def start(self) -> None:
        """Connect, serve, and begin adopting guests; returns before adoption finishes.

        If anything fails on the way, what was started is stopped again before the error
        propagates.
        """
        try:
            if self.metrics is not None:
                await self.metrics.start()  # first: an address in use stops the start at once
            # Before serving: a restarted agent knows its callers' manifest digests at once,
            # and answers a request it finished before it stopped with that first reply.
            await self.manifests.load()
            await self.replies.open()
            kept = await self.dispatcher.cache.load()
            if kept:
                log.info("agent %s: %d replies of finished requests read back", self.host, kept)
            await self.transport.start()
            if isinstance(self.transport, InProcessBus):
                # Before the actors, which save their objects through it from the start.
                self.conductor = await self._embedded.enter_async_context(
                    running_conductor(
                        self.transport,
                        self.config,
                        registry=self.registry,
                        upgrade=True,
                        spans=self.spans,
                    )
                )
            # Before anything publishes: the first events wait for subscribers' answers.
            await self.subscribers.start()
            host_actor = await self.runtime.start()
            await self.transport.serve(self.host, self.dispatcher.handle)
        except BaseException:
            await self.aclose()
            raise
        self._adoption = asyncio.create_task(self._adopt(host_actor), name=f"init_host:{self.host}")
        log.info("agent %s serving; adopting guests", self.host)

    async def _adopt(self, host_actor: ActorRef) -> list[str]:
        """Adopt the running guests, retrying with back-off until it succeeds: until then the
        agent answers instance commands `AgentInitializing`, so it must never give up."""
        delay = ADOPTION_RETRY_MIN
        while True:
            try:
                adopted = cast(list[str], await host_actor.ask("init_host"))
                if self.runtime.tracker is not None:
                    # The first audit, now that the guests are known: the node is saved.
                    await self.runtime.tracker.tell("update_available_resource")
                factory = self.runtime.instance_factory
                self.resolved = await resolve_unfinished(
                    self.replies,
                    self.dispatcher,
                    instance_records(self.system, factory),
                    instance_asks(self.system, factory),
                )
                self.serving.set_ready()
                return adopted
            except VirtactorError as exc:
                log.warning(
                    "agent %s: adoption failed (%s); retrying in %.0fs", self.host, exc, delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, ADOPTION_RETRY_MAX)

    async def wait_ready(self, timeout: float) -> list[str]:
        """Wait until the running guests are adopted; returns their uuids."""
        assert self._adoption is not None, "start() the agent first"
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._adoption)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight requests finish and publish their events), then the
        actors, libvirt, and the transport if this agent opened it."""
        if self._adoption is not None and not self._adoption.done():
            self._adoption.cancel()
            await asyncio.gather(self._adoption, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.aclose()
        await self.transport.unserve(self.host, timeout)
        await self.runtime.aclose()
        await self.system.aclose(timeout)
        # After the actors, whose last saves it serves.
        await self._embedded.aclose()
        self.conductor = None
        await self.subscribers.aclose()
        await self.executor.aclose(timeout)
        await self.replies.aclose()  # after serving stopped: the last replies are written
        if self._owns_transport:
            await self.transport.aclose(timeout)
        if self._owns_spans:
            await self.spans.aclose()  # the last spans exported

    @property
    def metrics_port(self) -> int | None:
        """The port the metrics endpoint listens on (the one bound, for port 0), or None."""
        return None if self.metrics is None else self.metrics.port

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
