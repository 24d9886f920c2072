"""Declaring handlers with `@handler` and reading an actor class's handler table."""

from __future__ import annotations

import inspect

import pytest

from actors import Actor, handler


class Base(Actor):
    @handler
    async def spawn(self, flavor: str, count: int = 1) -> str:
        return flavor * count

    @handler("get_info")
    async def info(self) -> dict[str, int]:
        return {}

    async def helper(self) -> None:
        """Not a handler: no decorator."""


class Child(Base):
    @handler
    async def reboot(self, hard: bool) -> None:
        return None

    async def info(self) -> dict[str, int]:  # undecorated override: no longer a handler
        return {"x": 1}


def test_handler_table_maps_message_names_to_the_functions() -> None:
    assert dict(Base.handlers) == {"spawn": Base.spawn, "get_info": Base.info}


def test_handler_signature_gives_parameter_names_and_annotations() -> None:
    parameters = inspect.signature(Base.handlers["spawn"]).parameters
    assert list(parameters) == ["self", "flavor", "count"]
    assert parameters["flavor"].annotation == "str"
    assert parameters["count"].default == 1


def test_subclass_inherits_handlers_and_an_undecorated_override_drops_one() -> None:
    assert set(Child.handlers) == {"spawn", "reboot"}
    assert set(Base.handlers) == {"spawn", "get_info"}


def test_handler_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        Base.handlers["evil"] = Base.spawn  # type: ignore[index]


def test_a_plain_function_cannot_be_a_handler() -> None:
    def sync(self: Actor) -> None:
        return None

    with pytest.raises(TypeError, match="handler 'sync' must be an async def function"):
        handler(sync)  # type: ignore[type-var]


def test_names_starting_with_an_underscore_are_reserved() -> None:
    async def anything(self: Actor) -> None:
        return None

    with pytest.raises(TypeError, match=r"handler name '__child_failed__' is reserved"):
        handler("__child_failed__")(anything)


def test_two_methods_of_one_class_cannot_handle_one_name() -> None:
    with pytest.raises(TypeError, match="methods 'a' and 'b' both handle message 'x'"):

        class Twice(Actor):
            @handler("x")
            async def a(self) -> None:
                return None

            @handler("x")
            async def b(self) -> None:
                return None


def test_a_subclass_may_claim_a_bases_message_name_with_another_method() -> None:
    class Renamed(Base):
        @handler("spawn")
        async def spawn_with_quota(self, flavor: str) -> str:
            return flavor

    assert Renamed.handlers["spawn"] is Renamed.spawn_with_quota
