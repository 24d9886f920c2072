"""Requests are routed by method name and their arguments checked before any actor sees them."""

from __future__ import annotations

import pytest

from actors import Actor, handler
from agent.errors import InvalidArguments, UnknownMethod
from agent.rpc.methods import MethodTable, Scope


class Volume:
    pass


class FakeHost(Actor):
    @handler
    async def set_host_enabled(self, enabled: bool) -> str:
        return "enabled" if enabled else "disabled"


class FakeInstance(Actor):
    @handler
    async def attach_volume(
        self, connection: Volume, mountpoint: str, disk_bus: str | None = None
    ) -> None:
        return None

    @handler
    async def set_memory(self, memory_mb: int, ratio: float = 1.0) -> None:
        return None


@pytest.fixture
def table() -> MethodTable:
    return MethodTable({Scope.HOST: FakeHost, Scope.INSTANCE: FakeInstance})


def test_methods_route_to_the_scope_of_the_actor_that_handles_them(table: MethodTable) -> None:
    assert table.route("set_host_enabled").scope is Scope.HOST
    assert table.methods(Scope.INSTANCE) == ["attach_volume", "set_memory"]


def test_an_unknown_method_is_refused_by_name(table: MethodTable) -> None:
    with pytest.raises(UnknownMethod, match="unknown method 'reboot_everything'"):
        table.route("reboot_everything")


def test_valid_arguments_pass_including_optional_none(table: MethodTable) -> None:
    route = table.route("attach_volume")
    route.check_arguments({"connection": Volume(), "mountpoint": "/dev/vdb"})
    route.check_arguments({"connection": Volume(), "mountpoint": "/dev/vdb", "disk_bus": None})


@pytest.mark.parametrize(
    ("method", "args", "reason"),
    [
        ("attach_volume", {"mountpoint": "/dev/vdb"}, "missing argument 'connection'"),
        (
            "attach_volume",
            {"connection": "not-an-object", "mountpoint": "/dev/vdb"},
            "argument 'connection' must be Volume, not str",
        ),
        (
            "attach_volume",
            {"connection": Volume(), "mountpoint": "/dev/vdb", "evil": 1},
            r"unexpected argument\(s\) \['evil'\]",
        ),
        ("set_memory", {"memory_mb": True}, "argument 'memory_mb' must be int, not bool"),
        ("set_memory", {"memory_mb": 1.5}, "argument 'memory_mb' must be int, not float"),
        ("set_host_enabled", {"enabled": "yes"}, "argument 'enabled' must be bool, not str"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(
    table: MethodTable, method: str, args: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidArguments, match=f"invalid arguments for '{method}': {reason}"):
        table.route(method).check_arguments(args)


def test_a_method_of_both_host_and_instance_routes_by_whether_an_instance_is_named() -> None:
    class InfoHost(Actor):
        @handler
        async def attach_volume(self, uuid: str) -> None:
            return None

    table = MethodTable({Scope.HOST: InfoHost, Scope.INSTANCE: FakeInstance})
    assert table.route("attach_volume", for_instance=True).scope is Scope.INSTANCE
    assert table.route("attach_volume").scope is Scope.HOST


def test_two_non_instance_actors_claiming_one_method_is_a_programming_error() -> None:
    class Tracker(Actor):
        @handler
        async def set_host_enabled(self, enabled: bool) -> None:
            return None

    with pytest.raises(TypeError, match="'set_host_enabled' is handled by both host and tracker"):
        MethodTable({Scope.HOST: FakeHost, Scope.TRACKER: Tracker})
