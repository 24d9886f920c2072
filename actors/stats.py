"""Plain counters of the runtime, shaped for a Prometheus exporter to read.

Nothing here knows about an exporter: an exporter reads these objects on each scrape
(`virtactor_actor_messages_total`, `virtactor_actor_handler_seconds`, ...).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.mailbox import Mailbox

# Seconds. From a sub-millisecond bookkeeping message up to a live migration's handler.
DEFAULT_LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


@dataclass(slots=True)
class LatencyHistogram:
    """Handler durations in buckets with Prometheus `le` semantics (value <= bound)."""

    bounds: tuple[float, ...] = DEFAULT_LATENCY_BOUNDS
    counts: list[int] = field(default_factory=list)  # one per bound, then the +Inf bucket
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        # Derived rather than kept: one less write per handled message.
        return sum(self.counts)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs ending with +Inf, as Prometheus wants."""
        running = 0
        buckets: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


@dataclass(slots=True)
class ActorStats:
    """The live counters of one actor (read them, don't write them).

    `handled` counts messages whose handler ran (whatever its outcome), `failed` those whose
    handler raised, `expired` those skipped because their deadline passed first, `restarts`
    the times the supervisor restarted the actor.
    """

    mailbox: Mailbox
    failed: int = 0
    expired: int = 0
    restarts: int = 0
    # Created on the first handled message: most of the many instance actors sit idle.
    _latency: LatencyHistogram | None = None

    @property
    def handled(self) -> int:
        return 0 if self._latency is None else self._latency.count

    @property
    def mailbox_depth(self) -> int:
        return len(self.mailbox)

    @property
    def mailbox_capacity(self) -> int:
        return self.mailbox.capacity

    @property
    def latency(self) -> LatencyHistogram:
        """Handler latency; an empty histogram when nothing was handled yet."""
        return self._latency if self._latency is not None else LatencyHistogram()

    def latency_or_new(self) -> LatencyHistogram:
        """The histogram to record into, created on first use."""
        latency = self._latency
        if latency is None:
            self._latency = latency = LatencyHistogram()
        return latency

    def observe(self, seconds: float) -> None:
        """Count one handled message that took `seconds` (the drain loop inlines this)."""
        self.latency_or_new().observe(seconds)


# Seconds. A live migration takes from a few seconds (an idle small guest) to an hour.
MIGRATION_DURATION_BOUNDS: tuple[float, ...] = (
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)


@dataclass(slots=True)
class WorkflowStats:
    """Counts the agent's workflows keep for an exporter, per actor system (so they outlive
    the restart of the actor that keeps them): failed claims by resource, and finished live
    migrations by outcome with their durations."""

    claim_failures: Counter[str] = field(default_factory=Counter)
    migrations: Counter[str] = field(default_factory=Counter)
    migration_seconds: LatencyHistogram = field(
        default_factory=lambda: LatencyHistogram(MIGRATION_DURATION_BOUNDS)
    )

    def claim_failed(self, resource: str) -> None:
        """Count one claim refused for lack of `resource` (vcpus, memory_mb, pci:<alias>)."""
        self.claim_failures[resource] += 1

    def migration_finished(self, outcome: str, seconds: float) -> None:
        """Count one live migration that ended with `outcome` (its Migration's final status:
        "completed", "failed", "cancelled", "error") after `seconds` from its start. Call it
        once per migration, on the source host, when the workflow ends whatever the outcome."""
        self.migrations[outcome] += 1
        self.migration_seconds.observe(seconds)


@dataclass(slots=True)
class RetiredStats:
    """What the stopped actors of one kind counted, so a kind's totals never go down when
    one of its actors stops (an exporter's counters must only grow)."""

    failed: int = 0
    expired: int = 0
    restarts: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def absorb(self, stats: ActorStats) -> None:
        self.failed += stats.failed
        self.expired += stats.expired
        self.restarts += stats.restarts
        self.latency = merge_histograms([self.latency, stats.latency])


@dataclass(slots=True)
class SystemStats:
    """Counters of a whole actor system: actors that came and went, what the stopped ones
    counted by kind (`retired`), and the counts its workflows keep (`workflows`)."""

    spawned: int = 0
    stopped: int = 0
    gave_up: int = 0
    workflows: WorkflowStats = field(default_factory=WorkflowStats)
    retired: dict[str, RetiredStats] = field(default_factory=dict)


def merge_histograms(histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
    """One histogram summing `histograms`, e.g. all actors of one kind for one metric series."""
    total = LatencyHistogram()
    for histogram in histograms:
        if histogram.bounds != total.bounds:
            raise ValueError(f"histogram bounds differ: {histogram.bounds} != {total.bounds}")
        for index, count in enumerate(histogram.counts):
            total.counts[index] += count
        total.sum += histogram.sum
    return total
