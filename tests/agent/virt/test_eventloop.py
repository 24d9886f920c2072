"""LoopBoundEventImpl: libvirt's event hooks called from any thread act on the loop, in order.

These tests drive an impl that is NOT registered with libvirt (libvirt takes one per process),
calling its hooks the way libvirt does, with real pipes as the watched descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from agent.virt.eventloop import LoopBoundEventImpl

pytestmark = pytest.mark.asyncio(loop_scope="session")

READABLE = libvirt.VIR_EVENT_HANDLE_READABLE
# libvirt-python's opaque is (callback, opaque, free-callback); libvirtaio calls the free
# callback through it once a handle or timeout is removed. None frees nothing.
OPAQUE = ("caller", None, None)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # the test closed it already
            os.close(fd)


class Calls:
    """Records hook callbacks with the thread they ran on, and wakes a waiting test."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.threads: set[int] = set()
        self.changed = asyncio.Event()

    def handle(self, watch: int, fd: int, events: int, opaque: Any) -> None:
        self.seen.append(("handle", watch, fd, events, opaque))
        self.threads.add(threading.get_ident())
        self.changed.set()

    def timeout(self, timer: int, opaque: Any) -> None:
        self.seen.append(("timeout", timer, opaque))
        self.threads.add(threading.get_ident())
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_a_handle_added_from_a_worker_thread_fires_on_the_loop_thread(
    pipe: tuple[int, int],
) -> None:
    impl = LoopBoundEventImpl(asyncio.get_running_loop())
    calls = Calls()
    read_end, write_end = pipe

    watch = await asyncio.to_thread(impl._add_handle, read_end, READABLE, calls.handle, OPAQUE)
    os.write(write_end, b"x")
    await calls.wait_for(1)

    assert calls.seen[0] == ("handle", watch, read_end, READABLE, OPAQUE)
    assert calls.threads == {threading.get_ident()}
    assert await asyncio.to_thread(impl._remove_handle, watch) == 0
    await asyncio.sleep(0)
    assert impl.pending == 0


async def test_a_descriptor_number_reused_before_the_removal_replays_is_not_unwatched(
    pipe: tuple[int, int],
) -> None:
    loop = asyncio.get_running_loop()
    impl = LoopBoundEventImpl(loop)
    calls = Calls()
    read_end, write_end = pipe
    watch = await asyncio.to_thread(impl._add_handle, read_end, READABLE, calls.handle, OPAQUE)

    def remove_close_and_reuse() -> tuple[int, int]:
        # What libvirt does on close: remove the handle, then close the socket at once.
        impl._remove_handle(watch)
        os.close(read_end)
        os.close(write_end)
        return os.pipe()  # the lowest free numbers: the ones just closed

    new_read, new_write = await asyncio.to_thread(remove_close_and_reuse)
    try:
        assert new_read in (read_end, write_end)
        # Another transport of the loop watches the reused number before the replay runs.
        other = asyncio.Event()
        loop.add_reader(new_read, other.set)
        await asyncio.sleep(0.01)  # the removal replays now
        os.write(new_write, b"y")
        async with asyncio.timeout(5):
            await other.wait()
        assert calls.seen == []
    finally:
        loop.remove_reader(new_read)
        os.close(new_read)
        os.close(new_write)


async def test_a_timeout_added_from_a_worker_thread_fires_on_the_loop_until_removed() -> None:
    impl = LoopBoundEventImpl(asyncio.get_running_loop())
    calls = Calls()

    timer = await asyncio.to_thread(impl._add_timeout, 0, calls.timeout, OPAQUE)
    await calls.wait_for(2)  # a 0 ms timeout fires on every loop iteration
    assert await asyncio.to_thread(impl._remove_timeout, timer) == 0
    await asyncio.sleep(0.01)
    fired = len(calls.seen)
    await asyncio.sleep(0.05)

    assert len(calls.seen) == fired
    assert calls.seen[0] == ("timeout", timer, OPAQUE)
    assert calls.threads == {threading.get_ident()}


async def test_a_timeout_disabled_by_update_stops_firing() -> None:
    impl = LoopBoundEventImpl(asyncio.get_running_loop())
    calls = Calls()
    timer = impl._add_timeout(0, calls.timeout, OPAQUE)
    await calls.wait_for(1)

    await asyncio.to_thread(impl._update_timeout, timer, -1)
    await asyncio.sleep(0.01)
    fired = len(calls.seen)
    await asyncio.sleep(0.05)

    assert len(calls.seen) == fired
    assert impl._remove_timeout(timer) == 0


async def test_removing_an_unknown_or_removed_id_returns_minus_one(
    pipe: tuple[int, int],
) -> None:
    impl = LoopBoundEventImpl(asyncio.get_running_loop())
    watch = impl._add_handle(pipe[0], READABLE, Calls().handle, OPAQUE)

    assert impl._remove_handle(watch) == 0
    assert impl._remove_handle(watch) == -1
    assert impl._remove_timeout(12345) == -1


async def test_an_update_queued_behind_its_add_in_another_thread_takes_effect_after_it() -> None:
    impl = LoopBoundEventImpl(asyncio.get_running_loop())
    calls = Calls()

    def add_then_disable() -> int:
        timer = impl._add_timeout(0, calls.timeout, OPAQUE)
        impl._update_timeout(timer, -1)  # replayed after the add, whenever the loop runs them
        return timer

    timer = await asyncio.to_thread(add_then_disable)
    await asyncio.sleep(0.01)
    fired = len(calls.seen)  # the loop may have run the add alone for an iteration or two
    await asyncio.sleep(0.05)

    assert len(calls.seen) == fired
    assert impl.pending == 0
    assert impl._remove_timeout(timer) == 0
