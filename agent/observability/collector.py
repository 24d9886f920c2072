"""`AgentCollector`: the agent's Prometheus metrics, read from its components' own counts.

Nothing on a request's path touches prometheus-client: the dispatcher, actors, the executor,
the libvirt Host, the event publisher and the record saver keep plain counts, and this
collector turns them into metric families when the endpoint is scraped (on the event loop,
where those counts are written). Each agent has its own `CollectorRegistry`, so several
agents in one process (tests) never share a series.

Actor metrics are aggregated per address kind (`host`, `tracker`, `instance`, `migration`),
never one series per instance. Counters sum the live actors and what the stopped ones of
the kind counted (`SystemStats.retired`), so they never go down; the gauges (actors,
mailbox depth) are of the live ones. docs/observability.md lists every metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from actors import ActorSystem, BlockingExecutor, address_kind
from actors.records import RecordSaver
from actors.stats import LatencyHistogram, merge_histograms
from agent.rpc.events import EventPublisher
from agent.rpc.server import RequestServer
from agent.security import MessageSecurity


class LibvirtConnection(Protocol):
    """What the collector reads of the libvirt Host (`agent.virt.host.Host` has these)."""

    @property
    def connected(self) -> bool: ...

    @property
    def connects(self) -> int: ...

    @property
    def connect_failures(self) -> int: ...


@dataclass(slots=True)
class AgentSources:
    """The components whose counts the collector reads; `libvirt` and `records` may be
    absent (an agent whose Host is not built yet, an agent that keeps no records)."""

    server: RequestServer
    system: ActorSystem
    executor: BlockingExecutor
    events: EventPublisher
    libvirt: Callable[[], LibvirtConnection | None] = lambda: None
    records: RecordSaver | None = None
    security: MessageSecurity | None = None  # signing on


class AgentCollector(Collector):
    """Yields every `virtactor_*` family from `sources` on each scrape."""

    def __init__(self, sources: AgentSources) -> None:
        self.sources = sources

    def describe(self) -> Iterable[Metric]:
        # Nothing to describe up front: registering must not run a scrape.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._rpc()
        yield from self._actors()
        yield from self._blocking()
        yield from self._libvirt()
        yield from self._events()
        yield from self._workflows()
        yield from self._records()
        yield from self._security()

    def _rpc(self) -> Iterator[Metric]:
        server = self.sources.server
        calls = CounterMetricFamily(
            "virtactor_rpc_calls",
            "Requests served, by method, kind (call, cast) and outcome (ok, duplicate, "
            "or the error class answered).",
            labels=["method", "kind", "outcome"],
        )
        for (method, kind, outcome), count in server.calls.items():
            calls.add_metric([method, kind, outcome], count)
        yield calls
        yield _histogram(
            "virtactor_rpc_handler_seconds",
            "Time from a request's delivery to its reply, by method (not the duplicates "
            "answered from the reply cache).",
            "method",
            server.calls.latency.items(),
        )
        yield _counter(
            "virtactor_rpc_reply_cache_hits",
            "Redelivered or re-sent requests answered from the reply cache.",
            server.cache.duplicates,
        )
        yield _gauge(
            "virtactor_rpc_reply_cache_entries",
            "Requests remembered by the reply cache, finished or running.",
            len(server.cache),
        )
        yield _gauge(
            "virtactor_rpc_reply_cache_bytes",
            "Bytes of the finished replies the reply cache holds.",
            server.cache.bytes,
        )

    def _actors(self) -> Iterator[Metric]:
        system = self.sources.system
        actors: Counter[str] = Counter()
        depth: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        expired: Counter[str] = Counter()
        restarts: Counter[str] = Counter()
        latency: dict[str, list[LatencyHistogram]] = {}
        for address, stats in system.iter_stats():
            kind = address_kind(address)
            actors[kind] += 1
            depth[kind] += stats.mailbox_depth
            failed[kind] += stats.failed
            expired[kind] += stats.expired
            restarts[kind] += stats.restarts
            latency.setdefault(kind, []).append(stats.latency)
        for kind, retired in system.stats.retired.items():
            failed[kind] += retired.failed
            expired[kind] += retired.expired
            restarts[kind] += retired.restarts
            latency.setdefault(kind, []).append(retired.latency)
        yield _by("virtactor_actors", "Live actors, by kind.", "kind", actors, gauge=True)
        yield _by(
            "virtactor_actor_mailbox_depth",
            "Messages waiting in the mailboxes of the live actors, by kind.",
            "kind",
            depth,
            gauge=True,
        )
        merged = {kind: merge_histograms(histograms) for kind, histograms in latency.items()}
        yield _histogram(
            "virtactor_actor_handler_seconds",
            "Handler durations of the actors' messages (stopped actors' included), by kind.",
            "kind",
            merged.items(),
        )
        yield _by(
            "virtactor_actor_failures",
            "Messages whose handler raised, by kind.",
            "kind",
            failed,
        )
        yield _by(
            "virtactor_actor_expired",
            "Messages skipped because their deadline passed before they started, by kind.",
            "kind",
            expired,
        )
        yield _by(
            "virtactor_actor_restarts",
            "Restarts of the actors by their supervisor (stopped actors' included), by kind.",
            "kind",
            restarts,
        )
        yield _counter(
            "virtactor_actor_gave_up",
            "Actors that crashed more often than their restart strategy allows, and stopped.",
            system.stats.gave_up,
        )
        yield _by(
            "virtactor_actor_dead_letters",
            "Messages that could not be delivered, by reason.",
            "reason",
            {str(reason): count for reason, count in system.dead_letters.by_reason.items()},
        )

    def _blocking(self) -> Iterator[Metric]:
        executor = self.sources.executor
        jobs = GaugeMetricFamily(
            "virtactor_blocking_jobs",
            "Blocking calls (libvirt, qemu-img) in the thread pool, by state.",
            labels=["state"],
        )
        jobs.add_metric(["queued"], executor.queued)
        jobs.add_metric(["running"], executor.running)
        yield jobs
        yield _gauge(
            "virtactor_blocking_workers", "Threads of the blocking pool.", executor.max_workers
        )

    def _libvirt(self) -> Iterator[Metric]:
        host = self.sources.libvirt()
        if host is None:
            return
        yield _gauge(
            "virtactor_libvirt_connected",
            "1 while the agent's libvirt connection is up, else 0.",
            1 if host.connected else 0,
        )
        yield _counter(
            "virtactor_libvirt_reconnects",
            "Connections to libvirt made after the first one (each follows a lost one).",
            max(host.connects - 1, 0),
        )
        yield _counter(
            "virtactor_libvirt_connect_failures",
            "Attempts to connect to libvirt that failed.",
            host.connect_failures,
        )

    def _events(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "virtactor_events_published",
            "Events published, by topic scope (instance, host, migration) and event name.",
            labels=["scope", "event"],
        )
        for (scope, event), count in self.sources.events.published_by.items():
            events.add_metric([scope, event], count)
        yield events

    def _workflows(self) -> Iterator[Metric]:
        workflows = self.sources.system.stats.workflows
        yield _by(
            "virtactor_claim_failures",
            "Resource claims refused for lack of a resource, by resource.",
            "resource",
            workflows.claim_failures,
        )
        yield _by(
            "virtactor_migrations",
            "Live migrations that ended, by outcome.",
            "outcome",
            workflows.migrations,
        )
        family = HistogramMetricFamily(
            "virtactor_migration_duration_seconds",
            "Durations of the live migrations that ended, from start to end.",
        )
        histogram = workflows.migration_seconds
        family.add_metric([], _buckets(histogram), histogram.sum)
        yield family

    def _records(self) -> Iterator[Metric]:
        saves = CounterMetricFamily(
            "virtactor_conductor_saves",
            "Records saved through the object backend, by object and outcome (ok, timeout, "
            "skipped, or the error class).",
            labels=["object", "outcome"],
        )
        records = self.sources.records
        if records is not None:
            for (objname, outcome), count in records.outcomes.items():
                saves.add_metric([objname, outcome], count)
        yield saves

    def _security(self) -> Iterator[Metric]:
        security = self.sources.security
        if security is None:
            return
        stats = security.stats
        yield _counter("virtactor_messages_signed", "Messages this agent signed.", stats.signed)
        yield _counter(
            "virtactor_messages_verified", "Signed messages received and accepted.", stats.verified
        )
        yield _counter(
            "virtactor_messages_unsigned_accepted",
            'Unsigned messages let in (signing = "sign", while a fleet turns signing on).',
            stats.unsigned_accepted,
        )
        refused = CounterMetricFamily(
            "virtactor_messages_refused",
            "Messages refused for their signature, by reason (unsigned, unknown-key, "
            "bad-signature, expired, replayed, ...).",
            labels=["reason"],
        )
        for reason, count in sorted(stats.refused.items()):
            refused.add_metric([reason], count)
        yield refused


def agent_registry(sources: AgentSources) -> CollectorRegistry:
    """A registry of one agent's metrics: its own, never the process-wide default."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(sources))
    return registry


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _by(
    name: str, documentation: str, label: str, values: Mapping[str, int], *, gauge: bool = False
) -> Metric:
    family: CounterMetricFamily | GaugeMetricFamily
    if gauge:
        family = GaugeMetricFamily(name, documentation, labels=[label])
    else:
        family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(values.items()):
        family.add_metric([value], count)
    return family


def _histogram(
    name: str,
    documentation: str,
    label: str,
    histograms: Iterable[tuple[str, LatencyHistogram]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in histograms:
        family.add_metric([value], _buckets(histogram), histogram.sum)
    return family


def _buckets(histogram: LatencyHistogram) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == float("inf") else repr(bound), count)
        for bound, count in histogram.cumulative()
    ]
