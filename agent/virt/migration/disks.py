"""A block migration's files: what the source has, what the destination makes first, and
the domain XML the destination receives.

libvirt's incremental copy (`VIR_MIGRATE_NON_SHARED_INC`) streams only the top layer of each
local disk into a file the destination already has, of the same shape: an overlay on the same
base image, which the destination takes from its own image cache (or a blank qcow2 of the same
size). So the source reads its disks (`read_local_disks`), the destination makes them
(`make_incoming_disks`), and, when the two hosts keep instances or cached images under other
paths, the source rewrites the paths of the XML it sends (`destination_xml`).

Every function blocks (qemu-img, file copies): run them in the blocking executor.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from actors.migration.target import PathMap, under
from agent.virt import qemu_img
from agent.virt.guest.config_drive import FILE_NAME as CONFIG_DRIVE_FILE
from agent.virt.guest.disks import InstancePaths
from agent.virt.images import ImageCache, check_id
from agent.virt.undo import Undo
from schemas.objects.migrate_data import LiveMigrateDisk

MIB = 1024 * 1024


@dataclass(slots=True)
class LocalFiles:
    """The instance's local disks and the cached images its kernel boot reads; its config
    drive's image (read only: libvirt does not copy it, so it travels whole)."""

    disks: list[LiveMigrateDisk] = field(default_factory=list)
    boot_images: list[str] = field(default_factory=list)
    config_drive: bytes | None = None


def read_local_disks(xml: str, paths: InstancePaths, cache: ImageCache) -> LocalFiles:
    """The disks of the domain `xml` whose files are in the instance directory (volumes are
    not copied) and the cached images the kernel boot reads."""
    root = ET.fromstring(xml)
    found = LocalFiles()
    directory = str(paths.directory)
    cache_dir = str(cache.cache_path)
    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        target = disk.find("target")
        if disk.get("device", "disk") != "disk" or source is None or target is None:
            continue
        path = source.get("file")
        if path is None or not under(path, directory):
            continue
        if disk.find("readonly") is not None:
            if Path(path).name != CONFIG_DRIVE_FILE:
                raise ValueError(f"{path} is a read-only disk a block migration cannot copy")
            found.config_drive = Path(path).read_bytes()
            continue
        image = qemu_img.info(Path(path), force_share=True)
        backing = None
        if image.backing_file is not None:
            if not under(image.backing_file, cache_dir):
                raise ValueError(f"{path} is backed by {image.backing_file}, not a cached image")
            backing = check_id(Path(image.backing_file).name, "a backing image")
        found.disks.append(
            LiveMigrateDisk(
                file=Path(path).name,
                target=target.get("dev", ""),
                format=image.format,
                virtual_size=image.virtual_size,
                backing_image=backing,
            )
        )
    for tag in ("os/kernel", "os/initrd"):
        boot = root.find(tag)
        if boot is not None and boot.text and under(boot.text, cache_dir):
            found.boot_images.append(check_id(Path(boot.text).name, "a boot image"))
    return found


def make_incoming_disks(
    paths: InstancePaths,
    cache: ImageCache,
    disks: list[LiveMigrateDisk],
    boot_images: list[str],
    config_drive: bytes | None = None,
) -> None:
    """The instance directory with an empty file for each disk the source copies, the
    config drive as it was, and this host's references to the images they and the kernel
    boot from; all or nothing."""
    directory = paths.directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with Undo("prepare a block migration", paths.uuid) as undo:
        directory.mkdir(exist_ok=True)
        undo.push("remove the instance directory", shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)  # QEMU runs as its own user
        for image_id in boot_images:
            cache.acquire(check_id(image_id, "a boot image"), paths.uuid)
            undo.push(f"release image {image_id}", cache.release, image_id, paths.uuid)
        for disk in disks:
            path = paths.disk(check_id(disk.file, "a disk file"))
            size_mib = -(-disk.virtual_size // MIB)
            if disk.backing_image is not None:
                base = cache.acquire(check_id(disk.backing_image, "a backing image"), paths.uuid)
                undo.push(
                    f"release image {disk.backing_image}",
                    cache.release,
                    disk.backing_image,
                    paths.uuid,
                )
                qemu_img.create_overlay(path, base.path, base.format, size_mib)
            elif disk.format == "raw":
                with open(path, "wb") as blank:
                    blank.truncate(disk.virtual_size)
            else:
                qemu_img.create_blank(path, size_mib)
        if config_drive is not None:
            paths.disk(CONFIG_DRIVE_FILE).write_bytes(config_drive)
        undo.commit()


def destination_xml(xml: str, paths: PathMap) -> str:
    """The domain `xml` with every file path under the source's instance directory or image
    cache moved to the destination's."""
    root = ET.fromstring(xml)
    for node in root.iter():
        for name in ("file", "path"):
            value = node.get(name)
            if value is not None:
                node.set(name, paths.moved(value))
        if node.tag in ("kernel", "initrd") and node.text:
            node.text = paths.moved(node.text)
    return ET.tostring(root, encoding="unicode")
