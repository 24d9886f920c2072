"""What the libvirt side reports, as versioned objects: pure conversions, no libvirt calls.

`compute_node` follows nova's libvirt `get_available_resource`: sizes from the host facts,
disk in whole GiB rounded down, `cpu_info` as JSON text, PCI pools tagged with their device
type. The node's uuid is libvirt's host uuid, stable across agent restarts; a driver that
reports none (libvirt's test driver) gets one derived from the host and node names.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from typing import Any

from actors.instance import UNKNOWN_POWER_STATE
from agent.virt.domains import BlockCounters, DomainInfo, InterfaceCounters
from agent.virt.host_facts import CpuInfo, HostFacts, PciPool
from agent.virt.power_state import power_state_of
from schemas.objects.compute_node import ComputeNode
from schemas.objects.pci import PciDevicePool, PciDevicePoolList
from schemas.objects.virt import InstanceInfo

GIB = 1024**3
_NODE_NAMESPACE = uuid_module.UUID("3b1f0c52-2a7e-4f64-8d0b-5c9e7a1d2f40")


def cpu_info_json(cpu: CpuInfo) -> str:
    """The host CPU as nova's `cpu_info` JSON text (keys sorted, so equal CPUs compare equal)."""
    return json.dumps(
        {
            "arch": cpu.arch,
            "model": cpu.model,
            "vendor": cpu.vendor,
            "topology": {
                "sockets": cpu.sockets,
                "dies": cpu.dies,
                "cores": cpu.cores,
                "threads": cpu.threads,
            },
            "features": list(cpu.features),
        },
        sort_keys=True,
    )


def pci_pool_list(pools: tuple[PciPool, ...]) -> PciDevicePoolList:
    return PciDevicePoolList(
        objects=[
            PciDevicePool(
                vendor_id=pool.vendor_id,
                product_id=pool.product_id,
                numa_node=pool.numa_node,
                tags={"dev_type": pool.dev_type},
                count=pool.count,
            )
            for pool in pools
        ]
    )


def node_uuid(facts: HostFacts, host: str) -> str:
    if facts.host_uuid is not None:
        return facts.host_uuid
    return str(uuid_module.uuid5(_NODE_NAMESPACE, f"{host}/{facts.hostname}"))


def compute_node(facts: HostFacts, *, host: str, host_ip: str | None) -> ComputeNode:
    """The `ComputeNode` of `facts` for the service on `host`."""
    return ComputeNode(
        uuid=node_uuid(facts, host),
        host=host,
        hypervisor_hostname=facts.hostname,
        hypervisor_type=facts.hypervisor_type,
        hypervisor_version=facts.hypervisor_version,
        host_ip=host_ip,
        cpu_info=cpu_info_json(facts.cpu),
        vcpus=facts.vcpus,
        memory_mb=facts.memory_mb,
        local_gb=facts.disk.total // GIB,
        vcpus_used=facts.vcpus_used,
        memory_mb_used=facts.memory_mb_used,
        local_gb_used=facts.disk.used // GIB,
        free_ram_mb=facts.memory_mb - facts.memory_mb_used,
        free_disk_gb=facts.disk.free // GIB,
        disk_available_least=facts.disk.available_least // GIB,
        running_vms=facts.running_vms,
        pci_device_pools=pci_pool_list(facts.pci_pools),
        supported_instances=[[k.arch, k.hv_type, k.vm_mode] for k in facts.guest_kinds],
    )


def instance_info(info: DomainInfo) -> InstanceInfo:
    state = power_state_of(info.state)
    return InstanceInfo(
        state=UNKNOWN_POWER_STATE if state is None else state,
        internal_id=None if info.domain_id is None else str(info.domain_id),
        max_mem_kb=info.max_mem_kb,
        mem_kb=info.mem_kb,
        num_cpu=info.vcpus,
        cpu_time_ns=info.cpu_time_ns,
    )


def bw_counters(counters: list[InterfaceCounters]) -> list[dict[str, Any]]:
    """nova's `get_all_bw_counters` rows: uuid, interface, bytes in and out."""
    return [
        {"uuid": c.uuid, "interface": c.interface, "bw_in": c.rx_bytes, "bw_out": c.tx_bytes}
        for c in counters
    ]


def volume_usage(counters: list[BlockCounters]) -> list[dict[str, Any]]:
    """nova's `get_all_volume_usage` rows, per guest disk: uuid, device, path and counters."""
    return [
        {
            "instance": c.uuid,
            "device": c.device,
            "path": c.path,
            "rd_req": c.rd_req,
            "rd_bytes": c.rd_bytes,
            "wr_req": c.wr_req,
            "wr_bytes": c.wr_bytes,
        }
        for c in counters
    ]
