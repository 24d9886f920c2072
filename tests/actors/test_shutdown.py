"""Stopping: no new messages, in-flight work gets its timeout, then is cancelled; no task
is left behind and CancelledError is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from actors import (
    Actor,
    ActorNotFound,
    ActorStopped,
    ActorSystem,
    BlockingExecutor,
    RestartStrategy,
    handler,
)

from .actors_for_tests import Recorder, eventually


class Lifecycle(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.gate = asyncio.Event()
        self.busy = asyncio.Event()

    async def on_start(self) -> None:
        self.log.append("start")

    async def on_stop(self) -> None:
        self.log.append("stop")

    @handler
    async def work(self, name: str) -> str:
        self.busy.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.log.append(f"cancelled {name}")
            raise
        self.log.append(f"done {name}")
        return name

    @handler
    async def quick(self, name: str) -> str:
        self.log.append(f"done {name}")
        return name


async def test_stop_lets_in_flight_and_queued_messages_finish_then_runs_on_stop(
    system: ActorSystem,
) -> None:
    log: list[str] = []
    actor = Lifecycle(log)
    ref = system.spawn("host", actor)
    in_flight = asyncio.create_task(ref.ask("work", {"name": "a"}))
    queued = asyncio.create_task(ref.ask("quick", {"name": "b"}))
    await actor.busy.wait()
    stopping = asyncio.create_task(system.stop("host", timeout=5))
    await asyncio.sleep(0)
    with pytest.raises(ActorStopped):
        await ref.ask("quick", {"name": "refused"})
    actor.gate.set()
    await stopping
    assert (await in_flight, await queued) == ("a", "b")
    assert log == ["start", "done a", "done b", "stop"]
    assert "host" not in system


async def test_in_flight_work_past_the_timeout_is_cancelled_and_its_asker_told(
    system: ActorSystem,
) -> None:
    log: list[str] = []
    actor = Lifecycle(log)
    ref = system.spawn("host", actor)
    in_flight = asyncio.create_task(ref.ask("work", {"name": "slow"}))
    queued = asyncio.create_task(ref.ask("quick", {"name": "never"}))
    await actor.busy.wait()
    await system.stop("host", timeout=0.05)
    with pytest.raises(ActorStopped):
        await in_flight
    with pytest.raises(ActorStopped):
        await queued
    assert log == ["start", "cancelled slow", "stop"]


async def test_on_stop_runs_exactly_once_when_several_callers_stop_one_actor(
    system: ActorSystem,
) -> None:
    log: list[str] = []
    system.spawn("host", lambda: Lifecycle(log))
    await system.lookup("host").ask("quick", {"name": "x"})
    await asyncio.gather(*(system.stop("host") for _ in range(3)))
    assert log == ["start", "done x", "stop"]
    with pytest.raises(ActorNotFound):
        await system.stop("host")


async def test_a_cancelled_stop_caller_does_not_cancel_the_stop(system: ActorSystem) -> None:
    log: list[str] = []
    actor = Lifecycle(log)
    ref = system.spawn("host", actor)
    in_flight = asyncio.create_task(ref.ask("work", {"name": "a"}))
    await actor.busy.wait()
    caller = asyncio.create_task(system.stop("host", timeout=5))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    actor.gate.set()
    assert await in_flight == "a"
    await eventually(lambda: "host" not in system)
    assert log == ["start", "done a", "stop"]


async def test_an_actor_can_stop_itself_from_a_handler(system: ActorSystem) -> None:
    log: list[str] = []

    class Deleting(Lifecycle):
        @handler
        async def destroy(self) -> str:
            await self.system.stop(self.address)
            self.log.append("destroy returned")
            return "destroyed"

    ref = system.spawn("instance:1", lambda: Deleting(log))
    assert await ref.ask("destroy") == "destroyed"
    await eventually(lambda: "instance:1" not in system)
    assert log == ["start", "destroy returned", "stop"]


async def test_aclose_stops_every_actor_and_leaves_no_task(executor: BlockingExecutor) -> None:
    log: list[str] = []
    system = ActorSystem(executor=executor, stop_timeout=0.05)
    busy = [Lifecycle(log) for _ in range(3)]
    for index, actor in enumerate(busy):
        system.spawn(f"instance:{index}", actor)
    askers = [
        asyncio.create_task(system.ask(f"instance:{index}", "work", {"name": str(index)}))
        for index in range(3)
    ]
    idle = [Recorder() for _ in range(10)]
    for index, recorder in enumerate(idle):
        system.spawn(f"instance:idle-{index}", recorder)
    for actor in busy:
        await actor.busy.wait()
    await system.aclose()
    assert len(system) == 0
    for asker in askers:
        with pytest.raises(ActorStopped):
            await asker
    assert sorted(entry for entry in log if entry.startswith("cancelled")) == [
        "cancelled 0",
        "cancelled 1",
        "cancelled 2",
    ]
    assert log.count("stop") == 3
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_an_asker_propagates_and_the_actor_carries_on(
    system: ActorSystem,
) -> None:
    log: list[str] = []
    actor = Lifecycle(log)
    ref = system.spawn("host", actor)
    asker = asyncio.create_task(ref.ask("work", {"name": "abandoned"}))
    await actor.busy.wait()
    asker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asker
    actor.gate.set()
    assert await ref.ask("quick", {"name": "next"}) == "next"
    assert log == ["start", "done abandoned", "done next"]


async def test_an_actor_in_restart_back_off_stops_at_once(system: ActorSystem) -> None:
    attempts: list[int] = []

    class NeverStarts(Actor):
        async def on_start(self) -> None:
            attempts.append(1)
            raise OSError("no hypervisor")

    strategy = RestartStrategy(max_restarts=10, min_backoff=30, max_backoff=30)
    system.spawn("host", NeverStarts, restart_strategy=strategy)
    await eventually(lambda: system.stats_of("host").restarts > 0)
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(attempts) == 1  # the restart waits out its 30 s back-off
    await asyncio.wait_for(system.stop("host", timeout=10), timeout=5)
    assert "host" not in system
