"""Sample objects for the schemas tests: small, valid, and touching every field type."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.objects import (
    VIF,
    BlockDeviceMapping,
    BlockDeviceMappingList,
    ComputeNode,
    Flavor,
    Instance,
    Network,
    NetworkInfo,
    PciDevicePool,
    PciDevicePoolList,
    Subnet,
    VolumeConnection,
    VolumeConnectionData,
)

INSTANCE_UUID = "7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f"
NODE_UUID = "3c9e1d2f-4b5a-4c6d-8e7f-901a2b3c4d5e"
WHEN = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)


def flavor(**overrides: object) -> Flavor:
    values: dict[str, object] = {
        "flavorid": "m1.small",
        "name": "m1.small",
        "memory_mb": 2048,
        "vcpus": 1,
        "root_gb": 20,
        "extra_specs": {"hw:cpu_policy": "shared"},
        "description": "general purpose",
    }
    values.update(overrides)
    return Flavor(**values)


def network_info() -> NetworkInfo:
    return NetworkInfo(
        objects=[
            VIF(
                id="d0d0d0d0-0000-4000-8000-000000000001",
                address="fa:16:3e:00:00:01",
                type="ovs",
                model="virtio",
                active=True,
                network=Network(
                    id="e0e0e0e0-0000-4000-8000-000000000001",
                    label="private",
                    bridge="br-int",
                    mtu=1450,
                    subnets=[
                        Subnet(
                            cidr="10.0.0.0/24",
                            gateway="10.0.0.1",
                            dns=["192.0.2.53"],
                            ips=["10.0.0.5"],
                        ),
                        Subnet(cidr="2001:db8::/64", gateway="2001:db8::1", ips=["2001:db8::5"]),
                    ],
                ),
            )
        ]
    )


def bdms() -> BlockDeviceMappingList:
    return BlockDeviceMappingList(
        objects=[
            BlockDeviceMapping(
                uuid="6f1a9f0e-51a2-4bde-9a84-6d7a4e7c2b01",
                instance_uuid=INSTANCE_UUID,
                source_type="image",
                destination_type="local",
                boot_index=0,
                device_name="/dev/vda",
            ),
            BlockDeviceMapping(
                uuid="6f1a9f0e-51a2-4bde-9a84-6d7a4e7c2b02",
                instance_uuid=INSTANCE_UUID,
                source_type="volume",
                destination_type="volume",
                volume_id="vol-2",
                connection_info=VolumeConnection(
                    driver_volume_type="iscsi",
                    data=VolumeConnectionData(
                        target_portal="192.0.2.10:3260",
                        target_iqn="iqn.2010-10.org.openstack:volume-2",
                        target_lun=1,
                    ),
                ),
            ),
        ]
    )


def instance(**overrides: object) -> Instance:
    values: dict[str, object] = {
        "uuid": INSTANCE_UUID,
        "name": "instance-00000001",
        "host": "compute-1",
        "vm_state": "active",
        "power_state": "running",
        "flavor": flavor(),
        "memory_mb": 2048,
        "vcpus": 1,
        "root_gb": 20,
        "metadata": {"role": "web"},
        "launched_at": WHEN,
        "hidden": False,
        "block_device_mappings": bdms(),
        "network_info": network_info(),
    }
    values.update(overrides)
    inst = Instance(**values)
    inst.obj_reset_changes(recursive=True)
    return inst


def compute_node(**overrides: object) -> ComputeNode:
    values: dict[str, object] = {
        "uuid": NODE_UUID,
        "host": "compute-1",
        "hypervisor_hostname": "compute-1.example.org",
        "hypervisor_type": "QEMU",
        "hypervisor_version": 8002000,
        "vcpus": 16,
        "memory_mb": 65536,
        "local_gb": 1000,
        "pci_device_pools": PciDevicePoolList(
            objects=[PciDevicePool(vendor_id="8086", product_id="154d", count=4)]
        ),
        "supported_instances": [["x86_64", "kvm", "hvm"], ["x86_64", "qemu", "hvm"]],
    }
    values.update(overrides)
    node = ComputeNode(**values)
    node.obj_reset_changes(recursive=True)
    return node
