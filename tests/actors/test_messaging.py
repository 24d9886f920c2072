"""tell and ask: ordering, one message at a time, replies, contexts and misuse."""

from __future__ import annotations

import asyncio

import pytest

from actors import (
    Actor,
    ActorSystem,
    ReentrantAsk,
    UnknownMessage,
    current_message,
    handler,
)

from .actors_for_tests import Recorder


async def test_messages_are_handled_in_arrival_order_one_at_a_time(system: ActorSystem) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    for value in range(50):
        await ref.tell("record", {"value": value})
    assert await ref.ask("record", {"value": "last"}) == "last"
    assert actor.seen == [*range(50), "last"]
    assert actor.max_running == 1


async def test_concurrent_askers_are_served_one_at_a_time_and_each_gets_its_reply(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    replies = await asyncio.gather(*(ref.ask("record", {"value": n}) for n in range(100)))
    assert replies == list(range(100))
    assert sorted(actor.seen) == list(range(100))
    assert actor.max_running == 1


async def test_ask_returns_the_handlers_return_value(system: ActorSystem) -> None:
    class Adder(Actor):
        @handler
        async def add(self, a: int, b: int) -> int:
            return a + b

    assert await system.spawn("tracker", Adder).ask("add", {"a": 2, "b": 3}) == 5


async def test_system_shortcuts_reach_the_actor_by_address(system: ActorSystem) -> None:
    actor = Recorder()
    system.spawn("instance:abc", actor)
    await system.tell("instance:abc", "record", {"value": 1})
    assert await system.ask("instance:abc", "record", {"value": 2}) == 2
    assert actor.seen == [1, 2]


async def test_the_handler_sees_the_current_message_and_its_context(system: ActorSystem) -> None:
    ref = system.spawn("host", Recorder)
    assert await ref.ask("context", context={"request_id": "req-1"}) == {"request_id": "req-1"}
    assert current_message() is None


async def test_an_ask_from_inside_a_handler_carries_that_handlers_context(
    system: ActorSystem,
) -> None:
    class Front(Actor):
        @handler
        async def forward(self) -> object:
            return await self.system.ask("back", "context")

    system.spawn("back", Recorder)
    front = system.spawn("front", Front)
    assert await front.ask("forward", context="req-7") == "req-7"


async def test_actor_knows_its_system_and_address(system: ActorSystem) -> None:
    class Introspective(Actor):
        @handler
        async def whoami(self) -> tuple[str, bool]:
            return self.address, self.system is system

    ref = system.spawn("instance:1", Introspective)
    assert await ref.ask("whoami") == ("instance:1", True)


async def test_ask_and_tell_of_an_unknown_method_raise_unknown_message(
    system: ActorSystem,
) -> None:
    ref = system.spawn("host", Recorder)
    with pytest.raises(UnknownMessage) as caught:
        await ref.ask("reboot")
    assert str(caught.value) == "actor 'host' has no handler for 'reboot'"
    with pytest.raises(UnknownMessage):
        await ref.tell("reboot")


async def test_an_actor_asking_itself_raises_reentrant_ask(system: ActorSystem) -> None:
    class Selfish(Actor):
        @handler
        async def outer(self) -> None:
            await self.system.ask(self.address, "inner")

        @handler
        async def inner(self) -> None:
            return None

    ref = system.spawn("host", Selfish)
    with pytest.raises(ReentrantAsk) as caught:
        await ref.ask("outer")
    assert caught.value.method == "inner"


async def test_a_handler_may_tell_itself_and_the_message_runs_after_it(
    system: ActorSystem,
) -> None:
    order: list[str] = []

    class Chain(Actor):
        @handler
        async def first(self) -> None:
            await self.system.tell(self.address, "second")
            order.append("first")

        @handler
        async def second(self) -> None:
            order.append("second")

    ref = system.spawn("host", Chain)
    await ref.tell("first")
    await ref.ask("second")
    assert order == ["first", "second", "second"]


async def test_an_idle_actor_has_no_task(system: ActorSystem) -> None:
    ref = system.spawn("host", Recorder)
    await ref.ask("record", {"value": 1})
    for _ in range(3):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
