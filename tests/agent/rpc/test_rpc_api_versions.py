"""A client of a newer RPC API version is served by an older agent: pinned by its cap, or after
one refusal that names the version the agent serves. Another major is still refused.

One process plays both releases: the client reads `agent.client.RPC_API_VERSION` when it is
built, the agent `agent.rpc.server.RPC_API_VERSION` for each request (`speaking`).
"""

from __future__ import annotations

import asyncio

import pytest

from agent import client as client_module
from agent import config as config_module
from agent.client import ComputeClient
from agent.config import load_config
from agent.errors import IncompatibleRpcVersion, UnknownMethod
from agent.rpc import server as server_module
from agent.rpc.api_version import METHOD_VERSIONS
from agent.rpc.envelope import Kind, pack

from .conftest import Stack


def speaking(monkeypatch: pytest.MonkeyPatch, *, client: str, agent: str) -> None:
    """The client's release speaks RPC API `client`, the agent's serves `agent`; the client's
    release changed `set_host_enabled` (so it is sent at the client's version)."""
    monkeypatch.setattr(client_module, "RPC_API_VERSION", client)
    monkeypatch.setattr(server_module, "RPC_API_VERSION", agent)
    monkeypatch.setitem(METHOD_VERSIONS, "set_host_enabled", client)


async def disable(client: ComputeClient, message_id: str | None = None) -> object:
    return await client.call(
        "h1", "set_host_enabled", {"enabled": False}, timeout=10, message_id=message_id
    )


async def test_a_client_capped_at_the_older_agents_version_is_served_without_a_refusal(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    speaking(monkeypatch, client="1.1", agent="1.0")
    client = ComputeClient(stack.transport, rpc_version_cap="1.0", is_admin=True)
    assert await disable(client) == "disabled"
    assert stack.dispatcher.stats.errors == 0
    assert stack.journal.calls == [("host", "set_host_enabled:False")]


async def test_an_uncapped_newer_client_learns_the_agents_version_from_one_refusal(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    speaking(monkeypatch, client="1.1", agent="1.0")
    client = ComputeClient(stack.transport, is_admin=True)
    assert await disable(client, message_id="key-1") == "disabled"
    assert stack.dispatcher.stats.errors == 1  # the one refusal
    assert client.rpc_versions.for_host("h1") == "1.0"
    # The resend ran under the caller's key: sent again under it, the reply cache answers.
    assert await disable(client, message_id="key-1") == "disabled"
    assert stack.dispatcher.stats.duplicates == 1
    assert await client.call("h1", "set_host_enabled", {"enabled": True}) == "enabled"
    assert stack.dispatcher.stats.errors == 1
    assert stack.journal.calls == [
        ("host", "set_host_enabled:False"),
        ("host", "set_host_enabled:True"),
    ]


async def test_a_method_the_older_agent_does_not_know_is_still_unknown_method(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    speaking(monkeypatch, client="1.1", agent="1.0")
    monkeypatch.setitem(METHOD_VERSIONS, "migrate_in_style", "1.1")  # new in the client's
    client = ComputeClient(stack.transport, is_admin=True)
    with pytest.raises(UnknownMethod, match="unknown method 'migrate_in_style'"):
        await client.call("h1", "migrate_in_style", timeout=10)
    assert client.rpc_versions.for_host("h1") == "1.0"


@pytest.mark.parametrize(("ours", "theirs"), [("1.1", "2.0"), ("2.0", "1.0")])
async def test_an_agent_of_another_major_still_refuses_with_incompatible_rpc_version(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, ours: str, theirs: str
) -> None:
    speaking(monkeypatch, client=ours, agent=theirs)
    client = ComputeClient(stack.transport, is_admin=True)
    with pytest.raises(IncompatibleRpcVersion) as refused:
        await disable(client)
    assert str(refused.value) == (
        f"RPC API version {ours} is not served by this agent (it serves {theirs}); "
        f"pin the client to {theirs} or upgrade the agent"
    )
    assert client.rpc_versions.for_host("h1") == ours
    assert stack.dispatcher.stats.errors == 1
    assert stack.journal.calls == []


async def test_a_host_whose_manifest_changed_is_sent_the_clients_own_version_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    speaking(monkeypatch, client="1.1", agent="1.0")
    client = ComputeClient(stack.transport, is_admin=True)
    await disable(client)
    # Another agent answers for h1 now (upgraded, or rolled back): its manifest differs.
    client.learn_manifest("h1", {"Instance": "1.0"})
    assert client.rpc_versions.for_host("h1") == "1.1"
    # Still of 1.0: one more refusal, learnt again, and the call is served.
    assert await client.call("h1", "set_host_enabled", {"enabled": True}) == "enabled"
    assert (stack.dispatcher.stats.errors, client.rpc_versions.for_host("h1")) == (2, "1.0")


async def test_a_refusal_of_the_rpc_version_is_not_remembered_so_the_same_id_runs_later(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    speaking(monkeypatch, client="1.0", agent="1.0")
    request = stack.client._request(
        Kind.CALL, "h1", "set_host_enabled", {"enabled": False}, None, 10
    )
    request.rpc_version = "1.1"
    refused = await stack.transport.call(
        "h1", pack(request), message_id=request.message_id, timeout=5
    )
    with pytest.raises(IncompatibleRpcVersion, match=r"RPC API version 1\.1 is not served"):
        stack.client._raise_or_result("h1", refused)
    request.rpc_version = "1.0"
    served = await stack.transport.call(
        "h1", pack(request), message_id=request.message_id, timeout=5
    )
    assert stack.client._raise_or_result("h1", served) == "disabled"
    assert stack.journal.calls == [("host", "set_host_enabled:False")]


async def test_a_cast_of_an_rpc_version_the_agent_does_not_serve_is_dead_lettered(
    stack: Stack,
) -> None:
    request = stack.client._request(
        Kind.CAST, "h1", "set_host_enabled", {"enabled": False}, None, 10
    )
    request.rpc_version = "1.9"
    body = pack(request)
    await stack.transport.cast("h1", body, message_id=request.message_id, ttl=None)
    dead: list[tuple[bytes, str]] = []
    async with asyncio.timeout(10):
        while not dead:
            dead = await stack.transport.dead_letters()
            await asyncio.sleep(0.02)
    assert dead == [(body, "incompatible-rpc-version")]
    assert stack.journal.calls == []


async def test_a_fanout_carries_the_oldest_version_a_host_serves(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    speaking(monkeypatch, client="1.1", agent="1.0")
    client = ComputeClient(stack.transport, is_admin=True)
    await disable(client)
    await client.fanout("set_host_enabled", {"enabled": True})
    async with asyncio.timeout(10):
        while len(stack.journal.calls) < 2:  # noqa: ASYNC110 - the cast has no reply to wait on
            await asyncio.sleep(0.02)
    assert stack.journal.calls[1] == ("host", "set_host_enabled:True")
    assert await stack.transport.dead_letters() == []


async def test_a_client_built_from_the_configuration_is_capped_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "RPC_API_VERSION", "1.1")
    monkeypatch.setattr(config_module, "RPC_API_VERSION", "1.1")
    config = load_config(
        environ={"VIRTACTOR_RPC_RPC_VERSION_CAP": "1.0", "VIRTACTOR_RPC_CALL_TIMEOUT": "7"}
    )
    client = await ComputeClient.from_config(config)
    try:
        assert (client.rpc_versions.own, client.default_timeout) == ("1.0", 7.0)
    finally:
        await client.aclose()
