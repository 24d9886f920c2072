"""libvirt's failures reach a control plane as typed errors, never as a wrapped libvirtError:
a whole agent on libvirt's test driver, driven over the bus (real QEMU:
tests/system/test_guest_agent_errors.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import AgentConfig, AgentSection, GuestSection, LibvirtSection
from agent.errors import HypervisorError, NotSupported
from agent.service import Agent
from agent.transport import InProcessBus
from agent.virt import qemu_img
from schemas.objects import Instance
from tests.actors.instance.fakes import IMAGE_ID, image_meta, instance
from tests.agent.test_instance_rpc import remove_test_domain

HOST = "compute-errors"

# libvirt binds its events to one asyncio loop per process: the session loop.
pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("session_loop_not_blocked"),
]


@dataclass
class Running:
    client: ComputeClient
    guest: Instance


@pytest_asyncio.fixture(loop_scope="session")
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A guest whose image declares a QEMU guest agent, running on the test driver."""
    images = tmp_path / "images"
    images.mkdir()
    await asyncio.to_thread(
        qemu_img.run, ["create", "-q", "-f", "qcow2", str(images / IMAGE_ID), "8M"]
    )
    config = AgentConfig(
        agent=AgentSection(host=HOST, instances_path=str(tmp_path / "instances")),
        libvirt=LibvirtSection(uri="test:///default"),
        guest=GuestSection(images_path=str(images), virt_type="qemu", cpu_mode="none"),
    )
    bus = InProcessBus()
    await bus.start()
    agent = Agent(config, transport=bus)
    client = ComputeClient(bus, default_timeout=30)
    guest = instance(str(uuid.uuid4()))
    await agent.start()
    try:
        await agent.wait_ready(timeout=30)
        await client.spawn(HOST, guest, image_meta(guest_agent=True))
        yield Running(client, guest)
    finally:
        await agent.aclose()
        await bus.aclose()
        left = await asyncio.to_thread(remove_test_domain, guest.uuid)
    assert guest.uuid not in left


async def test_a_guest_agent_call_the_driver_lacks_is_not_supported(running: Running) -> None:
    # It used to end in HandlerFailed: AttributeError, on a libvirt constant this
    # libvirt-python does not define, whatever libvirt had said.
    with pytest.raises(NotSupported) as caught:
        await running.client.set_admin_password(HOST, running.guest, "s3cret")

    assert str(caught.value) == (
        "virDomainQemuAgentCommand is not supported: "
        "this function is not supported by the connection driver: virDomainQemuAgentCommand"
    )


async def test_a_disk_the_guest_lacks_is_a_hypervisor_error_with_libvirts_code(
    running: Running,
) -> None:
    with pytest.raises(HypervisorError) as caught:
        await running.client.block_stats(HOST, running.guest, "vdz")

    assert caught.value.fields == {
        "code": libvirt.VIR_ERR_INVALID_ARG,
        "origin": libvirt.VIR_FROM_TEST,
        "reason": "invalid argument: invalid path: vdz",
    }


async def test_an_interface_the_guest_lacks_is_a_hypervisor_error(running: Running) -> None:
    with pytest.raises(HypervisorError) as caught:
        await running.client.interface_stats(HOST, running.guest, "tap-nope")

    assert caught.value.code == libvirt.VIR_ERR_INVALID_ARG
    assert caught.value.reason == "invalid argument: 'tap-nope' is not a known interface"
