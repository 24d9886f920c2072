"""An agent whose first adoption fails keeps trying until its guests are adopted."""

from __future__ import annotations

import pytest

from actors import ActorSystem, BlockingExecutor, handler
from actors.actor import Actor
from agent import service
from agent.config import AgentConfig
from agent.errors import HypervisorUnavailable
from agent.service import Agent


class FlakyHost(Actor):
    def __init__(self) -> None:
        self.attempts = 0

    @handler
    async def init_host(self) -> list[str]:
        self.attempts += 1
        if self.attempts < 3:
            raise HypervisorUnavailable(uri="qemu:///system", reason="not yet")
        return ["a-uuid"]


async def test_adoption_is_retried_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "ADOPTION_RETRY_MIN", 0.01)
    agent = Agent(AgentConfig())
    host = FlakyHost()
    async with ActorSystem(executor=BlockingExecutor(1, "adopt-test")) as system:
        ref = system.spawn("host", host)
        assert await agent._adopt(ref) == ["a-uuid"]
    assert host.attempts == 3
    await agent.executor.aclose()
