"""The dispatcher asks its policy before routing a request: over the in-process bus, a caller
the policy refuses gets `PolicyNotAuthorized` and nothing runs; one it allows is served."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from actors import HOST_ADDRESS, ActorSystem, BlockingExecutor
from agent.client import ComputeClient
from agent.errors import PolicyNotAuthorized
from agent.rpc.envelope import Kind, Reply, Request, pack, unpack
from agent.rpc.manifest import Manifest
from agent.rpc.policy import Policy
from agent.rpc.remote_errors import ErrorRegistry
from agent.rpc.server import Dispatcher
from agent.transport import Delivery, InProcessBus
from schemas import DecodeLimits, RequestContext, default_registry
from schemas.objects import Instance
from tests.agent.rpc.conftest import METHODS, Journal, StandInHost, StandInInstance

UUID = "6695eb01-f6a4-8304-79aa-97f3502e193b"
MEMBER: dict[str, Any] = {"user_id": "u1", "project_id": "p1", "roles": ["member"]}


@dataclass
class Served:
    bus: InProcessBus
    system: ActorSystem
    dispatcher: Dispatcher
    journal: Journal


@pytest.fixture
async def agent() -> AsyncIterator[Served]:
    """Stand-in actors behind a dispatcher of the default policy (tests set another)."""
    bus = InProcessBus()
    await bus.start()
    journal = Journal()
    system = ActorSystem(executor=BlockingExecutor(max_workers=2, name="policy-h1"))
    system.spawn(HOST_ADDRESS, lambda: StandInHost(journal))
    dispatcher = Dispatcher(
        host="h1",
        system=system,
        methods=METHODS,
        instance_factory=lambda uuid: StandInInstance(uuid, journal),
        registry=default_registry,
        manifest=default_registry.manifest(),
        limits=DecodeLimits(),
    )
    await bus.serve("h1", dispatcher.handle)
    yield Served(bus, system, dispatcher, journal)
    await system.aclose(timeout=5)
    await bus.aclose()


def client(
    agent: Served,
    user_id: str | None = None,
    project_id: str | None = None,
    roles: Sequence[str] = (),
    is_admin: bool = False,
) -> ComputeClient:
    return ComputeClient(
        agent.bus,
        default_timeout=10,
        announce_interval=None,
        user_id=user_id,
        project_id=project_id,
        roles=roles,
        is_admin=is_admin,
    )


async def test_a_caller_who_is_no_admin_is_refused_set_host_enabled_and_nothing_changes(
    agent: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(PolicyNotAuthorized) as refused:
        await client(agent, **MEMBER).call("h1", "set_host_enabled", {"enabled": False})
    caller = "user 'u1' (project 'p1', roles ['member'], unsigned)"
    assert str(refused.value) == f"policy does not allow {caller} to call 'set_host_enabled'"
    assert agent.journal.calls == []
    assert f"policy refused set_host_enabled to {caller}: rule 'is_admin'" in caplog.messages
    assert agent.dispatcher.calls.counts == {("set_host_enabled", "call", "PolicyNotAuthorized"): 1}


@pytest.mark.parametrize("admin", [{"is_admin": True}, {"roles": ["admin"]}])
async def test_an_admin_may_call_set_host_enabled(agent: Served, admin: dict[str, Any]) -> None:
    assert await client(agent, **admin).call("h1", "set_host_enabled", {"enabled": False}) == (
        "disabled"
    )
    assert agent.journal.calls == [("host", "set_host_enabled:False")]


async def test_anyone_may_call_an_instance_method_by_default(agent: Served) -> None:
    await client(agent).call("h1", "pause", {"instance": Instance(uuid=UUID)}, instance=UUID)
    assert agent.journal.calls == [(UUID, "pause")]


async def test_a_refused_instance_method_spawns_no_actor(agent: Served) -> None:
    agent.dispatcher.policy = Policy(default_instance="role:member")
    with pytest.raises(PolicyNotAuthorized, match="'pause'"):
        await client(agent).call("h1", "pause", {"instance": Instance(uuid=UUID)}, instance=UUID)
    assert f"instance:{UUID}" not in agent.system
    assert agent.journal.calls == []


async def test_a_methods_configured_rule_replaces_the_default(agent: Served) -> None:
    agent.dispatcher.policy = Policy({"set_host_enabled": "role:operator"})
    operator = client(agent, roles=["operator"])
    assert await operator.call("h1", "set_host_enabled", {"enabled": False}) == "disabled"
    # The rule replaces the default: an admin without the role is refused now.
    with pytest.raises(PolicyNotAuthorized):
        await client(agent, is_admin=True).call("h1", "set_host_enabled", {"enabled": True})
    # Other host methods keep the default.
    with pytest.raises(PolicyNotAuthorized):
        await operator.call("h1", "list_instance_uuids")
    assert agent.journal.calls == [("host", "set_host_enabled:False")]


def delivery(method: str, args: dict[str, object], sender: str | None, cast: bool) -> Delivery:
    message_id = str(uuid.uuid4())
    request = Request(
        message_id=message_id,
        kind=Kind.CAST if cast else Kind.CALL,
        method=method,
        host="h1",
        instance=None,
        context=RequestContext(request_id=f"req-{message_id}"),
        args=args,
        manifest=Manifest(default_registry.manifest()),
    )
    return Delivery(pack(request), message_id, reply_expected=not cast, sender=sender)


async def test_an_identity_rule_allows_only_the_signed_sender_it_names(agent: Served) -> None:
    agent.dispatcher.policy = Policy({"set_host_enabled": "identity:scheduler"})
    refused = []
    for sender in (None, "cmp-2", "scheduler"):
        outcome = await agent.dispatcher.handle(
            delivery("set_host_enabled", {"enabled": False}, sender, cast=False)
        )
        assert outcome.reply is not None
        reply = unpack(outcome.reply, default_registry, DecodeLimits())
        assert isinstance(reply, Reply)
        if reply.error is not None:
            refused.append((sender, ErrorRegistry().rebuild(reply.error)))
    assert [(s, type(e).__name__) for s, e in refused] == [
        (None, "PolicyNotAuthorized"),
        ("cmp-2", "PolicyNotAuthorized"),
    ]
    assert "signed by 'cmp-2'" in str(refused[1][1])
    assert agent.journal.calls == [("host", "set_host_enabled:False")]


async def test_a_refused_cast_does_not_run_and_its_refusal_is_logged(
    agent: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        await client(agent, **MEMBER).cast("h1", "set_host_enabled", {"enabled": False})
        # An admin's cast after it: the handler's run shows the casts are being served.
        await client(agent, is_admin=True).cast("h1", "set_host_enabled", {"enabled": True})
        async with asyncio.timeout(5):
            while sum(agent.dispatcher.calls.counts.values()) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    assert agent.journal.calls == [("host", "set_host_enabled:True")]
    assert agent.dispatcher.calls.counts == {
        ("set_host_enabled", "cast", "PolicyNotAuthorized"): 1,
        ("set_host_enabled", "cast", "ok"): 1,
    }
    refusals = [m for m in caplog.messages if "refused" in m and "set_host_enabled" in m]
    assert refusals[0].startswith("policy refused set_host_enabled to user 'u1'")
    assert refusals[1].startswith("cast set_host_enabled ")
    assert "refused" in refusals[1] and "policy does not allow" in refusals[1]


async def test_the_object_manifest_query_needs_no_policy(agent: Served) -> None:
    agent.dispatcher.policy = Policy(default_host="!", default_instance="!")
    assert await client(agent).get_object_manifest("h1") == dict(default_registry.manifest())
