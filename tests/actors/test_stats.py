"""Observability counters: mailbox depth, handled, latency histogram, restarts."""

from __future__ import annotations

import pytest

from actors import ActorSystem, LatencyHistogram, merge_histograms

from .actors_for_tests import Recorder


def test_histogram_buckets_follow_prometheus_le_semantics() -> None:
    histogram = LatencyHistogram(bounds=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 2, 1]
    assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(8.65)


def test_merging_histograms_adds_counts_and_refuses_other_bounds() -> None:
    first, second = LatencyHistogram(), LatencyHistogram()
    first.observe(0.002)
    second.observe(0.002)
    second.observe(400.0)
    total = merge_histograms([first, second])
    assert (total.count, total.counts[2], total.counts[-1]) == (3, 2, 1)  # le 0.0025, +Inf
    with pytest.raises(ValueError, match="histogram bounds differ"):
        merge_histograms([first, LatencyHistogram(bounds=(1.0,))])


async def test_actor_stats_count_handled_messages_depth_and_latency(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor, mailbox_capacity=16)
    stats = system.stats_of("host")
    assert (stats.handled, stats.mailbox_depth, stats.mailbox_capacity) == (0, 0, 16)
    assert stats.latency.count == 0
    await ref.tell("hold")
    await actor.holding.wait()
    for value in range(3):
        await ref.tell("record", {"value": value})
    assert stats.mailbox_depth == 3
    actor.gate.set()
    await ref.ask("record", {"value": "end"})
    assert (stats.handled, stats.failed, stats.mailbox_depth) == (5, 0, 0)
    assert stats.latency.count == 5
    assert sum(stats.latency.counts) == 5
    assert dict(system.iter_stats()) == {"host": stats}


async def test_system_stats_count_spawned_and_stopped_actors(system: ActorSystem) -> None:
    for index in range(3):
        system.spawn(f"instance:{index}", Recorder)
    await system.stop("instance:0")
    assert (system.stats.spawned, system.stats.stopped, system.stats.gave_up) == (3, 1, 0)


async def test_a_stopped_actors_counts_stay_with_its_kind(system: ActorSystem) -> None:
    for index in range(2):
        ref = system.spawn(f"instance:{index}", Recorder)
        await ref.ask("record", {"value": index})
    await system.stop("instance:0")
    retired = system.stats.retired["instance"]
    assert (retired.latency.count, retired.failed, retired.restarts) == (1, 0, 0)
    live = [stats.latency.count for _, stats in system.iter_stats()]
    # Kind totals: the live actor's message and the stopped one's, none lost.
    assert sum(live) + retired.latency.count == 2
