"""What a resize sends, pure: the disks, the config drive, and only the cached images the
destination lacks; the pool and volume definitions libvirt gets. And the image cache taking
in a base another host sent (real qemu-img)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent.virt import qemu_img
from agent.virt.guest.errors import InvalidImage
from agent.virt.images import ImageCache
from agent.virt.migration.disks import LocalFiles
from agent.virt.resize.transfer import (
    Upload,
    incoming_image_name,
    plan_uploads,
    pool_xml,
    volume_xml,
)
from schemas.objects import LiveMigrateDisk
from tests.conftest import missing_component

UUID = "aaaaaaaa-0000-4000-8000-000000000001"
SRC, CACHE = Path("/srv/a") / UUID, Path("/srv/a/_base")


def files(config_drive: bytes | None = None) -> LocalFiles:
    return LocalFiles(
        disks=[
            LiveMigrateDisk(
                file="disk", target="vda", format="qcow2", virtual_size=1, backing_image="base"
            ),
            LiveMigrateDisk(file="disk.eph0", target="vdb", format="qcow2", virtual_size=1),
        ],
        boot_images=["kernel", "initrd"],
        config_drive=config_drive,
    )


def test_every_disk_goes_and_each_cached_image_the_destination_lacks() -> None:
    uploads = plan_uploads(files(b"iso"), SRC, CACHE, {"kernel"})
    assert uploads == [
        Upload(SRC / "disk", "disk"),
        Upload(SRC / "disk.eph0", "disk.eph0"),
        Upload(SRC / "disk.config", "disk.config"),
        Upload(CACHE / "base", "image.base"),
        Upload(CACHE / "initrd", "image.initrd"),
    ]


def test_a_destination_with_every_image_gets_only_the_disks() -> None:
    uploads = plan_uploads(files(), SRC, CACHE, {"base", "kernel", "initrd", "other"})
    assert [u.name for u in uploads] == ["disk", "disk.eph0"]


def test_an_image_id_that_is_not_a_plain_name_never_becomes_a_volume_name() -> None:
    with pytest.raises(InvalidImage):
        incoming_image_name("../etc")


def test_the_pool_and_volumes_are_readable_by_qemu_and_raw() -> None:
    pool = ET.fromstring(pool_xml("p", "/srv/b/x"))
    assert (pool.get("type"), pool.findtext("target/path")) == ("dir", "/srv/b/x")
    assert pool.findtext("target/permissions/mode") == "0755"
    volume = ET.fromstring(volume_xml("disk", 1234))
    assert volume.findtext("capacity") == "1234"
    target = volume.find("target/format")
    assert target is not None and target.get("type") == "raw"


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    if shutil.which("qemu-img") is None:
        missing_component("qemu-img", "apt-get install qemu-utils (make test does)")
    return ImageCache(str(tmp_path / "images"), str(tmp_path / "cache"))


def test_the_cache_takes_in_a_sent_base_it_lacks_and_drops_one_it_has(
    cache: ImageCache, tmp_path: Path
) -> None:
    sent = tmp_path / "image.base"
    qemu_img.run(["create", "-q", "-f", "qcow2", str(sent), "4M"])
    image = cache.adopt("base", UUID, sent)
    assert (image.path, image.format) == (cache.cache_path / "base", "qcow2")
    assert not sent.exists() and cache.references("base") == {UUID}
    again = tmp_path / "again"
    again.write_bytes(b"\0" * 512)
    assert cache.adopt("base", "bbbbbbbb-0000-4000-8000-000000000002", again).format == "qcow2"
    assert not again.exists()


def test_a_sent_base_with_a_backing_file_of_its_own_is_refused(
    cache: ImageCache, tmp_path: Path
) -> None:
    inner = tmp_path / "inner"
    qemu_img.run(["create", "-q", "-f", "qcow2", str(inner), "4M"])
    sent = tmp_path / "image.base"
    qemu_img.create_overlay(sent, inner, "qcow2", None)
    with pytest.raises(InvalidImage, match="backing file of its own"):
        cache.adopt("base", UUID, sent)
    assert not (cache.cache_path / "base").exists()
