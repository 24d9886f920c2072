"""The live-migration monitor: what the policy says to do after each poll of the job.

Pure: fed one `JobProgress` per poll (libvirt's job statistics) and the time, it answers
the actions to take now, each at most once. Nothing here touches libvirt or a clock.

- The downtime starts at `max_downtime_ms` (applied by the caller before the job starts).
- A stall is an iteration (a pass over guest memory) that ended without the remaining data
  reaching a new low. The stalls are counted over the whole migration; each convergence step
  is applied once, when the count reaches its `stalls`.
- Completion timeout: `completion_timeout_per_gib` x the guest's memory in GiB (at least 1)
  since the job started. Progress timeout: no new low of the remaining data for
  `progress_timeout` seconds. Either fires `timeout_action` once (0 disables a timeout).
- Post-copy and force-complete fall back as nova does: post-copy when the policy does not
  permit it becomes force-complete (pause the guest so the last pages copy), and
  force-complete becomes post-copy when it is permitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.objects.enums import MigrationAction
from schemas.objects.migration_policy import MigrationPolicy

MIB = 1024 * 1024


@dataclass(slots=True, frozen=True)
class JobProgress:
    """One poll of a migration job; sizes in bytes, `dirty_rate` in pages per second."""

    elapsed_ms: int = 0
    data_total: int = 0
    data_processed: int = 0
    data_remaining: int = 0
    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    disk_total: int = 0
    disk_processed: int = 0
    disk_remaining: int = 0
    iteration: int = 0
    dirty_rate: int = 0
    downtime_ms: int | None = None
    postcopy: bool = False

    @property
    def percent(self) -> int:
        """How much of the data is copied, 0-100 (100 only when nothing remains)."""
        if self.data_total <= 0:
            return 0
        done = 100 * (self.data_total - self.data_remaining) // self.data_total
        return max(0, min(100 if self.data_remaining == 0 else 99, done))


@dataclass(slots=True, frozen=True)
class Action:
    action: MigrationAction
    downtime_ms: int | None = None
    reason: str = ""


@dataclass(slots=True)
class ConvergenceMonitor:
    """See the module docstring. `started` is the time (seconds) the job started."""

    policy: MigrationPolicy
    memory_mb: int
    started: float
    stalls: int = 0
    lowest: int | None = None
    lowest_at: float = 0.0
    _iteration: int = 0
    _new_low_this_iteration: bool = False
    _steps_done: int = 0
    _timed_out: bool = False
    _postcopy: bool = False
    actions: list[Action] = field(default_factory=list)  # every action decided so far

    def __post_init__(self) -> None:
        self.lowest_at = self.started

    @property
    def completion_timeout(self) -> float:
        """Seconds the whole job may take (0: no limit)."""
        gib = max(1.0, self.memory_mb / 1024)
        return self.policy.completion_timeout_per_gib * gib

    def observe(self, progress: JobProgress, now: float) -> list[Action]:
        """The actions to take after this poll, in order."""
        decided: list[Action] = []
        self._postcopy = self._postcopy or progress.postcopy
        if self.lowest is None or progress.data_remaining < self.lowest:
            self.lowest, self.lowest_at = progress.data_remaining, now
            self._new_low_this_iteration = True
        if progress.iteration > self._iteration:
            if self._iteration > 0 and not self._new_low_this_iteration:
                self.stalls += progress.iteration - self._iteration
            self._iteration = progress.iteration
            self._new_low_this_iteration = False
            decided += self._convergence_steps()
        if not self._timed_out and not self._postcopy:
            reason = self._timeout(now)
            if reason:
                self._timed_out = True
                decided.append(
                    self._resolved(
                        Action(MigrationAction(self.policy.timeout_action), None, reason)
                    )
                )
        for action in decided:
            if action.action is MigrationAction.POST_COPY:
                self._postcopy = True
        self.actions += decided
        return decided

    def _convergence_steps(self) -> list[Action]:
        steps = sorted(self.policy.convergence, key=lambda step: step.stalls)
        decided = []
        while self._steps_done < len(steps) and steps[self._steps_done].stalls <= self.stalls:
            step = steps[self._steps_done]
            self._steps_done += 1
            if self._postcopy:
                continue  # nothing converges a post-copy migration further
            reason = f"{self.stalls} stalled iterations"
            decided.append(
                self._resolved(Action(MigrationAction(step.action), step.downtime_ms, reason))
            )
        return decided

    def _timeout(self, now: float) -> str:
        limit = self.completion_timeout
        if limit > 0 and now - self.started > limit:
            return f"not completed within {limit:.0f}s"
        stalled = self.policy.progress_timeout
        if stalled > 0 and now - self.lowest_at > stalled:
            return f"no progress for {stalled}s"
        return ""

    def _resolved(self, action: Action) -> Action:
        """Post-copy only where permitted; force-complete by post-copy where it is."""
        wanted = action.action
        if wanted is MigrationAction.POST_COPY and not self.policy.post_copy:
            return Action(MigrationAction.FORCE_COMPLETE, None, action.reason)
        if wanted is MigrationAction.FORCE_COMPLETE and self.policy.post_copy:
            return Action(MigrationAction.POST_COPY, None, action.reason)
        return action
