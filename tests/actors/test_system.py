"""ActorSystem: spawning, looking up, get-or-spawn, dead letters and addresses."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from actors import (
    HOST_ADDRESS,
    TRACKER_ADDRESS,
    Actor,
    ActorAlreadyExists,
    ActorNotFound,
    ActorStopped,
    ActorSystem,
    DeadLetterReason,
    address_kind,
    handler,
    instance_address,
    migration_address,
)

from .actors_for_tests import Recorder


def test_addresses_name_the_host_tracker_instances_and_migrations() -> None:
    instance = uuid.UUID("6f2b0c52-5f37-4d0e-9a3e-0f3c2c1d9a10")
    assert (HOST_ADDRESS, TRACKER_ADDRESS) == ("host", "tracker")
    assert instance_address(instance) == "instance:6f2b0c52-5f37-4d0e-9a3e-0f3c2c1d9a10"
    assert migration_address("m-1") == "migration:m-1"
    assert address_kind(instance_address(instance)) == "instance"
    assert address_kind(HOST_ADDRESS) == "host"


async def test_lookup_finds_a_spawned_actor_and_raises_actor_not_found_otherwise(
    system: ActorSystem,
) -> None:
    ref = system.spawn("host", Recorder)
    assert system.lookup("host") == ref
    assert "host" in system and len(system) == 1
    with pytest.raises(ActorNotFound) as caught:
        system.lookup("instance:nope")
    assert str(caught.value) == "no actor at address 'instance:nope'"


async def test_spawning_on_a_taken_address_raises_actor_already_exists(
    system: ActorSystem,
) -> None:
    system.spawn("host", Recorder)
    with pytest.raises(ActorAlreadyExists) as caught:
        system.spawn("host", Recorder)
    assert str(caught.value) == "an actor already lives at address 'host'"


async def test_a_factory_that_returns_no_actor_is_refused(system: ActorSystem) -> None:
    with pytest.raises(TypeError, match="factory for 'host' returned 42, not an Actor"):
        system.spawn("host", lambda: 42)  # type: ignore[arg-type, return-value]


async def test_get_or_spawn_under_concurrent_callers_creates_exactly_one_actor(
    system: ActorSystem,
) -> None:
    created: list[Actor] = []

    class Instance(Actor):
        def __init__(self) -> None:
            created.append(self)

        async def on_start(self) -> None:
            await asyncio.sleep(0)  # a start that yields, as a real one does

        @handler
        async def get_info(self) -> int:
            return id(self)

    address = instance_address(uuid.uuid4())

    async def caller() -> int:
        await asyncio.sleep(0)
        ref = system.get_or_spawn(address, Instance)
        result: int = await ref.ask("get_info")
        return result

    answers = await asyncio.gather(*(caller() for _ in range(50)))
    assert len(created) == 1
    assert set(answers) == {id(created[0])}


async def test_an_ask_to_a_missing_actor_fails_at_once_and_is_a_dead_letter(
    system: ActorSystem,
) -> None:
    with pytest.raises(ActorNotFound):
        await system.ask("instance:gone", "reboot", context="req-9")
    (letter,) = system.dead_letters.recent
    assert (letter.address, letter.method, letter.reason, letter.context) == (
        "instance:gone",
        "reboot",
        DeadLetterReason.NOT_FOUND,
        "req-9",
    )


async def test_a_tell_to_a_missing_actor_is_a_logged_dead_letter(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    await system.tell("instance:gone", "power_off")
    assert system.dead_letters.total == 1
    assert system.dead_letters.by_reason == {DeadLetterReason.NOT_FOUND: 1}
    assert "dead letter: power_off to instance:gone (not_found)" in caplog.text


async def test_messages_to_a_stopped_actor_are_dead_letters_and_asks_fail_typed(
    system: ActorSystem,
) -> None:
    ref = system.spawn("host", Recorder)
    await system.stop("host")
    assert not ref.is_alive
    await ref.tell("record", {"value": 1})
    with pytest.raises(ActorStopped) as caught:
        await ref.ask("record", {"value": 2})
    assert str(caught.value) == "actor 'host' is stopped"
    assert system.dead_letters.by_reason[DeadLetterReason.STOPPED] == 2


async def test_an_old_ref_never_reaches_a_new_actor_at_the_same_address(
    system: ActorSystem,
) -> None:
    old = system.spawn("host", Recorder)
    await system.stop("host")
    new_actor = Recorder()
    new = system.spawn("host", new_actor)
    assert old != new
    with pytest.raises(ActorStopped):
        await old.ask("record", {"value": "lost"})
    assert await new.ask("record", {"value": "kept"}) == "kept"
    assert new_actor.seen == ["kept"]


async def test_spawn_after_aclose_raises_actor_stopped(system: ActorSystem) -> None:
    await system.aclose()
    with pytest.raises(ActorStopped):
        system.spawn("host", Recorder)
