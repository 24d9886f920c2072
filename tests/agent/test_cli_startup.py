"""The start-up retry and the signal that stops a process, in one process: no broker, no
subprocess."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from agent.config import ConfigError
from agent.errors import HypervisorUnavailable
from agent.signals import run_until_signalled
from agent.startup import start_with_retries
from agent.virt.reconnect import Backoff

QUICK = Backoff(initial=0.01, factor=2.0, maximum=0.02)


async def test_a_transient_failure_is_logged_with_its_reason_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = [ConnectionRefusedError(111, "Connect call failed"), HypervisorUnavailable()]

    async def start() -> str:
        if failures:
            raise failures.pop(0)
        return "started"

    with caplog.at_level(logging.WARNING, logger="agent.startup"):
        assert await start_with_retries(start, "agent cmp-1", backoff=QUICK) == "started"
    assert [r.getMessage() for r in caplog.records] == [
        "agent cmp-1: start failed ([Errno 111] Connect call failed); retrying in 0.01s",
        f"agent cmp-1: start failed ({HypervisorUnavailable()}); retrying in 0.02s",
    ]


async def test_an_attempt_that_does_not_answer_in_time_is_a_failure_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0

    async def start() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(10)
        return attempts

    with caplog.at_level(logging.WARNING, logger="agent.startup"):
        assert await start_with_retries(start, "x", backoff=QUICK, attempt_timeout=0.05) == 2
    assert caplog.records[0].getMessage() == (
        "x: start failed (no answer within 0.05s); retrying in 0.01s"
    )


async def test_an_error_that_cannot_pass_is_raised_at_once() -> None:
    async def start() -> None:
        raise ConfigError(where="[agent] host", reason="taken")

    with pytest.raises(ConfigError, match="taken"):
        await start_with_retries(start, "x", backoff=QUICK)


async def test_a_signal_cancels_the_body_its_cleanup_runs_and_the_status_is_0() -> None:
    cleaned: list[str] = []

    async def body() -> int:
        try:
            await asyncio.sleep(10)
            return 1
        finally:
            await asyncio.sleep(0)  # cleanup may still await
            cleaned.append("aclose")

    async def signal_soon() -> None:
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = asyncio.create_task(signal_soon())
    assert await asyncio.wait_for(run_until_signalled(body()), 5) == 0
    await sender
    assert cleaned == ["aclose"]
    # The handlers are gone again: the default action is back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_without_a_signal_the_bodys_status_and_errors_come_through() -> None:
    async def done() -> int:
        return 3

    async def broken() -> int:
        raise ConfigError(where="[amqp] url", reason="empty")

    assert await run_until_signalled(done()) == 3
    with pytest.raises(ConfigError, match="empty"):
        await run_until_signalled(broken())
