"""A redelivered message id runs its work once and gets the first reply; the id reused for
another call is refused."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import MessageIdConflict
from agent.rpc.dedup import CallKey, ReplyCache

KEY = CallKey("pause", b"digest-of-target-and-arguments")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_duplicate_after_completion_gets_the_cached_reply_without_running() -> None:
    cache = ReplyCache()
    runs: list[str] = []

    async def work() -> bytes:
        runs.append("ran")
        return b"reply"

    assert await cache.run_once("m1", KEY, work) == (b"reply", False)
    assert await cache.run_once("m1", KEY, work) == (b"reply", True)
    assert runs == ["ran"]
    assert cache.duplicates == 1


async def test_a_duplicate_during_the_first_run_waits_for_the_same_reply() -> None:
    cache = ReplyCache()
    release = asyncio.Event()
    runs = 0

    async def work() -> bytes:
        nonlocal runs
        runs += 1
        await release.wait()
        return b"done"

    first = asyncio.create_task(cache.run_once("m1", KEY, work))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.run_once("m1", KEY, work))
    await asyncio.sleep(0)
    release.set()
    assert await first == (b"done", False)
    assert await second == (b"done", True)
    assert runs == 1


async def test_a_failed_run_is_forgotten_so_a_redelivery_runs_again() -> None:
    cache = ReplyCache()
    attempts = 0

    async def flaky() -> bytes:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("first try fails")
        return b"ok"

    with pytest.raises(OSError, match="first try fails"):
        await cache.run_once("m1", KEY, flaky)
    assert await cache.run_once("m1", KEY, flaky) == (b"ok", False)


async def test_entries_expire_after_ttl_and_capacity_evicts_the_oldest() -> None:
    clock = Clock()
    cache = ReplyCache(capacity=2, ttl=10, clock=clock)

    async def reply(body: bytes) -> bytes:
        return body

    await cache.run_once("a", KEY, lambda: reply(b"a"))
    await cache.run_once("b", KEY, lambda: reply(b"b"))
    await cache.run_once("c", KEY, lambda: reply(b"c"))
    assert len(cache) == 2
    assert await cache.run_once("a", KEY, lambda: reply(b"a-again")) == (b"a-again", False)
    clock.now = 100
    assert await cache.run_once("c", KEY, lambda: reply(b"c-again")) == (b"c-again", False)


async def test_a_long_running_request_does_not_stop_finished_replies_from_being_evicted() -> None:
    cache = ReplyCache(capacity=3, ttl=600)
    release = asyncio.Event()

    async def long_work() -> bytes:
        await release.wait()
        return b"long"

    async def quick() -> bytes:
        return b"quick"

    long_run = asyncio.create_task(cache.run_once("long", KEY, long_work))
    await asyncio.sleep(0)
    for i in range(50):
        await cache.run_once(f"m{i}", KEY, quick)
    assert len(cache) == 4  # three finished, one running
    release.set()
    assert await long_run == (b"long", False)
    assert await cache.run_once("long", KEY, quick) == (b"long", True)


async def test_the_byte_budget_evicts_the_oldest_replies_but_keeps_the_newest() -> None:
    cache = ReplyCache(capacity=100, ttl=600, max_bytes=1000)

    async def reply(size: int) -> bytes:
        return b"x" * size

    for i in range(5):
        await cache.run_once(f"m{i}", KEY, lambda: reply(300))
    assert len(cache) == 3 and cache.bytes == 900
    assert await cache.run_once("m4", KEY, lambda: reply(1)) == (b"x" * 300, True)
    assert await cache.run_once("m0", KEY, lambda: reply(1)) == (b"x", False)  # evicted: runs

    await cache.run_once("huge", KEY, lambda: reply(5000))
    assert len(cache) == 1 and cache.bytes == 5000  # alone over budget, still answered once
    assert await cache.run_once("huge", KEY, lambda: reply(1)) == (b"x" * 5000, True)


async def test_an_id_reused_for_other_arguments_is_refused_and_nothing_runs() -> None:
    cache = ReplyCache()
    runs: list[str] = []

    async def work() -> bytes:
        runs.append("ran")
        return b"paused"

    await cache.run_once("m1", KEY, work)
    with pytest.raises(MessageIdConflict) as refused:
        await cache.run_once("m1", CallKey("pause", b"another-instance"), work)
    assert str(refused.value) == (
        "message id 'm1' was already used for another call ('pause'); this 'pause' call "
        "was not run: give a new call a new message id"
    )
    assert runs == ["ran"]
    assert cache.duplicates == 0
    assert await cache.run_once("m1", KEY, work) == (b"paused", True)  # still the first's


async def test_an_id_reused_for_another_method_while_the_first_runs_is_refused() -> None:
    cache = ReplyCache()
    release = asyncio.Event()

    async def work() -> bytes:
        await release.wait()
        return b"paused"

    first = asyncio.create_task(cache.run_once("m1", KEY, work))
    await asyncio.sleep(0)
    with pytest.raises(MessageIdConflict) as refused:
        async with asyncio.timeout(5):  # a duplicate would wait for the first to finish
            await cache.run_once("m1", CallKey("unpause", KEY.digest), work)
    assert refused.value.fields == {
        "message_id": "m1",
        "method": "unpause",
        "first_method": "pause",
    }
    release.set()
    assert await first == (b"paused", False)
