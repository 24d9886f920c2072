"""A block migration's files: the disks read from a domain, made on the destination, and the
paths the destination's domain gets."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from actors.migration.target import PathMap
from agent.virt import qemu_img
from agent.virt.guest.disks import InstancePaths
from agent.virt.guest.errors import InvalidImage
from agent.virt.images import ImageCache
from agent.virt.migration.disks import destination_xml, make_incoming_disks, read_local_disks
from schemas.objects.migrate_data import LiveMigrateDisk

UUID = "6f6a3f5e-1b2c-4d3e-8f90-0a1b2c3d4e5f"
MIB = 1024 * 1024

PATHS = PathMap(
    source_dir=f"/src/instances/{UUID}",
    dest_dir=f"/dst/instances/{UUID}",
    source_cache="/src/instances/_base",
    dest_cache="/dst/cache",
)


def domain(directory: str, cache: str, volume: str = "/dev/disk/by-path/ip-lun-1") -> str:
    return f"""<domain type="qemu"><name>i</name>
  <os><type>hvm</type><kernel>{cache}/kernel</kernel><initrd>{cache}/ramdisk</initrd></os>
  <devices>
    <disk type="file" device="disk"><source file="{directory}/disk"/><target dev="vda"/></disk>
    <disk type="block" device="disk"><source dev="{volume}"/><target dev="vdb"/></disk>
    <disk type="file" device="disk"><source file="{directory}/disk.config"/>
      <target dev="vdc"/><readonly/></disk>
    <serial type="pty"><log file="{directory}/console.log" append="off"/></serial>
  </devices></domain>"""


def test_the_destination_xml_names_the_destination_paths_and_nothing_else() -> None:
    moved = ET.fromstring(destination_xml(domain(PATHS.source_dir, PATHS.source_cache), PATHS))
    assert moved.findtext("os/kernel") == "/dst/cache/kernel"
    assert moved.findtext("os/initrd") == "/dst/cache/ramdisk"
    sources = [s.get("file") or s.get("dev") for s in moved.iterfind("devices/disk/source")]
    assert sources == [
        f"{PATHS.dest_dir}/disk",
        "/dev/disk/by-path/ip-lun-1",
        f"{PATHS.dest_dir}/disk.config",
    ]
    assert moved.find("devices/serial/log").get("file") == f"{PATHS.dest_dir}/console.log"


def test_a_path_that_only_starts_like_the_directory_is_not_moved() -> None:
    assert PATHS.moved(f"{PATHS.source_dir}-other/disk") == f"{PATHS.source_dir}-other/disk"
    assert PATHS.moved("/src/instances/_base2/kernel") == "/src/instances/_base2/kernel"


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    images = tmp_path / "images"
    images.mkdir()
    qemu_img.run(["create", "-q", "-f", "qcow2", str(images / "base"), "8M"])
    (images / "kernel").write_bytes(b"k" * 1024)
    return ImageCache(str(images), str(tmp_path / "instances" / "_base"))


def test_the_source_reads_its_local_disks_and_boot_images(
    tmp_path: Path, cache: ImageCache
) -> None:
    paths = InstancePaths(str(tmp_path / "instances"), UUID)
    paths.directory.mkdir(parents=True)
    base = cache.acquire("base", UUID)
    cache.acquire("kernel", UUID)
    qemu_img.create_overlay(paths.disk("disk"), base.path, base.format, 1024)
    paths.disk("disk.config").write_bytes(b"iso")
    xml = domain(str(paths.directory), str(cache.cache_path))
    found = read_local_disks(xml, paths, cache)
    assert found.config_drive == b"iso"  # read only: carried whole
    assert found.disks == [
        LiveMigrateDisk(
            file="disk", target="vda", format="qcow2", virtual_size=1024 * MIB, backing_image="base"
        )
    ]
    # The kernel boot's images; the ramdisk named in the XML is a cached path too.
    assert found.boot_images == ["kernel", "ramdisk"]


def test_a_disk_backed_by_a_file_outside_the_cache_is_refused(
    tmp_path: Path, cache: ImageCache
) -> None:
    paths = InstancePaths(str(tmp_path / "instances"), UUID)
    paths.directory.mkdir(parents=True)
    foreign = tmp_path / "foreign.qcow2"
    qemu_img.run(["create", "-q", "-f", "qcow2", str(foreign), "8M"])
    qemu_img.create_overlay(paths.disk("disk"), foreign, "qcow2", None)
    with pytest.raises(ValueError, match="not a cached image"):
        read_local_disks(domain(str(paths.directory), str(cache.cache_path)), paths, cache)


def test_the_destination_makes_empty_disks_of_the_same_shape(
    tmp_path: Path, cache: ImageCache
) -> None:
    paths = InstancePaths(str(tmp_path / "dest"), UUID)
    disks = [
        LiveMigrateDisk(
            file="disk", target="vda", format="qcow2", virtual_size=64 * MIB, backing_image="base"
        ),
        LiveMigrateDisk(file="disk.eph0", target="vdb", format="qcow2", virtual_size=32 * MIB),
        LiveMigrateDisk(file="disk.raw", target="vdc", format="raw", virtual_size=4 * MIB),
    ]
    make_incoming_disks(paths, cache, disks, ["kernel"], b"iso")
    assert paths.disk("disk.config").read_bytes() == b"iso"
    root = qemu_img.info(paths.disk("disk"))
    assert (root.virtual_size, root.backing_file) == (64 * MIB, str(cache.cache_path / "base"))
    assert qemu_img.info(paths.disk("disk.eph0")).virtual_size == 32 * MIB
    assert paths.disk("disk.raw").stat().st_size == 4 * MIB
    assert cache.references("base") == {UUID} and cache.references("kernel") == {UUID}


def test_a_bad_disk_leaves_nothing_made(tmp_path: Path, cache: ImageCache) -> None:
    paths = InstancePaths(str(tmp_path / "dest"), UUID)
    disks = [
        LiveMigrateDisk(
            file="disk", target="vda", format="qcow2", virtual_size=MIB, backing_image="base"
        ),
        LiveMigrateDisk(file="../escape", target="vdb", format="qcow2", virtual_size=MIB),
    ]
    with pytest.raises(InvalidImage):
        make_incoming_disks(paths, cache, disks, [])
    assert not paths.directory.exists()
    assert cache.references("base") == set()
