"""Turning signatures on across a fleet that still runs the previous release (which neither
signs nor checks): this release's agent in mode "sign" serves the previous release's
unsigned clients, this release's signing client is served by both releases' agents, and a
forged signature is refused all the same (docs/security.md, "Modes")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.errors import CallTimeout
from agent.security import MessageSecurity, SigningMode
from tests.agent.security.keyring import make_keys, signer
from tests.upgrade.configs import ROLLOUT_POLICY, agent_config
from tests.upgrade.conftest import ON_THE_BUS, agents_cleaned_up
from tests.upgrade.processes import AgentProcess, play, unique
from tests.upgrade.releases import Release
from tests.upgrade.scenarios import host_steps

pytestmark = ON_THE_BUS

CONTROL_PLANE = "control-plane"
INTRUDER = "intruder"  # a key no one trusts


@dataclass
class Rollout:
    url: str
    prefix: str
    keys: Path
    old: AgentProcess  # the previous release: no [security] at all
    new: AgentProcess  # this release, [security] signing = "sign"

    def command(self, **more: object) -> dict[str, object]:
        return {"url": self.url, "prefix": self.prefix, "timeout": 30, **more}

    def security(self, identity: str) -> MessageSecurity:
        return signer(self.keys, identity, SigningMode.SIGN)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rollout(
    releases: dict[str, Release], rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rollout]:
    prefix = unique("vt-sig-upg")
    root = tmp_path_factory.mktemp("signing-rollout")
    keys = root / "keys"
    old_host, new_host = unique("sig-old"), unique("sig-new")
    make_keys(keys, [new_host, CONTROL_PLANE], untrusted=(INTRUDER,))
    async with agents_cleaned_up(rabbitmq_url, prefix) as agents:
        old_config = agent_config(old_host, root / old_host, rabbitmq_url, prefix)
        new_config = agent_config(
            new_host, root / new_host, rabbitmq_url, prefix, policy=ROLLOUT_POLICY
        )
        with new_config.open("a") as config:
            config.write(
                '\n[security]\nsigning = "sign"\n'
                f'private_key = "{keys / "private" / f"{new_host}.pem"}"\n'
                f'trusted_keys = "{keys / "trusted"}"\n'
            )
        for release, host, config_path in (
            (releases["N-1"], old_host, old_config),
            (releases["N"], new_host, new_config),
        ):
            agents.append(AgentProcess(release, host, config_path, root / f"{host}.log"))
            await agents[-1].start()
        yield Rollout(rabbitmq_url, prefix, keys, agents[0], agents[1])


async def test_the_previous_release_s_unsigned_client_is_served_by_a_signing_agent(
    rollout: Rollout, releases: dict[str, Release]
) -> None:
    steps = host_steps(rollout.new.host, [("get_host_uptime", {}), ("get_available_nodes", {})])
    answer = await play(releases["N-1"], rollout.command(steps=steps))
    uptime, nodes = (result.get("ok", result) for result in answer["results"])
    assert isinstance(uptime, float) and uptime > 0, answer
    assert isinstance(nodes, list) and len(nodes) == 1, answer


async def test_a_signing_client_is_served_by_both_releases_and_a_forger_refused_by_the_new(
    rollout: Rollout,
) -> None:
    async def client_as(security: MessageSecurity) -> ComputeClient:
        return await ComputeClient.connect(
            rollout.url,
            prefix=rollout.prefix,
            security=security,
            default_timeout=20,
            announce_interval=None,
            is_admin=True,
        )

    signed = await client_as(rollout.security(CONTROL_PLANE))
    try:
        # The previous release ignores the signature headers; its reply comes unsigned,
        # which a client in mode "sign" lets in (and counts).
        for agent in (rollout.old, rollout.new):
            assert await signed.call(agent.host, "get_host_uptime") > 0
        security = signed.transport.settings.security  # type: ignore[attr-defined]
        assert security.stats.unsigned_accepted >= 1  # the old agent's reply
        assert security.stats.verified >= 1  # the new agent's reply
    finally:
        await signed.aclose()
    forger = await client_as(rollout.security(INTRUDER))
    try:
        # "sign" lets unsigned messages in, never forged ones.
        with pytest.raises(CallTimeout):
            await forger.call(
                rollout.new.host, "get_host_uptime", timeout=3, message_id=str(uuid.uuid4())
            )
    finally:
        await forger.aclose()
