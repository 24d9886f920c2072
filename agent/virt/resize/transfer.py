"""A resize's disks, sent to the destination host over libvirt storage-volume streams.

The source opens the destination's libvirtd (its `[migration] peer_uri`, the URI live
migration uses), looks in the destination's image cache through a `dir` pool on it (a
transient one, `virtactor-image-cache-<hash of the path>`, made if the host has none there,
and kept), defines a `dir` pool at the destination's instance directory, and for each file
creates a volume and uploads the file's bytes into it (`virStorageVolUpload` with a
`virStream`, in 1 MiB chunks). Only libvirtd's own connection carries the data: nothing
assumes a path both hosts see. The
files travel byte for byte (a qcow2 overlay stays a qcow2 overlay; the destination points it
at its own cached base, `agent.virt.resize.finish`).

All or nothing: when any step fails, the volumes made are deleted and the directory removed
(it was empty before: a directory with files in it is refused, never written to), and the
instance directory's pool definition is gone either way. Every function blocks: run it in
the executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import libvirt

from actors.instance.resize_checks import ResizeDestination as Destination
from actors.migration.errors import DiskTransferFailed
from agent.virt.guest.config_drive import FILE_NAME as CONFIG_DRIVE_FILE
from agent.virt.images import check_id
from agent.virt.migration.disks import LocalFiles

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
INCOMING_IMAGE_PREFIX = "image."
KEEPALIVE = (5, 3)  # seconds between probes, probes missed: a dead peer fails the stream


@dataclass(slots=True, frozen=True)
class Upload:
    """One file: `source` on this host, sent as volume `name` into the instance directory."""

    source: Path
    name: str


def incoming_image_name(image_id: str) -> str:
    """The name a cached image travels under, beside the disks (the destination's cache
    takes it in, `ImageCache.adopt`)."""
    return INCOMING_IMAGE_PREFIX + check_id(image_id, "an image id")


def plan_uploads(
    files: LocalFiles, instance_dir: Path, cache_dir: Path, cached_there: Iterable[str]
) -> list[Upload]:
    """What to send: every local disk, the config drive, and each cached image the disks
    sit on or the kernel boots from that the destination's cache lacks. Pure."""
    uploads = [
        Upload(instance_dir / disk.file, check_id(disk.file, "a disk file")) for disk in files.disks
    ]
    if files.config_drive is not None:
        uploads.append(Upload(instance_dir / CONFIG_DRIVE_FILE, CONFIG_DRIVE_FILE))
    present = set(cached_there)
    images = [d.backing_image for d in files.disks if d.backing_image] + files.boot_images
    for image_id in dict.fromkeys(images):  # once each, in order
        if image_id not in present:
            uploads.append(Upload(cache_dir / image_id, incoming_image_name(image_id)))
    return uploads


def cache_pool_name(cache_dir: str) -> str:
    """The name of the transient pool made over an image cache: one per directory, as
    libvirt allows one pool per directory and one pool per name."""
    return "virtactor-image-cache-" + hashlib.sha256(cache_dir.encode()).hexdigest()[:12]


def pool_xml(name: str, path: str) -> str:
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = path
    permissions = ET.SubElement(target, "permissions")
    # QEMU runs as its own user: it must reach the disks.
    ET.SubElement(permissions, "mode").text = "0755"
    return ET.tostring(pool, encoding="unicode")


