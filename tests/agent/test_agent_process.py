"""`virtactor run` serves its host over the real RabbitMQ and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import pytest

from agent.client import ComputeClient

from .conftest import delete_amqp_topology

pytestmark = pytest.mark.rabbitmq


async def test_the_agent_process_answers_over_rabbitmq_and_stops_on_sigterm(
    rabbitmq_url: str, tmp_path: object
) -> None:
    prefix = f"vt-proc-{uuid.uuid4().hex[:8]}"
    host = "proc-host"
    env = dict(
        os.environ,
        VIRTACTOR_AGENT_HOST=host,
        VIRTACTOR_AGENT_INSTANCES_PATH=str(tmp_path),
        VIRTACTOR_AGENT_HEARTBEAT_INTERVAL="0.5",
        VIRTACTOR_AMQP_URL=rabbitmq_url,
        VIRTACTOR_AMQP_PREFIX=prefix,
        VIRTACTOR_LIBVIRT_URI="test:///default",
        # No conductor on this bus: the agent keeps no records (it would wait for one).
        VIRTACTOR_CONDUCTOR_SAVE_RECORDS="false",
    )
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.cli",
        "--log-level",
        "INFO",
        "run",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    client = await ComputeClient.connect(
        rabbitmq_url, prefix=prefix, default_timeout=10, is_admin=True
    )
    try:
        heartbeats = await client.subscribe(f"host.{host}.heartbeat")
        event = await asyncio.wait_for(anext(aiter(heartbeats)), 60)
        assert event.sender_host == host
        await heartbeats.aclose()
        assert await client.get_available_nodes(host) != []
        assert len(await client.list_instance_uuids(host)) == 1
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 30) == 0
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await client.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [host])
