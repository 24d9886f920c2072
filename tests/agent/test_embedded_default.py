"""The embedded default (no broker, libvirt's test driver) does every operation its driver can
do, over the bus as a control plane calls it: clean power off, soft reboot and soft delete;
the host's address and the volume connector's; the instance kinds the host can run."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import AgentConfig, AgentSection, GuestSection, LibvirtSection
from agent.service import Agent
from agent.transport import InProcessBus
from agent.virt import qemu_img
from schemas.objects import Instance
from tests.actors.instance.fakes import IMAGE_ID, image_meta, instance
from tests.agent.test_instance_rpc import remove_test_domain

HOST = "compute-embedded"

# libvirt binds its events to one asyncio loop per process: the session loop.
pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("session_loop_not_blocked"),
]


@dataclass
class Embedded:
    client: ComputeClient
    config: AgentConfig
    guest: Instance


def embedded_config(tmp_path: Path, **agent: str) -> AgentConfig:
    (tmp_path / "instances").mkdir(exist_ok=True)
    return AgentConfig(
        agent=AgentSection(host=HOST, instances_path=str(tmp_path / "instances"), **agent),
        libvirt=LibvirtSection(uri="test:///default"),
        guest=GuestSection(images_path=str(tmp_path / "images"), virt_type="qemu", cpu_mode="none"),
    )


async def start_agent(config: AgentConfig) -> tuple[Agent, InProcessBus, ComputeClient]:
    bus = InProcessBus()
    await bus.start()
    agent = Agent(config, transport=bus)
    await agent.start()
    await agent.wait_ready(timeout=30)
    return agent, bus, ComputeClient(bus, default_timeout=30)


@pytest_asyncio.fixture(loop_scope="session")
async def embedded(tmp_path: Path) -> AsyncIterator[Embedded]:
    """An agent on the embedded default, with a running guest built from a real image."""
    images = tmp_path / "images"
    images.mkdir()
    await asyncio.to_thread(
        qemu_img.run, ["create", "-q", "-f", "qcow2", str(images / IMAGE_ID), "8M"]
    )
    config = embedded_config(tmp_path)
    agent, bus, client = await start_agent(config)
    guest = instance(str(uuid.uuid4()))
    try:
        spawned = await client.spawn(HOST, guest, image_meta())
        assert (spawned.vm_state, spawned.power_state) == ("active", "running")
        yield Embedded(client, config, guest)
    finally:
        await agent.aclose()
        await bus.aclose()
        left = await asyncio.to_thread(remove_test_domain, guest.uuid)
    assert guest.uuid not in left


# --- power: the test driver refuses the ACPI flag, so a plain shutdown request is sent ------


async def test_power_off_with_its_defaults_shuts_the_guest_down(embedded: Embedded) -> None:
    stopped = await embedded.client.power_off(HOST, embedded.guest)

    assert (stopped.vm_state, stopped.power_state) == ("stopped", "shutdown")
    assert (await embedded.client.get_info(HOST, embedded.guest)).state == "shutdown"


async def test_a_soft_reboot_leaves_the_guest_running(embedded: Embedded) -> None:
    rebooted = await embedded.client.reboot(HOST, embedded.guest, "SOFT")

    assert (rebooted.vm_state, rebooted.power_state, rebooted.task_state) == (
        "active",
        "running",
        None,
    )


async def test_soft_delete_stops_the_guest_and_restore_starts_it(embedded: Embedded) -> None:
    deleted = await embedded.client.soft_delete(HOST, embedded.guest)
    assert (deleted.vm_state, deleted.power_state) == ("soft-delete", "shutdown")

    restored = await embedded.client.restore(HOST, embedded.guest)
    assert (restored.vm_state, restored.power_state) == ("active", "running")


# --- addresses ----------------------------------------------------------------------------


async def test_the_default_configuration_reports_a_host_address_to_the_host_and_connector(
    embedded: Embedded,
) -> None:
    host_ip = await embedded.client.get_host_ip_addr(HOST)
    connector = await embedded.client.get_volume_connector(HOST, embedded.guest)

    assert host_ip is not None
    assert ipaddress.ip_address(host_ip)
    assert str(connector.ip) == host_ip == embedded.config.agent.host_ip


async def test_storage_ip_changes_only_the_volume_connectors_address(tmp_path: Path) -> None:
    config = embedded_config(tmp_path, host_ip="192.0.2.10", storage_ip="198.51.100.7")
    agent, bus, client = await start_agent(config)
    try:
        guest = instance(str(uuid.uuid4()))
        connector = await client.get_volume_connector(HOST, guest)
        host_ip = await client.get_host_ip_addr(HOST)
        node = await client.get_available_resource(HOST, "")
    finally:
        await agent.aclose()
        await bus.aclose()

    assert str(connector.ip) == "198.51.100.7"
    assert host_ip == "192.0.2.10"
    assert str(node.host_ip) == "192.0.2.10"


# --- what the host can run ----------------------------------------------------------------


async def test_the_compute_node_lists_the_test_drivers_guest_kinds(embedded: Embedded) -> None:
    nodes = await embedded.client.get_available_nodes(HOST)
    node = await embedded.client.get_available_resource(HOST, nodes[0])

    assert node.supported_instances == [["i686", "test", "hvm"], ["i686", "test", "xen"]]


def _create_transient(name: str, domain_uuid: str) -> None:
    conn = libvirt.open("test:///default")
    try:
        conn.createXML(
            f"<domain type='test'><name>{name}</name><uuid>{domain_uuid}</uuid>"
            "<memory>65536</memory><os><type>hvm</type></os></domain>"
        )
    finally:
        conn.close()


async def test_destroying_a_transient_guest_that_vanishes_when_stopped_succeeds(
    tmp_path: Path,
) -> None:
    # A transient domain is gone as soon as it is powered off: destroy must not then fail
    # to undefine it.
    agent, bus, client = await start_agent(embedded_config(tmp_path))
    guest = instance(str(uuid.uuid4()), name="transient-guest")
    try:
        await asyncio.to_thread(_create_transient, guest.name, guest.uuid)
        destroyed = await client.destroy(HOST, guest)
        assert (destroyed.vm_state, destroyed.power_state) == ("deleted", "pending")
    finally:
        await agent.aclose()
        await bus.aclose()
        left = await asyncio.to_thread(remove_test_domain, guest.uuid)
    assert guest.uuid not in left
