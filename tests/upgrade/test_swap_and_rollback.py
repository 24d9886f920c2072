"""An agent replaced in place on its durable queue by the next release, then rolled back to
the previous one with the next release's example configuration: the guest is served
throughout, and a call sent while nobody consumed the queue is served after the swap."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aio_pika
import pytest

from agent.transport import Names
from tests.upgrade.configs import (
    ROLLOUT_POLICY,
    adapted_example,
    agent_config,
    file_defined_host,
    make_dirs,
    with_policy,
)
from tests.upgrade.conftest import ON_THE_BUS, agents_cleaned_up
from tests.upgrade.processes import AgentProcess, play, unique
from tests.upgrade.releases import Release
from tests.upgrade.scenarios import host_steps, instance_steps, sample_instance, values

pytestmark = ON_THE_BUS


async def wait_for_queued(url: str, queue: str, count: int, timeout: float = 30) -> None:
    """Until `queue` holds `count` messages: the call was sent and nobody took it."""
    connection = await aio_pika.connect(url)
    async with connection, asyncio.timeout(timeout):
        channel = await connection.channel()
        while True:
            declared = await channel.declare_queue(queue, passive=True)
            if declared.declaration_result.message_count >= count:
                return
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("client_side", ["N", "N-1"], ids=["new-client", "old-client"])
async def test_an_agent_swapped_in_place_and_rolled_back_keeps_serving_its_guest(
    releases: dict[str, Release], rabbitmq_url: str, tmp_path: Path, client_side: str
) -> None:
    prefix, host = unique("vt-swap"), unique("upg-swap")
    # Running on its host already: the agents adopt it with what the control plane sends.
    guest = sample_instance(str(uuid.uuid4()), vm_state="active", power_state="running")
    uri = file_defined_host(tmp_path / "host.xml", guest["uuid"], guest["name"])
    client = releases[client_side]
    command = {"url": rabbitmq_url, "prefix": prefix, "timeout": 30}

    def agent(side: str, config: Path) -> AgentProcess:
        return AgentProcess(releases[side], host, config, tmp_path / f"{side}.log")

    async with agents_cleaned_up(rabbitmq_url, prefix) as agents:
        agents.append(
            agent("N-1", agent_config(host, tmp_path / "agent", rabbitmq_url, prefix, uri))
        )
        await agents[0].start()
        before = await play(
            client, {**command, "steps": instance_steps(host, guest, [("pause", {})])}
        )
        assert values(before, "vm_state", "power_state") == [("paused", "paused")]
        assert await agents[0].stop() == 0

        # Sent while nobody consumes the durable queue: it waits there for the next agent.
        queued = asyncio.create_task(
            play(
                client,
                {
                    **command,
                    "steps": [
                        {**s, "timeout": 60} for s in instance_steps(host, guest, [("pause", {})])
                    ],
                },
            )
        )
        try:
            await wait_for_queued(rabbitmq_url, Names(prefix).host_queue(host), 1)
            # The same configuration, and the policy the rollout needs (configs.py).
            agents.append(agent("N", with_policy(agents[0].config, ROLLOUT_POLICY)))
            await agents[1].start()
            # A process of its own sees the file's guest running again (configs.py).
            assert values(await queued, "vm_state", "power_state") == [("paused", "paused")]
        finally:
            if not queued.done():
                queued.cancel()
        after = await play(
            client,
            {
                **command,
                "steps": [
                    *instance_steps(host, guest, [("unpause", {})]),
                    *host_steps(host, [("instance_exists", {"uuid": guest["uuid"]})]),
                ],
            },
        )
        assert values(after, "vm_state", "power_state") == [("active", "running"), True]
        assert await agents[1].stop() == 0

        # Rolled back: the previous release, with the example configuration of this one.
        make_dirs(tmp_path / "rollback")
        example = adapted_example(
            tmp_path / "rollback" / "virtactor.toml",
            {
                "agent": {"host": host, "instances_path": str(tmp_path / "rollback" / "instances")},
                "libvirt": {"uri": uri},
                "amqp": {"url": rabbitmq_url, "prefix": prefix},
            },
        )
        agents.append(agent("N-1", example))
        await agents[2].start()
        rolled_back = await play(
            client,
            {**command, "steps": instance_steps(host, guest, [("pause", {}), ("unpause", {})])},
        )
        assert values(rolled_back, "vm_state", "power_state") == [
            ("paused", "paused"),
            ("active", "running"),
        ]
