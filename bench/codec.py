"""Codec speed: a realistic `Instance` through `schemas.encode`/`decode` against plain msgpack.

The reference packs and unpacks the same nested data as plain dicts (the same field names and
values, datetimes as msgpack Timestamps) with `msgpack.packb`/`unpackb`: the floor for moving
those bytes with no names, versions or validation. The versioned path validates every field
on decode. Prints objects/s for both and the ratio of their costs (target <= 3.0x).

    .venv/bin/python bench/codec.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgpack

import schemas
from schemas import ObjectPrimitive
from schemas.objects import (
    VIF,
    BlockDeviceMapping,
    BlockDeviceMappingList,
    Flavor,
    Instance,
    Network,
    NetworkInfo,
    Subnet,
    VolumeConnection,
    VolumeConnectionData,
)

INSTANCE_UUID = "0b4c3a5e-3f9c-4a57-9d43-1f2a6c2d9e10"


def build_instance() -> Instance:
    """An instance as the agent sees one on spawn: flavor, metadata, 3 disks, 2 NICs."""
    flavor = Flavor(
        flavorid="m1.medium",
        name="m1.medium",
        memory_mb=4096,
        vcpus=2,
        root_gb=40,
        ephemeral_gb=0,
        swap=0,
        extra_specs={"hw:cpu_policy": "shared", "hw_rng:allowed": "True"},
    )
    bdms = BlockDeviceMappingList(
        objects=[
            BlockDeviceMapping(
                uuid="6f1a9f0e-51a2-4bde-9a84-6d7a4e7c2b01",
                instance_uuid=INSTANCE_UUID,
                source_type="image",
                destination_type="local",
                device_type="disk",
                disk_bus="virtio",
                boot_index=0,
                device_name="/dev/vda",
                image_id="3a3c1f4e-8d9b-4f2e-a1c7-5b6d7e8f9a0b",
                delete_on_termination=True,
            ),
            BlockDeviceMapping(
                uuid="6f1a9f0e-51a2-4bde-9a84-6d7a4e7c2b02",
                instance_uuid=INSTANCE_UUID,
                source_type="volume",
                destination_type="volume",
                device_type="disk",
                disk_bus="virtio",
                device_name="/dev/vdb",
                volume_id="a1b2c3d4-0000-4000-8000-000000000002",
                volume_size=100,
                attachment_id="b1b2c3d4-0000-4000-8000-000000000002",
                connection_info=VolumeConnection(
                    driver_volume_type="iscsi",
                    serial="a1b2c3d4-0000-4000-8000-000000000002",
                    data=VolumeConnectionData(
                        volume_id="a1b2c3d4-0000-4000-8000-000000000002",
                        target_portal="192.0.2.10:3260",
                        target_iqn="iqn.2010-10.org.openstack:volume-a1b2c3d4",
                        target_lun=1,
                        auth_method="CHAP",
                    ),
                ),
            ),
            BlockDeviceMapping(
                uuid="6f1a9f0e-51a2-4bde-9a84-6d7a4e7c2b03",
                instance_uuid=INSTANCE_UUID,
                source_type="volume",
                destination_type="volume",
                device_type="disk",
                disk_bus="virtio",
                device_name="/dev/vdc",
                volume_id="a1b2c3d4-0000-4000-8000-000000000003",
                volume_size=20,
                attachment_id="b1b2c3d4-0000-4000-8000-000000000003",
                connection_info=VolumeConnection(
                    driver_volume_type="rbd",
                    serial="a1b2c3d4-0000-4000-8000-000000000003",
                    data=VolumeConnectionData(
                        name="volumes/volume-a1b2c3d4",
                        hosts=["192.0.2.21", "192.0.2.22", "192.0.2.23"],
                        ports=["6789", "6789", "6789"],
                        auth_enabled=True,
                        auth_username="cinder",
                        secret_type="ceph",
                        secret_uuid="c0ffee00-0000-4000-8000-000000000001",
                    ),
                ),
            ),
        ]
    )
    vifs = NetworkInfo(
        objects=[
            VIF(
                id=f"d0d0d0d0-0000-4000-8000-00000000000{n}",
                address=f"fa:16:3e:00:00:0{n}",
                type="ovs",
                model="virtio",
                devname=f"tapd0d0d0d0-0{n}",
                ovs_interfaceid=f"d0d0d0d0-0000-4000-8000-00000000000{n}",
                active=True,
                details={"port_filter": "True", "ovs_hybrid_plug": "False"},
                network=Network(
                    id=f"e0e0e0e0-0000-4000-8000-00000000000{n}",
                    label=f"net{n}",
                    bridge="br-int",
                    mtu=1450,
                    subnets=[
                        Subnet(
                            cidr=f"10.0.{n}.0/24",
                            gateway=f"10.0.{n}.1",
                            dns=["192.0.2.53", "192.0.2.54"],
                            ips=[f"10.0.{n}.17"],
                        )
                    ],
                ),
            )
            for n in (1, 2)
        ]
    )
    now = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    instance = Instance(
        uuid=INSTANCE_UUID,
        name="instance-0000002a",
        hostname="web-1",
        display_name="web-1",
        user_id="6d5a4f3e2b1c4d5e8f9a0b1c2d3e4f50",
        project_id="1a2b3c4d5e6f40718293a4b5c6d7e8f9",
        host="compute-1",
        node="compute-1.example.org",
        launched_on="compute-1",
        availability_zone="nova",
        vm_state="active",
        task_state=None,
        power_state="running",
        flavor=flavor,
        memory_mb=4096,
        vcpus=2,
        root_gb=40,
        ephemeral_gb=0,
        image_ref="3a3c1f4e-8d9b-4f2e-a1c7-5b6d7e8f9a0b",
        root_device_name="/dev/vda",
        config_drive=False,
        metadata={f"key{n}": f"value number {n}" for n in range(10)},
        system_metadata={"image_os_distro": "debian", "image_hw_disk_bus": "virtio"},
        block_device_mappings=bdms,
        network_info=vifs,
        created_at=now,
        updated_at=now,
        launched_at=now,
    )
    # What travels is usually an object as loaded, with nothing pending.
    instance.obj_reset_changes(recursive=True)
    return instance


def as_plain(value: Any) -> Any:
    """The same data as nested plain dicts (objects -> {field: wire value})."""
    if isinstance(value, ObjectPrimitive):
        return {name: as_plain(v) for name, v in value.data.items()}
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    return value


def best_rates(
    first: Callable[[], object], second: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """Calls per second of each, best batch of each; batches alternate so that load from
    elsewhere on the machine hits both sides alike."""
    batch = 200
    best_first = best_second = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for work, is_first in ((first, True), (second, False)):
            start = time.perf_counter()
            for _ in range(batch):
                work()
            speed = batch / (time.perf_counter() - start)
            if is_first:
                best_first = max(best_first, speed)
            else:
                best_second = max(best_second, speed)
    return best_first, best_second


def main() -> None:
    instance = build_instance()
    plain = as_plain(instance.to_primitive())

    def versioned() -> object:
        return schemas.decode(schemas.encode(instance))

    def floor() -> object:
        packed = msgpack.packb(plain, use_bin_type=True, datetime=True)
        return msgpack.unpackb(packed, timestamp=3)

    assert versioned() == instance
    assert floor() == plain
    size_versioned = len(schemas.encode(instance))
    size_plain = len(msgpack.packb(plain, use_bin_type=True, datetime=True))

    best_rates(versioned, floor, 0.5)  # warm up caches and the allocator
    versioned_rate, floor_rate = best_rates(versioned, floor, 8.0)
    ratio = floor_rate / versioned_rate
    print(f"instance: {size_versioned} bytes versioned, {size_plain} bytes plain")
    print(f"versioned encode+decode: {versioned_rate:10.0f} objects/s")
    print(f"plain msgpack floor:     {floor_rate:10.0f} objects/s")
    verdict = "ok" if ratio <= 3.0 else "OVER TARGET"
    print(f"ratio (cost versioned / cost floor): {ratio:.2f}x  (target <= 3.0x: {verdict})")


if __name__ == "__main__":
    main()
