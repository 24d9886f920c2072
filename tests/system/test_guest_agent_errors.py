"""A guest whose image declares a QEMU guest agent it does not run, on real QEMU (host1).

libvirt gives the domain its agent channel, but nothing in the busybox guest answers on it:
the guest-agent calls answer `GuestAgentUnavailable` (retryable), as their own class across
the bus, and leave the guest as it was. One guest, booted once for the module.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import AmqpSection
from agent.virt.guest.errors import GuestAgentUnavailable
from schemas.objects import Instance
from tests.system.conftest import QEMU_FILES_DIR, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage, GuestMarker
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    HOST,
    config_for,
    embedded_agent,
    kernel_image,
    make_guest_files,
    new_instance,
)

pytestmark = [
    pytest.mark.libvirt_qemu,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("session_loop_not_blocked"),
]

# libvirt's words when the channel exists but no agent opened it (qemuDomainAgentAvailable).
NOT_CONNECTED = "QEMU guest agent is not connected"


@dataclass
class AgentlessGuest:
    client: ComputeClient
    me: Instance


@pytest.fixture(scope="module")
def module_files(guest_image: GuestImage) -> Iterator[Path]:
    """The images the guest boots from, where QEMU reads, for the module's one guest."""
    QEMU_FILES_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=QEMU_FILES_DIR))
    path.chmod(0o755)
    try:
        yield make_guest_files(path, guest_image)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def agentless(
    test_hosts: tuple[LocalHost, ...], guest_image: GuestImage, module_files: Path
) -> AsyncIterator[AgentlessGuest]:
    janitor = DomainJanitor(hosts=test_hosts)
    try:
        config = config_for(test_hosts[0], module_files, AmqpSection())
        async with embedded_agent(config) as (_agent, client):
            me = new_instance(janitor.track(str(uuidlib.uuid4())))
            image = kernel_image(guest_image)
            image.properties.hw_qemu_guest_agent = True
            await client.spawn(HOST, me, image)
            await wait_booted(client, me)
            yield AgentlessGuest(client, me)
    finally:
        janitor.clean()


async def wait_booted(client: ComputeClient, me: Instance) -> None:
    """Until the guest printed its boot marker: the agent is absent, not merely not yet up."""
    async with asyncio.timeout(BOOT_TIMEOUT):
        while True:
            if GuestMarker.BOOTED.value in await client.get_console_output(HOST, me):
                return
            await asyncio.sleep(0.5)  # the console is read over the bus: nothing to wait on


async def test_set_admin_password_without_an_agent_in_the_guest_is_guest_agent_unavailable(
    agentless: AgentlessGuest,
) -> None:
    client, me = agentless.client, agentless.me

    with pytest.raises(GuestAgentUnavailable) as caught:
        await client.set_admin_password(HOST, me, "s3cret")

    error = caught.value
    assert error.retryable
    assert error.uuid == me.uuid
    assert NOT_CONNECTED in error.reason
    assert str(error) == f"the guest agent of instance {me.uuid} is not answering: {error.reason}"


async def test_inject_file_without_an_agent_in_the_guest_is_guest_agent_unavailable(
    agentless: AgentlessGuest,
) -> None:
    client, me = agentless.client, agentless.me

    with pytest.raises(GuestAgentUnavailable) as caught:
        await client.inject_file(HOST, me, "/etc/motd", b"hello\n")

    assert NOT_CONNECTED in caught.value.reason


async def test_a_failed_agent_call_leaves_the_guest_running_and_ready_for_the_next(
    agentless: AgentlessGuest,
) -> None:
    client, me = agentless.client, agentless.me
    with pytest.raises(GuestAgentUnavailable):
        await client.set_admin_password(HOST, me, "again")

    assert (await client.get_info(HOST, me)).state == "running"
    paused = await client.pause(HOST, me)
    assert (paused.vm_state, paused.task_state, paused.power_state) == ("paused", None, "paused")
    assert (await client.unpause(HOST, me)).power_state == "running"
