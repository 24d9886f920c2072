"""The resource tracker on a real libvirtd + QEMU host: what it saves agrees with what the
hypervisor reports, and a real guest's claim comes and goes with it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from agent.config import ResourcesSection
from schemas.objects import ComputeNode
from schemas.remotable import use_indirection
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    config_for,
    embedded_agent,
    kernel_image,
    make_guest_files,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU

RESERVED_MB = 256
# What the tracker takes from the hypervisor's report as it is.
REPORTED_FIELDS = (
    "uuid",
    "host",
    "hypervisor_hostname",
    "hypervisor_type",
    "hypervisor_version",
    "host_ip",
    "cpu_info",
    "vcpus",
    "memory_mb",
    "local_gb",
    "supported_instances",
)


def values(node: ComputeNode) -> dict[str, Any]:
    """The node's field values, whatever its change marks."""
    clone = node.obj_clone()
    clone.obj_reset_changes(recursive=True)
    return clone.to_primitive().data


async def test_the_saved_node_agrees_with_get_available_resource_through_a_guests_life(
    test_hosts: tuple[LocalHost, ...],
    qemu_tmp_path: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> None:
    root = await asyncio.to_thread(make_guest_files, qemu_tmp_path, guest_image)
    # Every PCI device assignable: the tracker's pools are then the hypervisor's, all free.
    resources = ResourcesSection(reserved_host_memory_mb=RESERVED_MB, pci_device_spec=("*:*",))
    config = dataclasses.replace(config_for(test_hosts[0], root), resources=resources)
    async with embedded_agent(config) as (agent, client):

        async def saved(uuid: str) -> ComputeNode:
            with use_indirection(agent.objects):
                return await ComputeNode.get_by_uuid(None, uuid)

        nodes = await client.get_available_nodes(HOST)
        reported = await client.get_available_resource(HOST, nodes[0])
        before = await client.update_available_resource(HOST)
        assert values(await saved(reported.uuid)) == values(before)
        for name in REPORTED_FIELDS:
            assert getattr(before, name) == getattr(reported, name), name
        assert before.pci_device_pools == reported.pci_device_pools
        assert before.memory_mb_used >= RESERVED_MB

        me = tracked_instance(domain_janitor)
        await client.spawn(HOST, me, kernel_image(guest_image))
        during = await client.get_compute_node(HOST)
        assert during.vcpus_used == before.vcpus_used + me.flavor.vcpus
        assert during.memory_mb_used == before.memory_mb_used + me.flavor.memory_mb
        assert during.running_vms == before.running_vms + 1
        assert during.free_ram_mb == during.memory_mb - during.memory_mb_used
        # The audit finds the guest's domain carrying its record: nothing to correct.
        audited = await client.update_available_resource(HOST)
        assert values(audited) == values(during)
        assert values(await saved(reported.uuid)) == values(during)
        # libvirt counts the guest's vCPU among the running domains' too.
        assert (await client.get_available_resource(HOST, nodes[0])).vcpus_used >= 1

        await client.destroy(HOST, me)
        after = await client.get_compute_node(HOST)
        assert (after.vcpus_used, after.memory_mb_used, after.running_vms) == (
            before.vcpus_used,
            before.memory_mb_used,
            before.running_vms,
        )
        assert values(await saved(reported.uuid)) == values(after)
