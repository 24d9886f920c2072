"""Supervision policy: when a crashed actor is restarted, after how long, and when to give up.

Pure functions of explicit inputs, tested without clocks. The runtime (`actors.cell`) applies
them: a crash in `on_start`, or a handler raising one of the strategy's fatal classes, restarts
the actor after an exponential back-off, until `max_restarts` fall within `window` seconds;
then the actor stops and its failure is reported to its parent and to the system.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartStrategy:
    """How an actor recovers from a crash.

    `fatal` lists exception classes that, raised by a handler, mean the actor's state can no
    longer be trusted: the asker still gets its typed error, then the actor restarts. Other
    handler exceptions only fail their own message.
    """

    max_restarts: int = 5
    window: float = 60.0
    min_backoff: float = 0.1
    max_backoff: float = 10.0
    fatal: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {self.window}")
        if not 0 <= self.min_backoff <= self.max_backoff:
            raise ValueError(
                f"need 0 <= min_backoff <= max_backoff, got {self.min_backoff}, {self.max_backoff}"
            )


def restart_delay(
    strategy: RestartStrategy, restart_times: Iterable[float], now: float
) -> float | None:
    """Seconds to wait before the next restart, or None to give up.

    `restart_times` are the `time.monotonic()` times of earlier restarts. Only those within
    the strategy's window count: the n-th restart in the window waits
    min_backoff * 2**(n-1), capped at max_backoff.
    """
    recent = sum(1 for when in restart_times if now - when < strategy.window)
    if recent >= strategy.max_restarts:
        return None
    return min(strategy.max_backoff, strategy.min_backoff * 2.0**recent)


@dataclass(frozen=True, slots=True)
class ActorFailure:
    """Report of an actor that crashed more often than its strategy allows, and stopped."""

    address: str
    error: BaseException
    restarts: int
