"""Stopping a process on SIGTERM or SIGINT at any point, start-up included.

The process's work runs as one task and a signal cancels it (trio's model: a stop request is a
cancellation), so whatever the task is waiting for when the signal comes (a broker that does
not answer, a retry's pause, serving) ends there, and its cleanup (`finally`, `async with`,
`aclose()`) runs as it unwinds. No step needs to poll a "stopping" flag.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def run_until_signalled(
    body: Coroutine[Any, Any, int], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> int:
    """Run `body` and return its exit status, or 0 once it has unwound after a signal.

    The first signal cancels `body` (its cleanup runs); a second one while it unwinds
    cancels the cleanup too, for an operator who will not wait. An error of `body`
    propagates. Must be called from the main thread (signal handlers are set there).
    """
    task = asyncio.create_task(body, name="virtactor")
    received: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        received.append(signum)
        log.info("%s received: stopping", signum.name)
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in signals:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not received or (current is not None and current.cancelling()):
            raise  # we were cancelled ourselves, not (only) `body` by a signal
        return 0
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
