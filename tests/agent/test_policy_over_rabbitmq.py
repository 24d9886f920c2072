"""The policy as a deployment meets it: a real agent (libvirt's test:///default) over the real
RabbitMQ, with a method's rule configured, asked by clients with and without roles and by the
operator command line. A refusal arrives as `PolicyNotAuthorized`, and nothing runs."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import AmqpSection, ConductorSection, PolicySection, ResourcesSection
from agent.errors import InstanceNotFound, PolicyNotAuthorized
from agent.service import Agent
from schemas.objects import Service
from tests.actors.instance.fakes import instance
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import embedded_config
from tests.agent.test_cli_commands import virtactor
from tests.conftest import ON_SESSION_LOOP

pytestmark = [*ON_SESSION_LOOP, pytest.mark.rabbitmq]

HOST = "cmp-policy"
ANONYMOUS = "user None (project None, roles [], unsigned)"


@dataclass
class Deployment:
    url: str
    prefix: str
    agent: Agent

    async def client(self, **context: object) -> ComputeClient:
        return await ComputeClient.connect(
            self.url, prefix=self.prefix, default_timeout=20, announce_interval=None, **context
        )


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def deployment(
    rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """Agent HOST on a prefix of its own, keeping no records (no conductor); its policy gives
    host_maintenance_mode to the role "operator" alone."""
    root: Path = tmp_path_factory.mktemp("policy")
    prefix = f"vt-policy-{uuid.uuid4().hex[:8]}"
    base = embedded_config(root, HOST)
    config = dataclasses.replace(
        base,
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        conductor=ConductorSection(save_records=False),
        resources=ResourcesSection(audit_interval=3600),
        policy=PolicySection(rules={"host_maintenance_mode": "role:operator"}),
    )
    agent = Agent(config)
    try:
        await agent.start()
        await agent.wait_ready(timeout=30)
        yield Deployment(rabbitmq_url, prefix, agent)
    finally:
        await agent.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [HOST])


async def test_a_caller_who_is_no_admin_is_refused_a_host_method_by_name(
    deployment: Deployment,
) -> None:
    member = await deployment.client(user_id="u1", project_id="p1", roles=["member"])
    try:
        with pytest.raises(PolicyNotAuthorized) as refused:
            await member.set_host_enabled(HOST, False)
        assert str(refused.value) == (
            "policy does not allow user 'u1' (project 'p1', roles ['member'], unsigned) to call "
            "'set_host_enabled'"
        )
        # An instance's methods stay open to anyone: this one reaches the instance's actor,
        # which has no such guest.
        guest = instance()
        with pytest.raises(InstanceNotFound):
            await member.get_info(HOST, guest)
    finally:
        await member.aclose()


async def test_a_refused_cast_changes_nothing_and_an_admins_runs(deployment: Deployment) -> None:
    member = await deployment.client(roles=["member"])
    admin = await deployment.client(is_admin=True)
    counts = deployment.agent.dispatcher.calls.counts
    refused = ("set_host_enabled", "cast", "PolicyNotAuthorized")
    before = counts.get(refused, 0)
    try:
        async with await admin.subscribe(f"host.{HOST}.status") as stream:
            await member.cast(HOST, "set_host_enabled", {"enabled": False})
            await admin.cast(HOST, "set_host_enabled", {"enabled": True})
            seen: list[bool] = []
            async with asyncio.timeout(20):
                async for event in stream:
                    if isinstance(event.payload, Service):
                        seen.append(event.payload.disabled)
                        break
            async with asyncio.timeout(10):
                while counts.get(refused, 0) == before:  # noqa: ASYNC110 - the agent's count
                    await asyncio.sleep(0.05)
        # Only the admin's cast changed the host's status: the refused one published nothing.
        assert seen == [False]
        assert counts.get(refused, 0) == before + 1
    finally:
        await member.aclose()
        await admin.aclose()


async def test_a_configured_rule_replaces_the_default_for_its_method(
    deployment: Deployment,
) -> None:
    operator = await deployment.client(roles=["operator"])
    admin = await deployment.client(is_admin=True)
    try:
        assert await operator.host_maintenance_mode(HOST, True) == "on_maintenance"
        assert await operator.host_maintenance_mode(HOST, False) == "off_maintenance"
        with pytest.raises(PolicyNotAuthorized, match="'host_maintenance_mode'"):
            await admin.host_maintenance_mode(HOST, True)
        # The operator's role gives it only that method: the others keep their default.
        with pytest.raises(PolicyNotAuthorized, match="'set_host_enabled'"):
            await operator.set_host_enabled(HOST, True)
    finally:
        await operator.aclose()
        await admin.aclose()


async def test_the_operator_command_line_is_an_admin_unless_told_otherwise(
    deployment: Deployment,
) -> None:
    bus = ["--url", deployment.url, "--prefix", deployment.prefix]
    allowed = await virtactor("call", HOST, "get_available_nodes", "--json", *bus)
    assert allowed.status == 0, allowed.stderr
    refused = await virtactor("call", HOST, "get_available_nodes", "--no-admin", *bus)
    assert (refused.status, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"PolicyNotAuthorized: policy does not allow {ANONYMOUS} to call 'get_available_nodes'\n"
    )
    with_role = await virtactor(
        "call", HOST, "host_maintenance_mode", f"host={HOST}", "mode=false", "--no-admin",
        "--role", "operator", "--json", *bus,
    )  # fmt: skip
    assert (with_role.status, with_role.stdout.strip()) == (0, '"off_maintenance"'), (
        with_role.stderr
    )
