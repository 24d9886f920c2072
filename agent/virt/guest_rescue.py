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
from collections.abc import Callable, Sequence

import libvirt

from agent.virt import qemu_img
from agent.virt.guest import Guest
from agent.virt.guest_disks import InstancePaths
from agent.virt.guest_errors import GuestConfigError
from agent.virt.guest_info import find_disk
from agent.virt.guest_metadata import RECOVERY_NS, RECOVERY_PREFIX, recovery_fragment
from agent.virt.images import ImageCache
from agent.virt.undo import Undo

log = logging.getLogger(__name__)

RESCUE_DISK = "disk.rescue"
UNRESCUE_XML = "unrescue.xml"


def rescue_holder(uuid: str) -> str:
    return f"{uuid}.rescue"


def run_rescue(
    conn: libvirt.virConnect,
    paths: InstancePaths,
    cache: ImageCache,
    image_id: str,
    boot_images: Sequence[str],
    build_xml: Callable[[str, str], str],
) -> None:
    """Swap the domain for its rescue domain (blocking): an overlay on `image_id`, the
    `boot_images` (kernel, ramdisk) referenced, and `build_xml(rescue_disk, root_disk)` for
    the rescue domain's XML. On failure the original is back (running if it was)."""
    uuid = paths.uuid
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
        for boot_image in boot_images:
            cache.acquire(boot_image, holder)
            undo.push(f"release image {boot_image}", cache.release, boot_image, holder)
        base = cache.acquire(image_id, holder)
        undo.push(f"release image {image_id}", cache.release, image_id, holder)
        rescue_disk = paths.disk(RESCUE_DISK)
        qemu_img.create_overlay(rescue_disk, base.path, base.format, None)
        undo.push("remove the rescue disk", rescue_disk.unlink)
        xml = build_xml(str(rescue_disk), str(paths.disk("disk")))
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
            if time.monotonic() > deadline:
                raise GuestConfigError(
                    uuid=uuid, reason=f"the copy of {target} did not finish in {timeout}s"
                )
            time.sleep(poll)
        guest.block_job_abort(target, pivot=True)
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
