"""A guest whose image declares a QEMU guest agent it does not run, on real QEMU (host1).

libvirt gives the domain its agent channel, but nothing in the busybox guest answers on it:
the guest-agent calls answer `GuestAgentUnavailable` (retryable), as their own class across
the bus, and leave the guest as it was. One guest, booted once for the module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.virt.guest.errors import GuestAgentUnavailable
from schemas.objects import Instance
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost, qemu_files_dir
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    embedded_client,
    kernel_image,
    spawn_booted,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU

# libvirt's words when the channel exists but no agent opened it (qemuDomainAgentAvailable).
NOT_CONNECTED = "QEMU guest agent is not connected"


@dataclass
class AgentlessGuest:
    client: ComputeClient
    me: Instance


@pytest.fixture(scope="module")
def module_dir() -> Iterator[Path]:
    """Where QEMU reads the module's one guest's files."""
    with qemu_files_dir() as path:
        yield path


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def agentless(
    test_hosts: tuple[LocalHost, ...], guest_image: GuestImage, module_dir: Path
) -> AsyncIterator[AgentlessGuest]:
    janitor = DomainJanitor(hosts=test_hosts)
    try:
        async with embedded_client(test_hosts[0], module_dir, guest_image) as client:
            me = tracked_instance(janitor)
            image = kernel_image(guest_image)
            image.properties.hw_qemu_guest_agent = True
            # Booted: the agent is absent, not merely not yet up.
            await spawn_booted(client, me, image)
            yield AgentlessGuest(client, me)
    finally:
        janitor.clean()


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
