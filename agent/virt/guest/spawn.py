"""Spawning a guest: the plan (pure, checked before anything is made) and the blocking job.

`plan_spawn` turns the request into the domain XML and the list of files to make, so every
bad value is refused before a file, a reference or a domain exists. `run_spawn` (blocking, in
`Host.run`) then makes the instance directory, takes image references, writes the overlays and
blank disks, defines and starts the domain; if any step fails, `Undo` reverses the ones done,
last first, and the original error propagates.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import libvirt

from agent.virt import qemu_img
from agent.virt.guest.config import GuestDevices, KernelBoot, build_domain_xml
from agent.virt.guest.config_drive import FILE_NAME as CONFIG_DRIVE_FILE
from agent.virt.guest.config_drive import config_drive_files, write_config_drive
from agent.virt.guest.disks import (
    InstancePaths,
    LocalDisk,
    config_drive_element,
    local_disk_element,
    plan_disks,
)
from agent.virt.guest.domain import Guest
from agent.virt.guest.errors import GuestConfigError, InstanceExists
from agent.virt.guest.settings import GuestSettings
from agent.virt.images import ImageCache, check_id, root_size_mib
from agent.virt.undo import Undo
from agent.virt.vifs import interface_element
from agent.virt.volumes import volume_disk_element
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class SpawnPlan:
    """Everything `run_spawn` makes, decided up front."""

    uuid: str
    xml: str
    paths: InstancePaths
    local: tuple[LocalDisk, ...]
    root_image: str | None  # image id of the root overlay's base
    boot_images: tuple[str, ...]  # kernel and ramdisk image ids
    config_drive: dict[str, bytes] | None = None  # its files, by their path on the drive


def plan_spawn(
    instance: Instance,
    image_meta: ImageMeta,
    block_device_info: BlockDeviceMappingList | None,
    network_info: NetworkInfo | None,
    recovery: bytes,
    settings: GuestSettings,
    cache: ImageCache,
    *,
    injected_files: Sequence[tuple[str, bytes]] = (),
    admin_password: str | None = None,
    filter_interfaces: bool = False,
) -> SpawnPlan:
    """The domain XML and files of `instance`; typed errors for anything that cannot work.
    `filter_interfaces`: each interface references its network filter (defined first)."""
    disks = plan_disks(instance, image_meta, block_device_info)
    drive: dict[str, bytes] | None = None
    if instance.config_drive:
        drive = config_drive_files(instance, network_info, injected_files, admin_password)
    paths = InstancePaths(settings.instances_path, instance.uuid)
    props = image_meta.properties
    boot_images: list[str] = []
    kernel = None
    if props.kernel_id:
        boot_images.append(check_id(props.kernel_id, "kernel_id"))
        initrd = None
        if props.ramdisk_id:
            boot_images.append(check_id(props.ramdisk_id, "ramdisk_id"))
            initrd = str(cache.cache_path / props.ramdisk_id)
        kernel = KernelBoot(str(cache.cache_path / props.kernel_id), initrd, props.os_command_line)
    elif props.ramdisk_id or props.os_command_line:
        raise GuestConfigError(
            uuid=instance.uuid, reason="ramdisk_id and os_command_line need a kernel_id"
        )
    root_image = None
    if any(d.from_image for d in disks.local):
        root_image = check_id(instance.image_ref or image_meta.id or "", "image_ref")
    elements = [
        (
            d.target,
            local_disk_element(str(paths.disk(d.file)), d.target, d.bus, settings.disk_cachemode),
        )
        for d in disks.local
    ]
    if disks.config_drive is not None:
        target, bus = disks.config_drive
        path = str(paths.disk(CONFIG_DRIVE_FILE))
        elements.append((target, config_drive_element(path, target, bus)))
    elements += [
        (
            v.target,
            volume_disk_element(
                v.connection, v.target, v.bus, iscsi_initiator=settings.iscsi_initiator
            ),
        )
        for v in disks.volumes
    ]
    root_target = (disks.root_device_name or "").removeprefix("/dev/")
    # The root disk first: firmware boots the first disk of the bus.
    elements.sort(key=lambda pair: (pair[0] != root_target, len(pair[0]), pair[0]))
    vifs = [] if network_info is None else network_info.objects
    devices = GuestDevices(
        disks=[element for _target, element in elements],
        interfaces=[
            interface_element(vif, props, instance.uuid if filter_interfaces else None)
            for vif in vifs
        ],
        console_log=str(paths.console_log),
        kernel=kernel,
    )
    xml = build_domain_xml(
        instance, image_meta, settings, devices, recovery=recovery, created=instance.created_at
    )
    return SpawnPlan(
        instance.uuid, xml, paths, tuple(disks.local), root_image, tuple(boot_images), drive
    )


def run_spawn(conn: libvirt.virConnect, plan: SpawnPlan, cache: ImageCache) -> None:
    """Make the files, define and start the domain (blocking); all or nothing.

    The directory holds a marker (`InstancePaths.spawning`) until the guest started. An
    agent killed before that leaves it behind; with no domain of the uuid, such a directory
    is the interrupted spawn's own leftover and is removed (with its image references)
    before this spawn starts over. A directory without the marker is someone else's (a
    guest on shared storage, an incoming migration): `InstanceExists`."""
    if Guest.find(conn, plan.uuid) is not None:
        raise InstanceExists(uuid=plan.uuid, reason="libvirt already has a domain with this uuid")
    directory = plan.paths.directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    if plan.paths.spawning.exists():
        released = remove_instance_files(plan.paths, cache)
        log.warning(
            "spawn %s: removed what an interrupted spawn left (%s; images released: %s)",
            plan.uuid,
            directory,
            ", ".join(released) or "none",
            extra={"instance_uuid": plan.uuid},
        )
    with Undo("spawn", plan.uuid) as undo:
        try:
            directory.mkdir()
        except FileExistsError:
            raise InstanceExists(
                uuid=plan.uuid, reason=f"its directory {directory} exists (destroy it first)"
            ) from None
        undo.push("remove the instance directory", shutil.rmtree, directory)
        plan.paths.spawning.write_text(f"{os.getpid()}\n")
        # QEMU runs as its own user: it must reach the disks and the console log.
        os.chmod(directory, 0o755)
        for image_id in plan.boot_images:
            cache.acquire(image_id, plan.uuid)
            undo.push(f"release image {image_id}", cache.release, image_id, plan.uuid)
        for disk in plan.local:
            _make_disk(plan, disk, cache, undo)
        if plan.config_drive is not None:
            write_config_drive(plan.paths.disk(CONFIG_DRIVE_FILE), plan.config_drive)
        guest = Guest.define(conn, plan.xml)
        undo.push("undefine the domain", guest.undefine)
        guest.launch()
        undo.push("destroy the domain", guest.poweroff)
        plan.paths.spawning.unlink()
        undo.commit()
    log.info("spawned %s", plan.uuid, extra={"instance_uuid": plan.uuid})


def _make_disk(plan: SpawnPlan, disk: LocalDisk, cache: ImageCache, undo: Undo) -> None:
    path: Path = plan.paths.disk(disk.file)
    if disk.from_image:
        assert plan.root_image is not None
        base = cache.acquire(plan.root_image, plan.uuid)
        undo.push(f"release image {plan.root_image}", cache.release, plan.root_image, plan.uuid)
        qemu_img.create_overlay(path, base.path, base.format, root_size_mib(base, disk.size_mib))
    else:
        assert disk.size_mib is not None
        qemu_img.create_blank(path, disk.size_mib)


def remove_instance_files(paths: InstancePaths, cache: ImageCache) -> list[str]:
    """Delete the instance directory and drop its image references (blocking); returns the
    image ids released. Idempotent."""
    shutil.rmtree(paths.directory, ignore_errors=True)
    # A rescued guest also holds references as `<uuid>.rescue` (see guest_rescue).
    return sorted(
        set(cache.release_all(paths.uuid)) | set(cache.release_all(f"{paths.uuid}.rescue"))
    )
