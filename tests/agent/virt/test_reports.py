"""Host facts and domain info as versioned objects: ComputeNode and InstanceInfo."""

from __future__ import annotations

import json
from dataclasses import replace

from agent.virt.domains import DomainInfo
from agent.virt.host_facts import (
    PCI_TYPE,
    VF_TYPE,
    CpuInfo,
    DiskUsage,
    GuestKind,
    HostFacts,
    PciPool,
)
from agent.virt.reports import compute_node, instance_info, node_uuid
from schemas.objects.enums import PowerState

GIB = 1024**3

FACTS = HostFacts(
    host_uuid="5b0e2d7c-1111-2222-3333-444455556666",
    hostname="hv-7",
    hypervisor_type="QEMU",
    hypervisor_version=7_002_022,
    libvirt_version=9_000_000,
    vcpus=16,
    vcpus_used=5,
    running_vms=3,
    memory_mb=65536,
    memory_mb_used=10240,
    disk=DiskUsage(total=500 * GIB + 7, free=300 * GIB, used=200 * GIB, available_least=250 * GIB),
    cpu=CpuInfo("x86_64", "Intel", "Broadwell", 2, 1, 4, 2, ("abm", "vme")),
    pci_devices=(),
    pci_pools=(
        PciPool("8086", "154c", 1, VF_TYPE, 4),
        PciPool("1af4", "1041", None, PCI_TYPE, 1),
    ),
    guest_kinds=(GuestKind("x86_64", "qemu", "hvm"), GuestKind("x86_64", "kvm", "hvm")),
)


def test_compute_node_carries_the_facts_in_novas_units() -> None:
    node = compute_node(FACTS, host="compute-7", host_ip="192.0.2.7")

    assert (node.uuid, node.host, node.hypervisor_hostname) == (
        FACTS.host_uuid,
        "compute-7",
        "hv-7",
    )
    assert (node.hypervisor_type, node.hypervisor_version) == ("QEMU", 7_002_022)
    assert str(node.host_ip) == "192.0.2.7"
    assert (node.vcpus, node.vcpus_used, node.running_vms) == (16, 5, 3)
    assert (node.memory_mb, node.memory_mb_used, node.free_ram_mb) == (65536, 10240, 55296)
    assert (node.local_gb, node.local_gb_used, node.free_disk_gb) == (500, 200, 300)
    assert node.disk_available_least == 250
    assert json.loads(node.cpu_info) == {
        "arch": "x86_64",
        "model": "Broadwell",
        "vendor": "Intel",
        "topology": {"sockets": 2, "dies": 1, "cores": 4, "threads": 2},
        "features": ["abm", "vme"],
    }
    assert node.pci_device_pools is not None
    assert [
        (p.vendor_id, p.product_id, p.numa_node, p.tags, p.count)
        for p in node.pci_device_pools.objects
    ] == [
        ("8086", "154c", 1, {"dev_type": VF_TYPE}, 4),
        ("1af4", "1041", None, {"dev_type": PCI_TYPE}, 1),
    ]
    assert node.supported_instances == [["x86_64", "qemu", "hvm"], ["x86_64", "kvm", "hvm"]]


def test_a_host_without_a_libvirt_uuid_gets_a_stable_one_from_its_names() -> None:
    facts = replace(FACTS, host_uuid=None)

    assert node_uuid(facts, "compute-7") == node_uuid(facts, "compute-7")
    assert node_uuid(facts, "compute-7") != node_uuid(facts, "compute-8")


def test_instance_info_maps_the_state_and_keeps_the_counters() -> None:
    info = instance_info(DomainInfo("u", 1, 2097152, 1048576, 2, 123456789, 7))

    assert info.state == PowerState.RUNNING
    assert (info.internal_id, info.max_mem_kb, info.mem_kb, info.num_cpu, info.cpu_time_ns) == (
        "7",
        2097152,
        1048576,
        2,
        123456789,
    )


def test_instance_info_of_a_domain_in_a_state_nobody_knows_is_unknown() -> None:
    info = instance_info(DomainInfo("u", 42, 0, 0, 1, 0, None))

    assert info.state == PowerState.PENDING
    assert info.internal_id is None
