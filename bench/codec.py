"""Codec speed: a realistic `Instance` through `schemas.encode`/`decode` against plain msgpack.

The floor packs and unpacks the same nested data as plain dicts (the same field names and
values, datetimes as msgpack Timestamps) with `msgpack.packb`/`unpackb`: moving those bytes
with no names, versions or validation. The msgspec reference encodes and decodes the same data
into typed `msgspec.Struct`s built from the objects' field tables, checking every UUID, MAC,
datetime, enum and IP form in C: what validated msgpack costs with no versioned objects around
it. The versioned path validates every field on decode. All three run alternately in one
process; prints objects/s for each and the ratios of their costs (target: versioned <= 1.0x
the floor).

    .venv/bin/python bench/codec.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgpack
import msgspec

import schemas
from schemas import ObjectPrimitive, VersionedObject, default_registry, fields
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


_UUID = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
_MAC = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")]
_IP = (
    Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
    | Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
)
_NET = (
    Annotated[int, msgspec.Meta(ge=0, le=(2**32 - 1) << 8 | 0xFF)]
    | Annotated[bytes, msgspec.Meta(min_length=17, max_length=17)]
)


def reference_type(cls: type[VersionedObject], made: dict[str, Any] | None = None) -> Any:
    """A `msgspec.Struct` with `cls`'s fields (wire types, nested objects as nested structs),
    every field optional: what a msgspec user would write for the same data."""
    made = {} if made is None else made
    if cls.OBJ_NAME in made:
        return made[cls.OBJ_NAME]

    def kind(field: fields.Field) -> Any:
        if isinstance(field, fields.ObjectField):
            return reference_type(default_registry.lookup(field.objname), made)
        if isinstance(field, fields.ListOfObjectsField):
            return list[reference_type(default_registry.lookup(field.objname), made)]  # type: ignore[misc]
        if isinstance(field, fields.DictField):
            return dict[str, kind(field.element)]  # type: ignore[misc]
        if isinstance(field, fields.ListField | fields.SetField):
            return list[kind(field.element)]  # type: ignore[misc]
        if isinstance(field, fields.EnumField):
            return Literal[tuple(sorted(field.values))]
        simple: dict[type[fields.Field], Any] = {
            fields.StringField: str,
            fields.IntegerField: int,
            fields.FloatField: float,
            fields.BooleanField: bool,
            fields.UUIDField: _UUID,
            fields.MACAddressField: _MAC,
            fields.DateTimeField: datetime,
            fields.IPAddressField: _IP,
            fields.IPNetworkField: _NET,
        }
        return simple[type(field)]

    specs = []
    for name, field in cls._obj_fields.items():
        wire = kind(field)
        specs.append((name, wire | None if field.nullable else wire, msgspec.UNSET))
    struct = msgspec.defstruct(
        f"{cls.OBJ_NAME}Ref", [(n, t | msgspec.UnsetType, d) for n, t, d in specs]
    )
    made[cls.OBJ_NAME] = struct
    return struct


def best_rates(works: list[Callable[[], object]], seconds: float) -> list[float]:
    """Calls per second of each, best batch of each; batches alternate so that load from
    elsewhere on the machine hits every side alike."""
    batch = 200
    best = [0.0] * len(works)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for index, work in enumerate(works):
            start = time.perf_counter()
            for _ in range(batch):
                work()
            best[index] = max(best[index], batch / (time.perf_counter() - start))
    return best


def main() -> None:
    instance = build_instance()
    plain = as_plain(instance.to_primitive())
    reference = reference_type(Instance)
    typed = msgspec.convert(plain, reference)
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(reference)

    def versioned() -> object:
        return schemas.decode(schemas.encode(instance))

    def floor() -> object:
        packed = msgpack.packb(plain, use_bin_type=True, datetime=True)
        return msgpack.unpackb(packed, timestamp=3)

    def msgspec_typed() -> object:
        return decoder.decode(encoder.encode(typed))

    assert versioned() == instance
    assert floor() == plain
    assert msgspec_typed() == typed
    size_versioned = len(schemas.encode(instance))
    size_plain = len(msgpack.packb(plain, use_bin_type=True, datetime=True))
    size_typed = len(encoder.encode(typed))

    best_rates([versioned, floor, msgspec_typed], 0.5)  # warm up caches and the allocator
    versioned_rate, floor_rate, typed_rate = best_rates([versioned, floor, msgspec_typed], 9.0)
    ratio = floor_rate / versioned_rate
    print(
        f"instance: {size_versioned} bytes versioned, {size_plain} bytes plain, "
        f"{size_typed} bytes msgspec"
    )
    print(f"versioned encode+decode: {versioned_rate:10.0f} objects/s")
    print(f"plain msgpack floor:     {floor_rate:10.0f} objects/s")
    print(f"msgspec typed reference: {typed_rate:10.0f} objects/s")
    print(f"msgspec reference / floor: {floor_rate / typed_rate:.2f}x the cost")
    verdict = "ok" if ratio <= 1.0 else "OVER TARGET"
    print(f"ratio (cost versioned / cost floor): {ratio:.2f}x  (target <= 1.0x: {verdict})")
    print(f"ratio (cost versioned / cost msgspec reference): {typed_rate / versioned_rate:.2f}x")


if __name__ == "__main__":
    main()
