"""This checkout's RPC API (1.1: the resource tracker's methods) against the previous
release's real agent (1.0): a method of 1.0 reaches it from a pinned and an unpinned client
alike, calls and casts; a method new in 1.1 steps down after one refusal and is then unknown
there; a client of a newer major is refused."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.errors import IncompatibleRpcVersion, UnknownMethod
from agent.rpc.api_version import METHOD_VERSIONS, RPC_API_VERSION
from schemas.objects import Service
from tests.upgrade.conftest import ON_THE_BUS, Fleet

pytestmark = ON_THE_BUS


def bump_rpc_api_version(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """This checkout's RPC API version is `version`, wherever a module of the agent holds it
    (the test process only: the agents are processes of their own)."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "agent" and hasattr(module, "RPC_API_VERSION"):
            monkeypatch.setattr(module, "RPC_API_VERSION", version)


@pytest_asyncio.fixture(loop_scope="session")
async def connect(fleet: Fleet) -> AsyncIterator[Callable[..., object]]:
    """`await connect(**options)`: today's client on the fleet's bus, closed after the test."""
    clients: list[ComputeClient] = []

    async def connected(**options: object) -> ComputeClient:
        client = await ComputeClient.connect(
            fleet.url, prefix=fleet.prefix, default_timeout=20, **options
        )
        clients.append(client)
        return client

    yield connected
    for client in clients:
        await client.aclose()


async def next_service(events: AsyncIterator[object], host: str, disabled: bool) -> Service:
    async with asyncio.timeout(20):
        async for event in events:
            payload = getattr(event, "payload", None)
            if not isinstance(payload, Service):
                continue
            if (payload.host, payload.disabled) == (host, disabled):
                return payload
    raise AssertionError("the event stream ended")


async def test_a_client_pinned_to_the_previous_rpc_version_is_served_by_the_previous_release(
    fleet: Fleet, connect: Callable[..., object]
) -> None:
    assert RPC_API_VERSION == "1.1"
    old = fleet.agents["N-1"].host
    client = await connect(rpc_version_cap="1.0")
    assert isinstance(client, ComputeClient)
    # A cast has nobody to hear a refusal and step down: it reaches the previous release at
    # the version its method needs.
    async with await client.subscribe(f"host.{old}.status") as stream:
        events = aiter(stream)
        await client.cast(old, "set_host_enabled", {"enabled": False})
        disabled = await next_service(events, old, True)
        assert disabled.disabled_reason == "disabled by an operator"
        await client.cast(old, "set_host_enabled", {"enabled": True})
        await next_service(events, old, False)
    assert len(await client.get_available_nodes(old)) == 1


async def test_a_method_new_in_this_release_steps_down_once_and_is_unknown_to_the_previous(
    fleet: Fleet, connect: Callable[..., object]
) -> None:
    old, new = fleet.agents["N-1"].host, fleet.agents["N"].host
    client = await connect()
    assert isinstance(client, ComputeClient)
    # A method of 1.0 goes at 1.0: no refusal, nothing learnt.
    assert len(await client.get_available_nodes(old)) == 1
    assert client.rpc_versions.for_host(old) == "1.1"
    # One of 1.1 is refused at 1.1 (the agent serves 1.0), sent again at 1.0, and unknown.
    with pytest.raises(UnknownMethod, match="get_compute_node"):
        await client.get_compute_node(old)
    assert client.rpc_versions.for_host(old) == "1.0"
    assert await client.instance_exists(old, "6695eb01-f6a4-8304-79aa-97f2502e193f") is True
    assert (await client.get_compute_node(new)).host == new
    assert client.rpc_versions.for_host(new) == "1.1"


async def test_a_client_of_a_newer_major_is_refused_by_the_previous_release(
    fleet: Fleet, connect: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bump_rpc_api_version(monkeypatch, "2.0")
    monkeypatch.setitem(METHOD_VERSIONS, "get_available_nodes", "2.0")  # changed in 2.0
    old = fleet.agents["N-1"].host
    client = await connect()
    assert isinstance(client, ComputeClient)
    with pytest.raises(IncompatibleRpcVersion) as refused:
        await client.get_available_nodes(old)
    assert str(refused.value) == (
        "RPC API version 2.0 is not served by this agent (it serves 1.0); "
        "pin the client to 1.0 or upgrade the agent"
    )
