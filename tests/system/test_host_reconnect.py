"""libvirtd dies and comes back while the agent runs: calls fail fast during the outage, the
Host reconnects by itself, and events flow again, without restarting the agent.

This kills a PRIVATE libvirtd (deploy/local/libvirt-host.sh, host47), never the shared one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from actors import BlockingExecutor
from actors.host import AUTO_DISABLED_PREFIX, host_topic
from agent.errors import HypervisorUnavailable
from schemas.objects.enums import PowerState
from schemas.objects.service import Service
from tests.agent.virt.helpers import Agent, remove_domain, start_agent, stop_agent, wait_for
from tests.conftest import missing_component
from tests.system.conftest import HOST_SCRIPT, ON_REAL_QEMU, HostScriptError, run_host_script
from tests.system.domains import firmware_domain_xml

pytestmark = ON_REAL_QEMU

# A local host no other test uses: this one gets its libvirtd killed.
HOST_NAME = "host47"
HOST = "compute-47"
OUTAGE_TIMEOUT = 30.0
# A call during the outage must fail at once; this only bounds a hang so the test can fail.
FAIL_FAST_BOUND = 5.0


@pytest.fixture(scope="module")
def private_host() -> Iterator[tuple[str, Path]]:
    """(uri, state directory) of host47's libvirtd, started for this module if needed."""
    try:
        was_running = run_host_script("status", HOST_NAME, check=False).returncode == 0
        if not was_running:
            run_host_script("start", HOST_NAME)
        uri = run_host_script("uri", HOST_NAME).stdout.strip()
        state = Path(run_host_script("dir", HOST_NAME).stdout.strip())
    except (HostScriptError, OSError, subprocess.TimeoutExpired) as exc:
        missing_component(
            f"private libvirtd {HOST_NAME} ({exc})", f"{HOST_SCRIPT} start {HOST_NAME}"
        )
    try:
        yield uri, state
    finally:
        if not was_running:
            run_host_script("stop", HOST_NAME, check=False)


@pytest_asyncio.fixture(loop_scope="session")
async def agent(
    private_host: tuple[str, Path], executor: BlockingExecutor, tmp_path: Path
) -> AsyncIterator[Agent]:
    uri, _state = private_host
    started = await start_agent(
        executor, uri, str(tmp_path), host=HOST, liveness_interval=1.0, keepalive=(1, 3)
    )
    await started.ref.ask("init_host", timeout=60)
    yield started
    await stop_agent(started)


def connection_news(agent: Agent) -> list[tuple[bool, str | None]]:
    news = agent.sink.on(host_topic(HOST, "connection"))
    return [(s.disabled, s.disabled_reason) for s in news if isinstance(s, Service)]


async def test_a_killed_libvirtd_fails_calls_fast_and_its_return_is_picked_up_by_itself(
    agent: Agent, private_host: tuple[str, Path]
) -> None:
    uri, state = private_host
    pid = int((state / "libvirtd.pid").read_text())

    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: len(connection_news(agent)) == 1, OUTAGE_TIMEOUT)

    disabled, reason = connection_news(agent)[0]
    assert disabled
    assert reason is not None
    assert reason.startswith(f"{AUTO_DISABLED_PREFIX}Connection to libvirt lost: ")
    assert not agent.runtime.host.connected
    for method in ("list_instances", "get_host_uptime", "get_per_instance_usage"):
        async with asyncio.timeout(FAIL_FAST_BOUND):
            with pytest.raises(HypervisorUnavailable) as caught:
                await agent.ref.ask(method)
        assert str(caught.value).startswith(f"the hypervisor at {uri!r} is unavailable: ")
        assert caught.value.retryable

    await asyncio.to_thread(run_host_script, "start", HOST_NAME)
    await wait_for(lambda: len(connection_news(agent)) == 2, OUTAGE_TIMEOUT)

    assert connection_news(agent)[1] == (False, None)
    assert agent.runtime.host.connects == 2
    assert await agent.ref.ask("list_instances") == []

    domain_uuid = str(uuid.uuid4())
    xml = firmware_domain_xml(f"virtactor-back-{domain_uuid[:8]}", domain_uuid)
    try:
        await agent.run(lambda conn: conn.defineXML(xml).create())
        await wait_for(lambda: "started" in agent.actors.kinds(domain_uuid), OUTAGE_TIMEOUT)
        await wait_for(lambda: PowerState.RUNNING in agent.states(domain_uuid), OUTAGE_TIMEOUT)
        assert agent.actors.kinds(domain_uuid)[0] == "defined"
    finally:
        await asyncio.to_thread(remove_domain, uri, domain_uuid)