def volume_xml(name: str, size: int) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", unit="bytes").text = str(size)
    ET.SubElement(volume, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(volume, "target")
    # raw: libvirt makes an empty file and writes the stream's bytes as they come.
    ET.SubElement(target, "format", type="raw")
    permissions = ET.SubElement(target, "permissions")
    ET.SubElement(permissions, "mode").text = "0644"
    return ET.tostring(volume, encoding="unicode")


def send_files(
    uuid: str,
    destination: Destination,
    plan: Callable[[set[str]], list[Upload]],
    *,
    open_connection: Callable[[str], libvirt.virConnect] = libvirt.open,
) -> list[str]:
    """Send the files `plan(images cached at the destination)` names; returns the volume
    names sent. `DiskTransferFailed` for any failure (libvirt's or a file's), after removing
    what was sent."""
    try:
        conn = open_connection(destination.uri)
    except libvirt.libvirtError as exc:
        raise _failed(uuid, destination, exc) from exc
    try:
        conn.setKeepAlive(*KEEPALIVE)
        uploads = plan(_cached_images(conn, destination.image_cache_dir))
        _send_all(conn, uuid, destination, uploads)
        return [u.name for u in uploads]
    except (libvirt.libvirtError, OSError) as exc:
        raise _failed(uuid, destination, exc) from exc
    finally:
        # A broken connection: its failure is the one already raised.
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _failed(uuid: str, destination: Destination, exc: BaseException) -> DiskTransferFailed:
    if isinstance(exc, libvirt.libvirtError):
        reason = exc.get_error_message() or str(exc)
    else:
        reason = str(exc)
    return DiskTransferFailed(uuid=uuid, host=destination.host, reason=reason)


def _cached_images(conn: libvirt.virConnect, cache_dir: str) -> set[str]:
    """The files in the destination's image cache, read through a `dir` pool on it: the
    host's own pool there if it has one, else a transient one made (with the directory) and
    kept, so that transfers to this host at the same moment share it instead of one
    destroying it under another (libvirt allows one pool per directory; a transient pool
    goes with the destination's libvirtd)."""
    try:
        pool = conn.storagePoolLookupByTargetPath(cache_dir)
    except libvirt.libvirtError:
        try:
            xml = pool_xml(cache_pool_name(cache_dir), cache_dir)
            pool = conn.storagePoolCreateXML(xml, libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD)
        except libvirt.libvirtError:
            pool = conn.storagePoolLookupByTargetPath(cache_dir)  # made meanwhile by another
    if not pool.isActive():
        pool.create(0)
    pool.refresh(0)
    return set(pool.listVolumes())


def _send_all(
    conn: libvirt.virConnect, uuid: str, destination: Destination, uploads: list[Upload]
) -> None:
    name = f"virtactor-resize-{uuid}"
    _remove_stale_pool(conn, name)
    pool = conn.storagePoolDefineXML(pool_xml(name, destination.instance_dir), 0)
    made: list[libvirt.virStorageVol] = []
    try:
        pool.build(0)
        pool.create(0)
        found = pool.listVolumes()
        if found:
            reason = f"{destination.instance_dir} already holds {sorted(found)}"
            raise DiskTransferFailed(uuid=uuid, host=destination.host, reason=reason)
        for upload in uploads:
            size = os.path.getsize(upload.source)
            volume = pool.createXML(volume_xml(upload.name, size), 0)
            made.append(volume)
            _upload(conn, volume, upload.source, size)
        log.info(
            "instance %s: sent %s to %s",
            uuid,
            ", ".join(u.name for u in uploads),
            destination.host,
            extra={"instance_uuid": uuid},
        )
    except BaseException:
        _remove_sent(pool, made)
        raise
    finally:
        _undefine(pool)


def _upload(conn: libvirt.virConnect, volume: libvirt.virStorageVol, path: Path, size: int) -> None:
    stream = conn.newStream(0)
    volume.upload(stream, 0, size, 0)
    try:
        with open(path, "rb") as source:
            while chunk := source.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    sent = stream.send(bytes(view))
                    if sent < 0:
                        raise OSError(f"the stream refused more of {path.name}")
                    view = view[sent:]
        stream.finish()
    except BaseException:
        # The stream broke already: the error being raised says why.
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise


def _remove_sent(pool: libvirt.virStoragePool, made: list[libvirt.virStorageVol]) -> None:
    """Best effort, while another error propagates: the volumes sent, then the (now empty)
    directory."""
    try:
        for volume in made:
            volume.delete(0)
        if pool.isActive():
            pool.destroy()
        pool.delete(0)
    except libvirt.libvirtError as exc:
        log.warning("a resize's partial files not all removed: %s", exc)


def _remove_stale_pool(conn: libvirt.virConnect, name: str) -> None:
    """A definition an earlier attempt left (an agent that died mid-transfer)."""
    try:
        stale = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return
    _undefine(stale)


def _undefine(pool: libvirt.virStoragePool) -> None:
    try:
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    except libvirt.libvirtError as exc:
        log.warning("storage pool of a resize not undefined: %s", exc)
