"""Rescue (boot a guest from a fresh disk of a rescue image, its own root disk second) and
the block copy behind swap_volume. Blocking jobs for `Host.run`, all or nothing.

Rescue keeps the original persistent definition in `<instance dir>/unrescue.xml`; the rescue
disk is `disk.rescue`, an overlay on the rescue image's cached base, referenced by the holder
`<uuid>.rescue` (so a rescue image that is also the root image keeps its own reference).
`unrescue` defines the kept XML again, which brings back every device the guest had.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libvirt

from agent.virt import qemu_img
from agent.virt.guest.config import GuestDevices, KernelBoot, build_domain_xml
from agent.virt.guest.disks import InstancePaths, device_name, local_disk_element
from agent.virt.guest.domain import Guest
from agent.virt.guest.errors import GuestConfigError
from agent.virt.guest.info import find_disk
from agent.virt.guest.metadata import RECOVERY_NS, RECOVERY_PREFIX, recovery_fragment
from agent.virt.guest.settings import GuestSettings
from agent.virt.images import ImageCache, check_id
from agent.virt.libvirt_errors import has_code
from agent.virt.undo import Undo
from schemas.objects.enums import DiskBus
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance

log = logging.getLogger(__name__)

RESCUE_DISK = "disk.rescue"
UNRESCUE_XML = "unrescue.xml"


def rescue_holder(uuid: str) -> str:
    return f"{uuid}.rescue"


@dataclass(slots=True, frozen=True)
class RescuePlan:
    """The rescue of one guest: its files, the images to reference, and the XML builder
    `build_xml(rescue_disk, root_disk)` (called in the job, where the root disk is looked at)."""

    paths: InstancePaths
    disk_image: str
    boot_images: tuple[str, ...]
    build_xml: Callable[[str, str], str]


def plan_rescue(
    instance: Instance,
    image_meta: ImageMeta,
    settings: GuestSettings,
    cache: ImageCache,
    recovery: bytes,
) -> RescuePlan:
    """Check the request and decide the rescue domain; typed errors before anything is made."""
    props = image_meta.properties
    disk_image = check_id(image_meta.id or instance.image_ref or "", "the rescue image id")
    boot_images = tuple(
        check_id(i, "a boot image id") for i in (props.kernel_id, props.ramdisk_id) if i
    )
    kernel = None
    if props.kernel_id:
        initrd = str(cache.cache_path / props.ramdisk_id) if props.ramdisk_id else None
        kernel = KernelBoot(str(cache.cache_path / props.kernel_id), initrd, props.os_command_line)
    paths = InstancePaths(settings.instances_path, instance.uuid)
    bus = props.hw_disk_bus or DiskBus.VIRTIO.value

    def build(rescue_disk: str, root_disk: str) -> str:
        disks = [local_disk_element(rescue_disk, device_name(bus, 0), bus, settings.disk_cachemode)]
        if Path(root_disk).exists():
            disks.append(
                local_disk_element(root_disk, device_name(bus, 1), bus, settings.disk_cachemode)
            )
        devices = GuestDevices(disks=disks, console_log=str(paths.console_log), kernel=kernel)
        return build_domain_xml(instance, image_meta, settings, devices, recovery=recovery)

    build(str(paths.disk(RESCUE_DISK)), "")  # refuses bad values now, not midway
    return RescuePlan(paths, disk_image, boot_images, build)


def run_rescue(conn: libvirt.virConnect, plan: RescuePlan, cache: ImageCache) -> None:
    """Swap the domain for its rescue domain (blocking); on failure the original is back
    (running if it was)."""
    paths, uuid = plan.paths, plan.paths.uuid
    guest = Guest.lookup(conn, uuid)
    kept = paths.disk(UNRESCUE_XML)
    if kept.exists():
        raise GuestConfigError(uuid=uuid, reason="it is already rescued")
    original = guest.xml_desc(inactive=True)
    was_active = guest.is_active()
    with Undo("rescue", uuid) as undo:
        kept.write_text(original)
        undo.push("forget the kept definition", kept.unlink)
        holder = rescue_holder(uuid)
        for image_id in plan.boot_images:
            cache.acquire(image_id, holder)
            undo.push(f"release image {image_id}", cache.release, image_id, holder)
        base = cache.acquire(plan.disk_image, holder)
        undo.push(f"release image {plan.disk_image}", cache.release, plan.disk_image, holder)
        rescue_disk = paths.disk(RESCUE_DISK)
        qemu_img.create_overlay(rescue_disk, base.path, base.format, None)
        undo.push("remove the rescue disk", rescue_disk.unlink)
        xml = plan.build_xml(str(rescue_disk), str(paths.disk("disk")))
        if was_active:
            guest.poweroff()
            undo.push("start the original domain", lambda: Guest.lookup(conn, uuid).launch())
        undo.push("define the original domain", conn.defineXML, original)
        Guest.define(conn, xml).launch()
        undo.commit()


def run_unrescue(
    conn: libvirt.virConnect, paths: InstancePaths, cache: ImageCache, recovery: bytes
) -> None:
    """Stop the rescue domain, define the kept original, start it (blocking)."""
    uuid = paths.uuid
    kept = paths.disk(UNRESCUE_XML)
    if not kept.exists():
        raise GuestConfigError(uuid=uuid, reason="it is not rescued")
    guest = Guest.lookup(conn, uuid)
    if guest.is_active():
        guest.poweroff()
    restored = Guest.define(conn, kept.read_text())
    restored.set_metadata(recovery_fragment(recovery), RECOVERY_PREFIX, RECOVERY_NS)
    restored.launch()
    kept.unlink()
    paths.disk(RESCUE_DISK).unlink(missing_ok=True)
    cache.release_all(rescue_holder(uuid))


def _check_copy_deadline(uuid: str, target: str, deadline: float, timeout: float) -> None:
    if time.monotonic() > deadline:
        raise GuestConfigError(
            uuid=uuid, reason=f"the copy of {target} did not finish in {timeout}s"
        )


def run_block_copy(
    conn: libvirt.virConnect,
    uuid: str,
    target: str,
    new_disk: ET.Element,
    resize_to_gib: int,
    timeout: float,
    poll: float,
) -> None:
    """Copy disk `target` into `new_disk` while the guest runs, pivot to it, and make the
    persistent definition name it too (blocking). A copy that does not finish is aborted:
    the guest keeps the old disk."""
    guest = Guest.lookup(conn, uuid)
    old_config = find_disk(guest.config(inactive=True), target)
    # blockCopy takes the destination's source and driver; target and the rest stay.
    dest = ET.Element("disk", new_disk.attrib)
    dest.extend(child for child in new_disk if child.tag in ("driver", "source", "auth"))
    guest.block_copy(target, ET.tostring(dest, encoding="unicode"))
    deadline = time.monotonic() + timeout
    try:
        while not guest.block_job_done(target):
            _check_copy_deadline(uuid, target, deadline, timeout)
            time.sleep(poll)
        # cur == end is not yet "ready": QEMU may still be converging the mirror, and a pivot
        # before its READY point fails with VIR_ERR_BLOCK_COPY_ACTIVE ("not ready for pivot
        # yet"). libvirt has no blocking wait for it outside events, so try until it takes.
        while True:
            try:
                guest.block_job_abort(target, pivot=True)
                break
            except libvirt.libvirtError as exc:
                if not has_code(exc, libvirt.VIR_ERR_BLOCK_COPY_ACTIVE):
                    raise
            _check_copy_deadline(uuid, target, deadline, timeout)
            time.sleep(poll)
    except BaseException:
        try:
            guest.block_job_abort(target, pivot=False)
        except libvirt.libvirtError as exc:
            log.warning("aborting the copy of %s on %s: %s", target, uuid, exc)
        raise
    # The pivot changed the running guest only: the definition must follow. libvirt cannot
    # update a disk's source in place, so the old disk goes and the new one comes.
    if old_config is not None:
        guest.detach_device(ET.tostring(old_config, encoding="unicode"), live=False)
    guest.attach_device(ET.tostring(new_disk, encoding="unicode"), live=False)
    if resize_to_gib:
        guest.block_resize(target, resize_to_gib * 1024**3)
