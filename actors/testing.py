"""Test helpers: catch a blocked event loop.

asyncio's debug mode times every callback and task step and logs "Executing <handle> took
N seconds" for those slower than `loop.slow_callback_duration`. `watch_loop_blocking` turns
that on, collects the reports, and `assert_not_blocked` fails a test that had any. It imports
nothing from pytest, so any test tier can wrap it in a fixture.

Time the interpreter spent in its cyclic garbage collector during a step is not the step's
blocking: a full collection late in a long test session can take a few hundred milliseconds
wherever it lands. The detector times every collection (`gc.callbacks`) and counts a step
only for what is left.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_ASYNCIO_LOGGER = "asyncio"
_SLOW_CALLBACK_PREFIX = "Executing "


@dataclass(frozen=True, slots=True)
class SlowCallback:
    """One report: what ran on the loop, and for how long it held it."""

    callback: str
    seconds: float


class LoopBlocked(AssertionError):
    """The event loop was held by one callback for longer than allowed."""


class LoopBlockingDetector(logging.Handler):
    """Collects asyncio's slow-callback reports of at least `threshold` seconds."""

    def __init__(self, threshold: float) -> None:
        super().__init__(level=logging.WARNING)
        self.threshold = threshold
        self.reports: list[SlowCallback] = []
        self._collections: list[tuple[float, float]] = []  # (ended at, seconds), recent
        self._gc_started: float | None = None

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """A `gc.callbacks` hook: times each collection."""
        now = time.monotonic()
        if phase == "start":
            self._gc_started = now
        elif self._gc_started is not None:
            self._collections.append((now, now - self._gc_started))
            self._collections = self._collections[-64:]
            self._gc_started = None

    def _collecting(self, window: float) -> float:
        """Seconds spent collecting garbage within the last `window` seconds."""
        since = time.monotonic() - window
        return sum(seconds for ended, seconds in self._collections if ended >= since)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if (
            isinstance(record.msg, str)
            and record.msg.startswith(_SLOW_CALLBACK_PREFIX)
            and isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[1], float)
            and args[1] - self._collecting(args[1]) >= self.threshold
        ):
            self.reports.append(SlowCallback(str(args[0]), args[1]))

    def assert_not_blocked(self) -> None:
        """Raise `LoopBlocked` naming every callback that held the loop too long."""
        if self.reports:
            lines = "\n".join(f"  {r.seconds:.3f}s  {r.callback}" for r in self.reports)
            raise LoopBlocked(
                f"the event loop was blocked {len(self.reports)} time(s) for "
                f">= {self.threshold}s:\n{lines}"
            )


@contextmanager
def watch_loop_blocking(
    loop: asyncio.AbstractEventLoop | None = None, threshold: float = 0.1
) -> Iterator[LoopBlockingDetector]:
    """Run `loop` (default: the running one) in debug mode and collect slow-callback reports
    of at least `threshold` seconds until the block ends; the loop's settings are restored.

    Reports reach the detector at the end of the step that blocked, so check it after the
    next `await`, or on leaving the block.
    """
    loop = loop or asyncio.get_running_loop()
    logger = logging.getLogger(_ASYNCIO_LOGGER)
    detector = LoopBlockingDetector(threshold)
    saved_debug, saved_duration, saved_level = (
        loop.get_debug(),
        loop.slow_callback_duration,
        logger.level,
    )
    logger.addHandler(detector)
    gc.callbacks.append(detector.on_gc)
    if not logger.isEnabledFor(logging.WARNING):
        logger.setLevel(logging.WARNING)
    loop.set_debug(True)
    loop.slow_callback_duration = min(threshold, saved_duration)
    try:
        yield detector
    finally:
        loop.slow_callback_duration = saved_duration
        loop.set_debug(saved_debug)
        logger.setLevel(saved_level)
        logger.removeHandler(detector)
        gc.callbacks.remove(detector.on_gc)
