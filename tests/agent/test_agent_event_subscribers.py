"""An agent listens for its event subscribers' announcements from the moment it starts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.agent.embedded import embedded_agent, embedded_config
from tests.conftest import ON_SESSION_LOOP

pytestmark = ON_SESSION_LOOP


async def test_an_agent_learns_the_versions_a_subscriber_reads_from_its_announcement(
    tmp_path: Path,
) -> None:
    config = embedded_config(tmp_path, "compute-subscribed")
    async with embedded_agent(config, ready_timeout=None) as (agent, client):
        assert client.announcer is not None
        subscriber = client.announcer.subscriber
        async with await client.subscribe("host.compute-subscribed.*"), asyncio.timeout(10):
            # Polls: the agent's listener runs in its own task, with nothing to wait on.
            while subscriber not in agent.events.subscribers.subscribers(time.monotonic()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        heard = agent.events.subscribers.subscribers(time.monotonic())
        assert heard[client.announcer.subscriber] == client.manifest
        assert agent.events.target is None  # it reads everything the agent sends
