"""Objects the Guest layer's tests build guests from: small, valid, overridable."""

from __future__ import annotations

from pathlib import Path

from agent.virt.guest.settings import GuestSettings
from schemas.objects import (
    VIF,
    Flavor,
    ImageMeta,
    ImageMetaProps,
    Instance,
    Network,
    VolumeConnection,
    VolumeConnectionData,
)

INSTANCE_UUID = "5b1f0c2e-8d4a-4e6b-9c7d-1a2b3c4d5e6f"
IMAGE_ID = "0c3e5a7b-9d1f-4a2b-8c4d-6e8f0a1b2c3d"


def flavor(**overrides: object) -> Flavor:
    values: dict[str, object] = {
        "flavorid": "f-tiny",
        "name": "tiny",
        "memory_mb": 128,
        "vcpus": 1,
        "root_gb": 0,
    }
    values.update(overrides)
    return Flavor(**values)


def instance(**overrides: object) -> Instance:
    the_flavor = overrides.pop("flavor", None) or flavor()
    assert isinstance(the_flavor, Flavor)
    values: dict[str, object] = {
        "uuid": INSTANCE_UUID,
        "name": "instance-0001",
        "display_name": "web 1",
        "user_id": "user-1",
        "project_id": "project-1",
        "vm_state": "building",
        "flavor": the_flavor,
        "memory_mb": the_flavor.memory_mb,
        "vcpus": the_flavor.vcpus,
        "root_gb": the_flavor.root_gb,
        "ephemeral_gb": the_flavor.ephemeral_gb,
        "image_ref": IMAGE_ID,
    }
    values.update(overrides)
    return Instance(**values)


def image_meta(**props: object) -> ImageMeta:
    return ImageMeta(id=IMAGE_ID, name="busybox", properties=ImageMetaProps(**props))


def settings(root: Path, **overrides: object) -> GuestSettings:
    values: dict[str, object] = {
        "instances_path": str(root / "instances"),
        "images_path": str(root / "images"),
        "image_cache_path": str(root / "instances" / "_base"),
        "snapshots_path": str(root / "snapshots"),
        "host": "compute-1",
        "storage_ip": "192.0.2.10",
        "virt_type": "qemu",
        "cpu_mode": "none",
    }
    values.update(overrides)
    return GuestSettings(**values)  # type: ignore[arg-type]


def connection(
    driver_volume_type: str, serial: str | None = None, **data: object
) -> VolumeConnection:
    return VolumeConnection(
        driver_volume_type=driver_volume_type, data=VolumeConnectionData(**data), serial=serial
    )


def vif(vif_type: str = "bridge", bridge: str | None = "br0", **overrides: object) -> VIF:
    values: dict[str, object] = {
        "id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "address": "fa:16:3e:11:22:33",
        "type": vif_type,
        "network": Network(
            id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", label="private", bridge=bridge
        ),
    }
    values.update(overrides)
    return VIF(**values)
