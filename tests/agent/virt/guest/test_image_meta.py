"""ImageMeta 1.1: the direct-kernel-boot properties, back-levelled both ways."""

from __future__ import annotations

from schemas import ObjectPrimitive, decode, encode
from schemas.objects.image import ImageMeta, ImageMetaProps


def kernel_boot_image() -> ImageMeta:
    return ImageMeta(
        id="1d8b1f5e-3d3c-4e54-9d7a-0f4d6f1f8a01",
        name="busybox",
        disk_format="qcow2",
        properties=ImageMetaProps(
            kernel_id="kernel-1", ramdisk_id="ramdisk-1", os_command_line="console=ttyS0"
        ),
    )


def test_image_meta_1_0_drops_the_kernel_boot_properties() -> None:
    primitive = kernel_boot_image().to_primitive(target_version="1.0")
    props = primitive.data["properties"]
    assert isinstance(props, ObjectPrimitive)
    assert props.version == "1.0"
    assert not {"kernel_id", "ramdisk_id", "os_command_line"} & set(props.data)


def test_image_meta_1_1_carries_the_kernel_boot_properties_through_the_codec() -> None:
    received = decode(encode(kernel_boot_image()))
    assert isinstance(received, ImageMeta)
    assert received.properties.kernel_id == "kernel-1"
    assert received.properties.ramdisk_id == "ramdisk-1"
    assert received.properties.os_command_line == "console=ttyS0"


def test_an_image_meta_1_0_primitive_is_read_with_the_properties_unset() -> None:
    primitive = kernel_boot_image().to_primitive(target_version="1.0")
    rebuilt = ImageMeta.from_primitive(primitive)
    assert not rebuilt.properties.obj_attr_is_set("kernel_id")
    assert rebuilt.properties.kernel_id is None
