"""An RPC API version bump in this checkout, against the previous release's real agent: a
client pinned to the previous version is served, calls and casts alike; an unpinned one of a
newer minor steps down after one refusal; one of a newer major is refused."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.errors import IncompatibleRpcVersion
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
    fleet: Fleet, connect: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bump_rpc_api_version(monkeypatch, "1.1")
    old = fleet.agents["N-1"].host
    client = await connect(rpc_version_cap="1.0")
    assert isinstance(client, ComputeClient)
    # A cast has nobody to hear a refusal and step down (nor had this client a call answered
    # by that agent yet): only the pin gets it served.
    async with await client.subscribe(f"host.{old}.status") as stream:
        events = aiter(stream)
        await client.cast(old, "set_host_enabled", {"enabled": False})
        disabled = await next_service(events, old, True)
        assert disabled.disabled_reason == "disabled by an operator"
        await client.cast(old, "set_host_enabled", {"enabled": True})
        await next_service(events, old, False)
    assert len(await client.get_available_nodes(old)) == 1


async def test_an_unpinned_client_of_a_newer_minor_steps_down_to_the_previous_release(
    fleet: Fleet, connect: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bump_rpc_api_version(monkeypatch, "1.1")
    old, new = fleet.agents["N-1"].host, fleet.agents["N"].host
    client = await connect()
    assert isinstance(client, ComputeClient)
    assert len(await client.get_available_nodes(old)) == 1
    assert client.rpc_versions.for_host(old) == "1.0"
    assert await client.instance_exists(old, "6695eb01-f6a4-8304-79aa-97f2502e193f") is True
    assert client.rpc_versions.for_host(new) == "1.1"


async def test_a_client_of_a_newer_major_is_refused_by_the_previous_release(
    fleet: Fleet, connect: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bump_rpc_api_version(monkeypatch, "2.0")
    old = fleet.agents["N-1"].host
    client = await connect()
    assert isinstance(client, ComputeClient)
    with pytest.raises(IncompatibleRpcVersion) as refused:
        await client.get_available_nodes(old)
    assert str(refused.value) == (
        "RPC API version 2.0 is not served by this agent (it serves 1.0); "
        "pin the client to 1.0 or upgrade the agent"
    )
