"""Fixtures of the actor runtime's tests.

Every async test here runs with the loop in debug mode and fails if any callback held the
loop for 0.25 s or more (`loop_blocking`). The `system` fixture closes its actor system after
the test and fails it when any task is left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from actors import ActorSystem, BlockingExecutor
from actors.testing import LoopBlockingDetector, watch_loop_blocking

# Generous enough for a loaded 2-core CI machine; a blocking libvirt call takes longer.
BLOCKING_THRESHOLD = 0.25


@pytest.fixture(autouse=True)
async def loop_blocking() -> AsyncIterator[LoopBlockingDetector]:
    """Fails the test when the event loop was blocked; a test that blocks on purpose
    clears `reports` after checking them."""
    with watch_loop_blocking(threshold=BLOCKING_THRESHOLD) as detector:
        yield detector
        await asyncio.sleep(0)  # let the report of the test's last step arrive
    detector.assert_not_blocked()


@pytest.fixture
async def executor() -> AsyncIterator[BlockingExecutor]:
    pool = BlockingExecutor(4, "test-blocking")
    yield pool
    await pool.aclose()


@pytest.fixture
async def system(executor: BlockingExecutor) -> AsyncIterator[ActorSystem]:
    actor_system = ActorSystem(executor=executor, stop_timeout=2.0)
    yield actor_system
    await actor_system.aclose()
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    assert not leftover, f"tasks left behind after aclose(): {leftover}"
