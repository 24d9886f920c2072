"""BlockingExecutor: blocking calls off the loop, bounded, cancellation-aware, counted."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import time

import pytest

from actors import Actor, ActorSystem, BlockingExecutor, ExecutorShutdown, handler
from actors.testing import LoopBlockingDetector, watch_loop_blocking

from .actors_for_tests import eventually

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_run_returns_the_result_and_raises_the_exception_of_the_call(
    executor: BlockingExecutor,
) -> None:
    assert await executor.run(sum, [1, 2, 3]) == 6
    assert await executor.run(int, "7", base=8) == 7
    with pytest.raises(ValueError, match="invalid literal"):
        await executor.run(int, "x")
    assert (executor.completed, executor.failed, executor.queued, executor.running) == (3, 1, 0, 0)


async def test_the_thread_sees_the_callers_contextvars(executor: BlockingExecutor) -> None:
    request_id.set("req-42")
    assert await executor.run(request_id.get) == "req-42"


async def test_at_most_max_workers_calls_run_at_once() -> None:
    pool = BlockingExecutor(2, "bounded")
    lock = threading.Lock()
    running, peak = 0, 0

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    await asyncio.gather(*(pool.run(job) for _ in range(8)))
    await pool.aclose()
    assert peak == 2
    assert pool.completed == 8


async def test_a_job_cancelled_while_queued_never_starts() -> None:
    pool = BlockingExecutor(1, "one")
    release, started = threading.Event(), threading.Event()
    second_ran = threading.Event()

    def blocker() -> None:
        started.set()
        release.wait()

    first = asyncio.create_task(pool.run(blocker))
    await eventually(started.is_set)
    second = asyncio.create_task(pool.run(second_ran.set))
    await asyncio.sleep(0)
    assert pool.queued == 1
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    await first
    await pool.aclose()
    assert not second_ran.is_set()
    assert (pool.cancelled, pool.completed, pool.queued) == (1, 1, 0)


async def test_cancelling_a_running_job_returns_at_once_and_the_thread_finishes_later(
    executor: BlockingExecutor,
) -> None:
    release, started, finished = threading.Event(), threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        release.wait()
        finished.set()

    task = asyncio.create_task(executor.run(job))
    await eventually(started.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not finished.is_set()
    assert executor.running == 1
    release.set()
    await executor.aclose()
    assert finished.is_set()
    assert executor.completed == 1


async def test_run_after_shutdown_raises_executor_shutdown() -> None:
    pool = BlockingExecutor(1, "closed")
    await pool.aclose()
    with pytest.raises(ExecutorShutdown) as caught:
        await pool.run(time.time)
    assert str(caught.value) == "blocking executor 'closed' is shut down and takes no more work"


async def test_a_sleep_in_the_executor_does_not_block_the_loop(
    executor: BlockingExecutor, loop_blocking: LoopBlockingDetector
) -> None:
    await executor.run(time.sleep, 0.3)
    await asyncio.sleep(0)
    assert loop_blocking.reports == []


async def test_a_sleep_on_the_loop_is_reported_as_blocking(
    loop_blocking: LoopBlockingDetector,
) -> None:
    time.sleep(0.3)  # noqa: ASYNC251 -- blocking the loop is what this test detects
    await asyncio.sleep(0)
    (report,) = loop_blocking.reports
    assert report.seconds >= 0.3
    assert "test_a_sleep_on_the_loop_is_reported_as_blocking" in report.callback
    with pytest.raises(AssertionError, match=r"the event loop was blocked 1 time\(s\)"):
        loop_blocking.assert_not_blocked()
    loop_blocking.reports.clear()  # blocking was this test's point


async def test_watching_puts_the_loop_in_debug_mode_and_restores_it_after() -> None:
    loop = asyncio.get_running_loop()
    outer = (loop.get_debug(), loop.slow_callback_duration)
    with watch_loop_blocking(threshold=0.05) as detector:
        assert loop.get_debug()
        assert loop.slow_callback_duration == 0.05
        assert detector.threshold == 0.05
    assert (loop.get_debug(), loop.slow_callback_duration) == outer


async def test_an_actor_offloads_a_blocking_call_and_other_actors_keep_answering(
    system: ActorSystem, loop_blocking: LoopBlockingDetector
) -> None:
    release = threading.Event()

    class Host(Actor):
        @handler
        async def slow_libvirt_call(self) -> str:
            await self.system.executor.run(release.wait, 5)
            return "done"

    class Tracker(Actor):
        @handler
        async def ping(self) -> str:
            return "pong"

    host = system.spawn("host", Host)
    tracker = system.spawn("tracker", Tracker)
    slow = asyncio.create_task(host.ask("slow_libvirt_call"))
    await eventually(lambda: system.executor.running == 1)
    assert await tracker.ask("ping", timeout=5) == "pong"
    assert not slow.done()
    release.set()
    assert await slow == "done"
    assert loop_blocking.reports == []


async def test_aclose_with_a_timeout_does_not_wait_for_a_stuck_job() -> None:
    release = threading.Event()
    executor = BlockingExecutor(1, "stuck")
    job = asyncio.ensure_future(executor.run(release.wait, 30))
    while executor.running == 0:  # noqa: ASYNC110 - a counter another thread moves
        await asyncio.sleep(0.01)
    await executor.aclose(timeout=0.1)
    assert executor.running == 1
    release.set()
    assert await job is True


async def test_time_in_the_garbage_collector_is_not_counted_as_blocking() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: object = self

    # Made in short steps on the loop (a thread making it would hold the GIL against the
    # loop, which any watcher would rightly see as blocking).
    garbage: list[Node] = []
    for _ in range(30):
        garbage.extend(Node() for _ in range(10_000))
        await asyncio.sleep(0)
    del garbage  # unreachable cycles, for a full collection to find
    with watch_loop_blocking(threshold=0.01) as detector:
        await asyncio.sleep(0)  # a step of its own for the collection
        collected = time.monotonic()
        gc.collect()
        took = time.monotonic() - collected
        await asyncio.sleep(0)
        slept = time.monotonic()
        time.sleep(0.02)  # noqa: ASYNC251 - a real block, next to it
        await asyncio.sleep(0)
    assert time.monotonic() - slept >= 0.02
    blocks = [r.seconds for r in detector.reports]
    assert len(blocks) == 1, (blocks, took)
    assert blocks[0] >= 0.02
