"""A resize's destination: the guest made from the files the source sent (blocking).

The domain XML is the spawn plan's (`plan_spawn`, with the instance's new flavor and this
host's paths); the disks are not made but taken from the instance directory as they arrived:
each cached image that came along (`image.<id>`) enters this host's image cache
(`ImageCache.adopt`), the others are taken from it as a spawn takes them; the root overlay is
pointed at this host's cached base (`qemu-img rebase -u`: the same bytes under another
path), a disk grows to the new flavor's size when asked (never shrinks), a disk the new
flavor adds (an ephemeral or swap the old one had not) is made blank. Then the domain is
defined and, if asked, started. On failure, what this step did (domain, references, blank
disks) is undone; the files that arrived stay for `revert_migration_at_destination`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import libvirt

from agent.virt import qemu_img
from agent.virt.guest.config_drive import FILE_NAME as CONFIG_DRIVE_FILE
from agent.virt.guest.config_drive import write_config_drive
from agent.virt.guest.domain import Guest
from agent.virt.guest.errors import GuestConfigError, InstanceExists
from agent.virt.guest.spawn import SpawnPlan
from agent.virt.images import CachedImage, ImageCache
from agent.virt.resize.transfer import INCOMING_IMAGE_PREFIX, incoming_image_name
from agent.virt.undo import Undo

log = logging.getLogger(__name__)
MIB = 1024 * 1024


def run_finish(
    conn: libvirt.virConnect,
    plan: SpawnPlan,
    cache: ImageCache,
    arrived: list[str],
    resize_disks: bool,
    power_on: bool,
) -> None:
    """Define (and start, if `power_on`) the guest of `plan` on the files `arrived` (names in
    its instance directory); `resize_disks`: grow each local disk to the plan's size."""
    uuid, paths = plan.uuid, plan.paths
    if Guest.find(conn, uuid) is not None:
        raise InstanceExists(uuid=uuid, reason="libvirt already has a domain with this uuid")
    missing = [name for name in arrived if not paths.disk(name).is_file()]
    if missing:
        reason = f"its disks did not arrive in {paths.directory}: {', '.join(missing)}"
        raise GuestConfigError(uuid=uuid, reason=reason)
    with Undo("finish a migration", uuid) as undo:
        for image_id in plan.boot_images:
            _take(cache, image_id, paths.disk(incoming_image_name(image_id)), uuid, undo)
        for disk in plan.local:
            path = paths.disk(disk.file)
            if not path.exists():
                if disk.from_image or disk.size_mib is None:
                    reason = f"its disk {disk.file} did not arrive"
                    raise GuestConfigError(uuid=uuid, reason=reason)
                qemu_img.create_blank(path, disk.size_mib)
                undo.push(f"remove {disk.file}", path.unlink, True)
                continue
            info = qemu_img.info(path)
            if disk.from_image and info.backing_file is not None:
                assert plan.root_image is not None
                incoming = paths.disk(incoming_image_name(plan.root_image))
                base = _take(cache, plan.root_image, incoming, uuid, undo)
                qemu_img.rebase_unsafe(path, base.path, base.format)
            if (
                resize_disks
                and disk.size_mib is not None
                and disk.size_mib * MIB > info.virtual_size
            ):
                qemu_img.grow(path, info.format, disk.size_mib)
        drive = paths.disk(CONFIG_DRIVE_FILE)
        if plan.config_drive is not None and not drive.exists():
            write_config_drive(drive, plan.config_drive)
        guest = Guest.define(conn, plan.xml)
        undo.push("undefine the domain", guest.undefine)
        if power_on:
            guest.launch()
            undo.push("destroy the domain", guest.poweroff)
        undo.commit()
    for leftover in paths.directory.glob(f"{INCOMING_IMAGE_PREFIX}*"):
        leftover.unlink()  # an image this host had already: not needed
    log.info("finished the migration of %s here", uuid, extra={"instance_uuid": uuid})


def _take(cache: ImageCache, image_id: str, incoming: Path, holder: str, undo: Undo) -> CachedImage:
    """The cached base of `image_id` with a reference for `holder`: the copy that came along
    if the cache lacks it, else the cache's own."""
    if incoming.exists():
        image = cache.adopt(image_id, holder, incoming)
    else:
        image = cache.acquire(image_id, holder)
    undo.push(f"release image {image_id}", cache.release, image_id, holder)
    return image
