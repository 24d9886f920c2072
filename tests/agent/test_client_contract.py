"""Every served driver method has its typed client call, made from its own handler, and the
call sends what the handler takes.

The handler's signature is the one declaration (see `agent.driver_calls`): a typed call is
built from it, so names, order, types and defaults cannot drift. These tests check that each
served method has a call made from the handler of the scope that serves it, and that calls
send every argument under its handler's name, with the client's options, to the right actor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from actors.actor import Actor
from actors.firewall import FirewallActor
from actors.host import HostActor
from actors.instance import InstanceActor
from actors.tracker import ResourceTrackerActor
from agent.client import ComputeClient
from agent.driver_calls import (
    BOTH_SCOPES,
    DriverCall,
    DriverCalls,
    InstanceCall,
    OwnHostCall,
)
from agent.rpc.catalogue import exposed_methods
from agent.transport import InProcessBus
from tests.actors.instance.fakes import UUID, instance


def served(actor: type[Actor]) -> dict[str, Callable[..., Any]]:
    return {m: f for m, f in actor.handlers.items() if m in exposed_methods()}


HOST, INSTANCE = served(HostActor), served(InstanceActor)
TRACKER, FIREWALL = served(ResourceTrackerActor), served(FirewallActor)
SINGLE = sorted({**HOST, **INSTANCE, **TRACKER, **FIREWALL}.keys() - BOTH_SCOPES.keys())


def test_the_methods_served_by_both_scopes_are_exactly_those_with_a_hand_written_call() -> None:
    assert sorted(HOST.keys() & INSTANCE.keys()) == sorted(BOTH_SCOPES) == ["get_info"]
    host_handler, instance_handler = BOTH_SCOPES["get_info"]
    assert (host_handler, instance_handler) == (HOST["get_info"], INSTANCE["get_info"])


def test_every_typed_call_is_a_served_method() -> None:
    calls = {
        name
        for name, value in vars(DriverCalls).items()
        if isinstance(value, DriverCall | InstanceCall | OwnHostCall)
    }
    assert calls == set(SINGLE)


@pytest.mark.parametrize("method", SINGLE)
def test_the_typed_call_is_made_from_the_handler_that_serves_it(method: str) -> None:
    call = vars(DriverCalls)[method]
    handler = HOST.get(method) or TRACKER.get(method) or FIREWALL.get(method) or INSTANCE[method]
    assert call.handler is handler
    assert call.method == method
    parameters = list(inspect.signature(handler).parameters)[1:]
    if method in INSTANCE and "instance" not in parameters:
        assert isinstance(call, InstanceCall)
    elif parameters[:1] == ["host"]:
        assert isinstance(call, OwnHostCall)
    else:
        assert type(call) is DriverCall


def test_a_typed_call_named_unlike_its_handler_is_refused_when_declared() -> None:
    # Python 3.11 reports an error of __set_name__ as a RuntimeError caused by it.
    with pytest.raises((TypeError, RuntimeError)) as caught:

        class Wrong:
            halt = DriverCall(InstanceActor.pause)

    error = caught.value if isinstance(caught.value, TypeError) else caught.value.__cause__
    assert str(error) == "the typed call 'halt' is made from the handler 'pause'"


def test_an_own_host_call_needs_a_handler_with_a_host_argument() -> None:
    with pytest.raises(TypeError, match=r"^'pause' takes no host of its own$"):
        OwnHostCall(InstanceActor.pause)


# --- what the calls send ---------------------------------------------------------------------


@dataclass
class Sent:
    """One `call`: what the typed call passed to the client's generic `call`."""

    host: str
    method: str
    args: Mapping[str, Any]
    instance: str | None
    timeout: float | None
    message_id: str | None


class Recorder(ComputeClient):
    """A client whose `call` only records what it was asked."""

    def __init__(self) -> None:
        super().__init__(InProcessBus())
        self.sent: list[Sent] = []

    async def call(  # type: ignore[override]  # only ever called with these keywords
        self, host: str, method: str, args: Mapping[str, Any], **options: Any
    ) -> Any:
        self.sent.append(Sent(host, method, dict(args), **options))


def arguments_for(handler: Callable[..., Any]) -> dict[str, Any]:
    """A distinct value per parameter (an `Instance` where the routing reads its uuid)."""
    return {
        name: instance() if name == "instance" else f"<{name}>"
        for name in list(inspect.signature(handler).parameters)[1:]
    }


@pytest.mark.parametrize("method", SINGLE)
async def test_the_typed_call_sends_every_argument_under_its_handlers_name(method: str) -> None:
    recorder = Recorder()
    handler = HOST.get(method) or TRACKER.get(method) or FIREWALL.get(method) or INSTANCE[method]
    args = arguments_for(handler)
    call = getattr(recorder.with_options(timeout=7.5, message_id="key-1"), method)
    call_type = type(vars(DriverCalls)[method])
    if call_type is OwnHostCall:
        await call(**args)
        expected = Sent(args["host"], method, args, None, 7.5, "key-1")
    elif call_type is InstanceCall:
        await call("cmp-1", UUID, **args)
        expected = Sent("cmp-1", method, args, UUID, 7.5, "key-1")
    else:
        await call("cmp-1", **args)
        routed = UUID if "instance" in args else None
        expected = Sent("cmp-1", method, args, routed, 7.5, "key-1")
    assert recorder.sent == [expected]


async def test_defaults_are_sent_and_no_options_mean_the_clients_own() -> None:
    recorder = Recorder()
    me = instance()
    await recorder.reboot("cmp-1", me)
    assert recorder.sent == [
        Sent(
            "cmp-1",
            "reboot",
            {
                "instance": me,
                "reboot_type": "SOFT",
                "network_info": None,
                "block_device_info": None,
            },
            me.uuid,
            None,
            None,
        )
    ]


async def test_a_call_with_arguments_its_handler_does_not_take_is_refused_locally() -> None:
    recorder = Recorder()
    with pytest.raises(TypeError, match="unexpected keyword argument 'force'"):
        await recorder.pause("cmp-1", instance(), force=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing a required argument: 'image_meta'"):
        await recorder.spawn("cmp-1", instance())  # type: ignore[call-arg]
    assert recorder.sent == []


async def test_get_info_of_an_instance_asks_its_actor_and_of_a_uuid_asks_the_host() -> None:
    recorder, me = Recorder(), instance()
    await recorder.with_options(timeout=3.0).get_info("cmp-1", UUID)
    await recorder.with_options(message_id="key-2").get_info("cmp-1", me)
    assert recorder.sent == [
        Sent("cmp-1", "get_info", {"uuid": UUID}, None, 3.0, None),
        Sent("cmp-1", "get_info", {"instance": me}, UUID, None, "key-2"),
    ]


def test_a_client_with_options_shares_the_clients_state_and_never_owns_its_transport() -> None:
    client = ComputeClient(InProcessBus())
    client._owns_transport = True
    view = client.with_options(timeout=5.0, message_id="k")
    assert (view.call_timeout, view.call_message_id) == (5.0, "k")
    assert (client.call_timeout, client.call_message_id) == (None, None)
    assert view.host_manifests is client.host_manifests
    assert view.transport is client.transport
    assert not view._owns_transport
