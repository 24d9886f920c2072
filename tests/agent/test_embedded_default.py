"""The embedded default (no broker, libvirt's test driver) does every operation its driver can
do, over the bus as a control plane calls it: clean power off, soft reboot and soft delete;
the host's address and the volume connector's; the instance kinds the host can run."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.virt.guest.disks import SPAWNING_MARKER
from agent.virt.guest.errors import InstanceExists
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.embedded import (
    TEST_URI,
    EmbeddedGuest,
    domain_removed,
    embedded_agent,
    embedded_config,
    embedded_guest,
    make_root_image,
)
from tests.conftest import ON_SESSION_LOOP

HOST = "compute-embedded"

pytestmark = ON_SESSION_LOOP


@pytest_asyncio.fixture(loop_scope="session")
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedGuest]:
    """An agent on the embedded default, with a running guest built from a real image."""
    async with embedded_guest(tmp_path, HOST, image_meta()) as running:
        assert (running.spawned.vm_state, running.spawned.power_state) == ("active", "running")
        yield running


# --- power: the test driver refuses the ACPI flag, so a plain shutdown request is sent ------


async def test_power_off_with_its_defaults_shuts_the_guest_down(embedded: EmbeddedGuest) -> None:
    stopped = await embedded.client.power_off(HOST, embedded.guest)

    assert (stopped.vm_state, stopped.power_state) == ("stopped", "shutdown")
    assert (await embedded.client.get_info(HOST, embedded.guest)).state == "shutdown"


async def test_a_soft_reboot_leaves_the_guest_running(embedded: EmbeddedGuest) -> None:
    rebooted = await embedded.client.reboot(HOST, embedded.guest, "SOFT")

    assert (rebooted.vm_state, rebooted.power_state, rebooted.task_state) == (
        "active",
        "running",
        None,
    )


async def test_soft_delete_stops_the_guest_and_restore_starts_it(embedded: EmbeddedGuest) -> None:
    deleted = await embedded.client.soft_delete(HOST, embedded.guest)
    assert (deleted.vm_state, deleted.power_state) == ("soft-delete", "shutdown")

    restored = await embedded.client.restore(HOST, embedded.guest)
    assert (restored.vm_state, restored.power_state) == ("active", "running")


# --- addresses ----------------------------------------------------------------------------


async def test_the_default_configuration_reports_a_host_address_to_the_host_and_connector(
    embedded: EmbeddedGuest,
) -> None:
    host_ip = await embedded.client.get_host_ip_addr(HOST)
    connector = await embedded.client.get_volume_connector(HOST, embedded.guest)

    assert host_ip is not None
    assert ipaddress.ip_address(host_ip)
    assert str(connector.ip) == host_ip == embedded.config.agent.host_ip


async def test_storage_ip_changes_only_the_volume_connectors_address(tmp_path: Path) -> None:
    config = embedded_config(tmp_path, HOST, host_ip="192.0.2.10", storage_ip="198.51.100.7")
    async with embedded_agent(config) as (_agent, client):
        guest = instance(str(uuid.uuid4()))
        connector = await client.get_volume_connector(HOST, guest)
        host_ip = await client.get_host_ip_addr(HOST)
        node = await client.get_available_resource(HOST, "")

    assert str(connector.ip) == "198.51.100.7"
    assert host_ip == "192.0.2.10"
    assert str(node.host_ip) == "192.0.2.10"


# --- what the host can run ----------------------------------------------------------------


async def test_the_compute_node_lists_the_test_drivers_guest_kinds(embedded: EmbeddedGuest) -> None:
    nodes = await embedded.client.get_available_nodes(HOST)
    node = await embedded.client.get_available_resource(HOST, nodes[0])

    assert node.supported_instances == [["i686", "test", "hvm"], ["i686", "test", "xen"]]


def _create_transient(name: str, domain_uuid: str) -> None:
    conn = libvirt.open(TEST_URI)
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
    guest = instance(str(uuid.uuid4()), name="transient-guest")
    config = embedded_config(tmp_path, HOST)
    async with domain_removed(guest.uuid), embedded_agent(config) as (_agent, client):
        await asyncio.to_thread(_create_transient, guest.name, guest.uuid)
        destroyed = await client.destroy(HOST, guest)
        assert (destroyed.vm_state, destroyed.power_state) == ("deleted", "pending")


# --- a spawn interrupted by a crash --------------------------------------------------------


async def test_what_an_interrupted_spawn_left_is_removed_and_a_foreign_directory_is_not(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    left, foreign = instance(str(uuid.uuid4())), instance(str(uuid.uuid4()))
    left_dir = tmp_path / "instances" / left.uuid
    left_dir.mkdir()
    (left_dir / SPAWNING_MARKER).write_text("4242\n")  # an agent killed mid-spawn
    (left_dir / "disk.part").write_bytes(b"half an overlay")
    foreign_dir = tmp_path / "instances" / foreign.uuid
    foreign_dir.mkdir()  # e.g. a guest on shared storage running elsewhere
    (foreign_dir / "disk").write_bytes(b"someone's disk")
    async with (
        domain_removed(left.uuid),
        domain_removed(foreign.uuid),
        embedded_agent(config) as (_agent, client),
    ):
        spawned = await client.spawn(HOST, left, image_meta())
        assert (spawned.vm_state, spawned.power_state) == ("active", "running")
        assert not (left_dir / SPAWNING_MARKER).exists()
        assert not (left_dir / "disk.part").exists()
        with pytest.raises(InstanceExists, match="exists"):
            await client.spawn(HOST, foreign, image_meta())
        assert (foreign_dir / "disk").read_bytes() == b"someone's disk"
        await client.destroy(HOST, left)
