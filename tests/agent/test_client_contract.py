"""Every served driver method's typed client coroutine matches its handler, and sends what it
declares.

The handler's signature is the contract. The client coroutine of the same name takes `host`,
then exactly the handler's parameters after `self` (names, order, resolved type hints,
defaults), then the client's own keyword-only options, and returns what the handler returns.
Three cases follow from how a call is addressed (see `agent.driver_calls`):

- a host handler's own `host` parameter is the target host itself (`host_maintenance_mode`);
- an instance handler that takes no `instance` is addressed by a keyword-only `uuid: str`;
- a method both scopes serve (`get_info`) takes the host handler's parameters, then the
  instance handler's others keyword-only, each optional: the instance's go to its actor.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from actors.host import HostActor
from actors.instance import InstanceActor
from agent.client import ComputeClient
from agent.driver_calls import DriverCalls
from agent.rpc.catalogue import exposed_methods
from tests.actors.instance.fakes import UUID, instance

KEYWORD = inspect.Parameter.KEYWORD_ONLY
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    hint: Any
    default: Any = EMPTY


OPTIONS = [
    Param("rpc_timeout", KEYWORD, float | None, None),
    Param("message_id", KEYWORD, str | None, None),
]


def params(function: Callable[..., Any], skip: int) -> list[Param]:
    hints = typing.get_type_hints(function)
    return [
        Param(p.name, p.kind, hints.get(p.name, Any), p.default)
        for p in list(inspect.signature(function).parameters.values())[skip:]
    ]


def served(scope: str) -> dict[str, Callable[..., Any]]:
    actor = HostActor if scope == "host" else InstanceActor
    return {m: f for m, f in actor.handlers.items() if m in exposed_methods()}


BOTH = sorted(set(served("host")) & set(served("instance")))
SINGLE = sorted(
    [(m, "host") for m in served("host") if m not in BOTH]
    + [(m, "instance") for m in served("instance") if m not in BOTH]
)


def expected_single(scope: str, handler: Callable[..., Any]) -> list[Param]:
    declared = params(handler, skip=1)
    if declared and declared[0].name == "host":
        assert declared[0].hint is str and declared[0].default is EMPTY
        declared = declared[1:]  # the target host is that argument
    if scope == "instance" and "instance" not in {p.name for p in declared}:
        declared.append(Param("uuid", KEYWORD, str))
    return declared + OPTIONS


def expected_both(
    host_handler: Callable[..., Any], instance_handler: Callable[..., Any]
) -> list[Param]:
    by_host = params(host_handler, skip=1)
    names = {p.name for p in by_host}
    by_instance = [p for p in params(instance_handler, skip=1) if p.name not in names]
    return [
        *(Param(p.name, POSITIONAL, p.hint | None, None) for p in by_host),
        *(Param(p.name, KEYWORD, p.hint | None, None) for p in by_instance),
        *OPTIONS,
    ]


def returns(function: Callable[..., Any]) -> Any:
    return typing.get_type_hints(function).get("return")


def test_the_methods_served_by_both_scopes_are_known() -> None:
    assert BOTH == ["get_info"]


@pytest.mark.parametrize(("method", "scope"), SINGLE, ids=[m for m, _ in SINGLE])
def test_the_client_coroutine_takes_exactly_its_handlers_parameters(
    method: str, scope: str
) -> None:
    handler = served(scope)[method]
    client = getattr(ComputeClient, method)
    assert inspect.iscoroutinefunction(client)
    assert params(client, skip=2) == expected_single(scope, handler)
    assert returns(client) == returns(handler)


@pytest.mark.parametrize("method", BOTH)
def test_a_method_both_scopes_serve_takes_each_scopes_parameters_optionally(method: str) -> None:
    host_handler, instance_handler = served("host")[method], served("instance")[method]
    client = getattr(ComputeClient, method)
    assert params(client, skip=2) == expected_both(host_handler, instance_handler)
    assert returns(client) == returns(host_handler) == returns(instance_handler)


# --- what the coroutines send ----------------------------------------------------------------


@dataclass
class Sent:
    host: str
    method: str
    args: Mapping[str, Any]
    instance: str | None
    timeout: float | None
    message_id: str | None


class Recorder(DriverCalls):
    """The typed coroutines over a `call` that only records what it was asked."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
        message_id: str | None = None,
    ) -> Any:
        self.sent.append(Sent(host, method, dict(args or {}), instance, timeout, message_id))


def arguments_for(handler: Callable[..., Any]) -> dict[str, Any]:
    """A distinct value per parameter (an `Instance` where the routing reads its uuid)."""
    return {
        p.name: instance() if p.name == "instance" else f"<{p.name}>"
        for p in params(handler, skip=1)
    }


@pytest.mark.parametrize(("method", "scope"), SINGLE, ids=[m for m, _ in SINGLE])
async def test_the_client_coroutine_sends_every_argument_under_its_handlers_name(
    method: str, scope: str
) -> None:
    recorder, args = Recorder(), arguments_for(served(scope)[method])
    options: dict[str, Any] = {"rpc_timeout": 7.5, "message_id": "key-1"}
    if scope == "instance" and "instance" not in args:
        options["uuid"] = UUID
    keyword = {k: v for k, v in args.items() if k != "host"}
    await getattr(recorder, method)(args.get("host", "cmp-1"), **keyword, **options)
    routed = UUID if scope == "instance" else None
    assert recorder.sent == [Sent(args.get("host", "cmp-1"), method, args, routed, 7.5, "key-1")]


async def test_get_info_by_uuid_asks_the_host_and_by_instance_asks_its_actor() -> None:
    recorder, me = Recorder(), instance()
    await recorder.get_info("cmp-1", UUID, rpc_timeout=3.0)
    await recorder.get_info("cmp-1", instance=me, message_id="key-2")
    assert recorder.sent == [
        Sent("cmp-1", "get_info", {"uuid": UUID}, None, 3.0, None),
        Sent("cmp-1", "get_info", {"instance": me}, UUID, None, "key-2"),
    ]


async def test_get_info_needs_exactly_one_of_uuid_and_instance() -> None:
    recorder = Recorder()
    both = r"^get_info takes a uuid or an instance, not both$"
    with pytest.raises(TypeError, match=both):
        await recorder.get_info("cmp-1", UUID, instance=instance())
    neither = r"^get_info needs a uuid \(the host answers\) or an instance \(its actor answers\)$"
    with pytest.raises(TypeError, match=neither):
        await recorder.get_info("cmp-1")
    assert recorder.sent == []
