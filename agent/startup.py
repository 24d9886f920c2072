"""Starting something that depends on a peer that may not be up yet (RabbitMQ, libvirt):
try, and while it fails for a reason that may pass, log why and try again, longer apart.

Each attempt has a deadline, so a peer that never answers (a dropped SYN) is one more failed
attempt rather than a hang; cancelling (a signal, see `agent.signals`) stops at once, and an
attempt cleans up after itself before the next one starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiormq

from agent.virt.reconnect import Backoff
from schemas.errors import VirtactorError

log = logging.getLogger(__name__)

T = TypeVar("T")

START_BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=30.0)
# Longer than any one step of a healthy start (a publish confirm waits at most 30 s).
START_ATTEMPT_TIMEOUT = 60.0


def is_transient(exc: BaseException) -> bool:
    """Whether starting again may succeed: the peer is unreachable (socket errors, and aiormq's
    own, which the AMQP transport lets through from its first connect), an attempt ran out of
    time, or one of our errors that says it is retryable."""
    if isinstance(exc, VirtactorError):
        return exc.retryable
    return isinstance(exc, OSError | TimeoutError | aiormq.exceptions.AMQPConnectionError)


async def start_with_retries(
    start: Callable[[], Awaitable[T]],
    what: str,
    *,
    backoff: Backoff = START_BACKOFF,
    attempt_timeout: float = START_ATTEMPT_TIMEOUT,
) -> T:
    """`await start()` until it returns; after a transient failure (`is_transient`) log a
    warning naming `what` and the reason, wait `backoff`'s delay and try again. Any other
    error propagates. `start` must leave nothing running when it fails (a new object each
    attempt is simplest); on cancellation the attempt under way unwinds the same way."""
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(attempt_timeout):
                return await start()
        except Exception as exc:
            if not is_transient(exc):
                raise
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {attempt_timeout:g}s"
            delay = backoff.delay(attempt)
            log.warning("%s: start failed (%s); retrying in %gs", what, reason, delay)
        await asyncio.sleep(delay)
        attempt += 1
