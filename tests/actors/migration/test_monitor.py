"""The migration monitor: stalls, the convergence schedule and the two timeouts."""

from __future__ import annotations

from actors.migration.monitor import Action, ConvergenceMonitor, JobProgress
from schemas.objects.enums import MigrationAction
from schemas.objects.migration_policy import ConvergenceStep, MigrationPolicy

GIB = 1024**3


def poll(iteration: int, remaining: int, *, postcopy: bool = False) -> JobProgress:
    return JobProgress(
        data_total=GIB, data_remaining=remaining, iteration=iteration, postcopy=postcopy
    )


def schedule(*steps: tuple[int, MigrationAction, int | None]) -> list[ConvergenceStep]:
    return [ConvergenceStep(stalls=s, action=a, downtime_ms=d) for s, a, d in steps]


def monitor(**policy: object) -> ConvergenceMonitor:
    values: dict[str, object] = {"completion_timeout_per_gib": 0, "progress_timeout": 0}
    return ConvergenceMonitor(MigrationPolicy(**(values | policy)), memory_mb=1024, started=0.0)


def test_iterations_that_reach_a_new_low_are_not_stalls() -> None:
    watch = monitor()
    for iteration, remaining in enumerate([900, 800, 700, 600], start=1):
        assert watch.observe(poll(iteration, remaining * 1024**2), now=iteration) == []
    assert watch.stalls == 0


def test_each_convergence_step_is_applied_once_when_the_stalls_reach_it() -> None:
    steps = schedule(
        (1, MigrationAction.SET_DOWNTIME, 150),
        (3, MigrationAction.SET_DOWNTIME, 300),
        (4, MigrationAction.ABORT, None),
    )
    watch = monitor(convergence=steps)
    seen: list[list[Action]] = []
    remaining = [500, 500, 600, 500, 700, 700]  # a new low only at the first poll
    for iteration, left in enumerate(remaining, start=1):
        seen.append(watch.observe(poll(iteration, left), now=iteration))
    assert [a.action for batch in seen for a in batch] == [
        MigrationAction.SET_DOWNTIME,
        MigrationAction.SET_DOWNTIME,
        MigrationAction.ABORT,
    ]
    assert [a.downtime_ms for batch in seen for a in batch][:2] == [150, 300]
    assert seen[1] and seen[1][0].downtime_ms == 150  # the first stall: iteration 2
    assert watch.stalls == 5


def test_several_polls_within_one_iteration_count_one_stall_at_most() -> None:
    watch = monitor(convergence=schedule((2, MigrationAction.ABORT, None)))
    watch.observe(poll(1, 100), now=0)
    for now in range(1, 10):
        assert watch.observe(poll(2, 200), now=now) == []  # iteration 2 stalled: 1 stall
    assert watch.stalls == 1


def test_the_progress_timeout_fires_the_timeout_action_once() -> None:
    watch = monitor(progress_timeout=10, timeout_action=MigrationAction.ABORT)
    watch.observe(poll(1, 100), now=0)
    assert watch.observe(poll(1, 100), now=10) == []
    [fired] = watch.observe(poll(1, 100), now=11)
    assert fired.action is MigrationAction.ABORT and "no progress for 10s" in fired.reason
    assert watch.observe(poll(1, 100), now=30) == []


def test_progress_resets_the_progress_timeout() -> None:
    watch = monitor(progress_timeout=10)
    for now in range(0, 50, 5):
        assert watch.observe(poll(1, 1000 - now), now=now) == []


def test_the_completion_timeout_scales_with_the_guests_memory() -> None:
    policy = MigrationPolicy(completion_timeout_per_gib=10, progress_timeout=0)
    watch = ConvergenceMonitor(policy, memory_mb=4096, started=100.0)
    assert watch.completion_timeout == 40
    assert watch.observe(poll(1, 1000 - 1), now=140) == []
    [fired] = watch.observe(poll(1, 1000 - 2), now=141)
    assert "not completed within 40s" in fired.reason


def test_post_copy_not_permitted_becomes_force_complete_and_the_other_way_round() -> None:
    refused = monitor(progress_timeout=1, timeout_action=MigrationAction.POST_COPY)
    refused.observe(poll(1, 5), now=0)
    assert [a.action for a in refused.observe(poll(1, 5), now=2)] == [
        MigrationAction.FORCE_COMPLETE
    ]
    permitted = monitor(
        progress_timeout=1, timeout_action=MigrationAction.FORCE_COMPLETE, post_copy=True
    )
    permitted.observe(poll(1, 5), now=0)
    assert [a.action for a in permitted.observe(poll(1, 5), now=2)] == [MigrationAction.POST_COPY]


def test_nothing_more_is_decided_once_post_copy_runs() -> None:
    watch = monitor(
        progress_timeout=1,
        post_copy=True,
        convergence=schedule(
            (1, MigrationAction.POST_COPY, None), (2, MigrationAction.ABORT, None)
        ),
    )
    watch.observe(poll(1, 5), now=0)
    assert [a.action for a in watch.observe(poll(2, 6), now=0.5)] == [MigrationAction.POST_COPY]
    assert watch.observe(poll(3, 7, postcopy=True), now=5) == []


def test_percent_is_100_only_when_nothing_remains() -> None:
    assert JobProgress(data_total=100, data_remaining=0).percent == 100
    assert JobProgress(data_total=100, data_remaining=1).percent == 99
    assert JobProgress(data_total=100, data_remaining=60).percent == 40
    assert JobProgress().percent == 0
