"""The upgrade tier's fixtures: the previous release built once per session, and a mixed fleet
(one agent of each release, real processes over the real RabbitMQ) once per module.

Under CI=true anything missing (the release, its commit, its environment, RabbitMQ) fails the
tier instead of skipping it (tests/conftest.py `missing_component`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.agent.conftest import delete_amqp_topology
from tests.conftest import missing_component
from tests.upgrade.configs import ROLLOUT_POLICY, agent_config
from tests.upgrade.processes import AgentProcess, ProcessFailed, unique
from tests.upgrade.releases import (
    Release,
    ReleaseUnavailable,
    build_release_env,
    current_release,
    object_manifest,
    previous_release,
)

# The marks of a test that runs agents. The timeout is the tier's outer bound: the first test
# also waits for the session to build the previous release (releases.BUILD_TIMEOUT); every
# step inside has its own, tighter one (calls, readiness, a client's run).
ON_THE_BUS = [
    pytest.mark.rabbitmq,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(600),
]

# Who plays which side in a test that runs both ways: (agent's release, client's release).
BOTH_WAYS = pytest.mark.parametrize(
    ("agent_side", "client_side"),
    [("N-1", "N"), ("N", "N-1")],
    ids=["old-agent-new-client", "new-agent-old-client"],
)


@pytest.fixture(scope="session")
def releases() -> dict[str, Release]:
    """{"N-1": the previous release, installed in its own venv; "N": this checkout}."""
    try:
        version, commit = previous_release()
        previous = Release(version=version, commit=commit, venv=build_release_env(commit))
        current = current_release()
    except ReleaseUnavailable as exc:
        missing_component(
            f"the previous release ({exc})", "deploy/local/release-env.sh <commit> (make test)"
        )
    return {"N-1": previous, "N": current}


@dataclass
class Fleet:
    """One agent of each release on the bus under `prefix`, each on its own test:///default."""

    url: str
    prefix: str
    agents: dict[str, AgentProcess]

    def command(self, **more: object) -> dict[str, object]:
        """A client command (tests/upgrade/old_client.py) for this fleet's bus."""
        return {"url": self.url, "prefix": self.prefix, "timeout": 30, **more}


@contextlib.asynccontextmanager
async def agents_cleaned_up(url: str, prefix: str) -> AsyncIterator[list[AgentProcess]]:
    """A list to put the agents a test starts in: on the way out, whatever happened, each is
    stopped (killed if it takes more than 10 s) and the bus topology under `prefix` deleted,
    so no process and no durable queue outlives the test."""
    agents: list[AgentProcess] = []
    try:
        yield agents
    finally:
        for agent in agents:
            if agent.process is not None:
                with contextlib.suppress(ProcessFailed):
                    await agent.stop(timeout=10)
        await delete_amqp_topology(url, prefix, sorted({a.host for a in agents}))


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def fleet(
    releases: dict[str, Release], rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    prefix = unique("vt-upg")
    root = tmp_path_factory.mktemp("fleet")
    # The upgrade pin: the new release's agent speaks what the previous release's clients read.
    pins = {"N-1": None, "N": object_manifest(releases["N-1"])}
    # And its policy lets the previous release's clients, which send no roles, call the host.
    policies = {"N-1": None, "N": ROLLOUT_POLICY}
    async with agents_cleaned_up(rabbitmq_url, prefix) as agents:
        for side, stem in (("N-1", "old"), ("N", "new")):
            host = unique(f"upg-{stem}")
            config = agent_config(
                host,
                root / host,
                rabbitmq_url,
                prefix,
                version_cap=pins[side],
                policy=policies[side],
            )
            agents.append(AgentProcess(releases[side], host, config, root / f"{host}.log"))
            await agents[-1].start()
        yield Fleet(rabbitmq_url, prefix, {"N-1": agents[0], "N": agents[1]})
