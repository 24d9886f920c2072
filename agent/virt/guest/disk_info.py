"""nova's view of an instance's local disks (`get_instance_disk_info`), and the other reads of
an instance's files: whether its directory is here, what an interrupted snapshot left.

Blocking (qemu-img, stat): callers run these in the blocking executor (`Host.run`). A disk
file that cannot be read is a typed `HostFilesError`, never a raw `OSError`.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from agent.virt import qemu_img
from agent.virt.errors import HostFilesError


def disk_targets(config: ET.Element) -> list[str]:
    """The target names of the domain's disks, in document order."""
    targets = (disk.find("target") for disk in config.iterfind("devices/disk"))
    return [t.get("dev", "") for t in targets if t is not None and t.get("dev")]


def local_disks(config: ET.Element, volume_devices: list[str]) -> list[tuple[str, str, str]]:
    """(path, driver type, source kind) of each file- or block-backed disk of `config`,
    leaving out cdroms and the disks at `volume_devices` (attached volumes are not local)."""
    found = []
    for disk in config.iterfind("devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue
        target, source, driver = disk.find("target"), disk.find("source"), disk.find("driver")
        if target is None or source is None or target.get("dev") in volume_devices:
            continue
        kind = disk.get("type")
        path = source.get("file") if kind == "file" else source.get("dev")
        if kind not in ("file", "block") or not path:
            continue
        found.append((path, "raw" if driver is None else driver.get("type", "raw"), kind))
    return found


def disk_info(path: str, disk_type: str, kind: str, *, force_share: bool) -> dict[str, Any]:
    """One disk as nova's libvirt driver describes it: a qcow2's virtual size is qemu-img's,
    its size the blocks it takes, and the difference is over-committed; a raw file's virtual
    size is its length, a block device's its size, neither over-committed. `force_share`
    reads a qcow2 a running QEMU holds locked."""
    try:
        if kind == "block":
            with open(path, "rb") as device:
                size = device.seek(0, os.SEEK_END)
        else:
            size = os.stat(path).st_blocks * 512
        backing, virtual, over = "", size, 0
        if disk_type == "qcow2":
            image = qemu_img.info(Path(path), force_share=force_share)
            backing = os.path.basename(image.backing_file or "")
            virtual = image.virtual_size
            over = virtual - size
        elif kind == "file":
            virtual = os.path.getsize(path)  # a sparse raw file is not counted over-committed
    except OSError as exc:
        raise HostFilesError(what="a disk", path=path, reason=exc.strerror or str(exc)) from exc
    return {
        "type": disk_type,
        "path": path,
        "virt_disk_size": virtual,
        "backing_file": backing,
        "disk_size": size,
        "over_committed_disk_size": over,
    }


def directory_writable(directory: Path) -> bool:
    """nova's `instance_on_disk`: the instance's directory exists here and may be written."""
    return directory.is_dir() and os.access(directory, os.W_OK)


def remove_partial_snapshots(snapshots_path: Path, image_id: str) -> list[str]:
    """Remove the partial files of snapshot `image_id` (`.<id>.qcow2.part-*`, which the
    snapshot's own clean-up could not remove when the agent stopped midway); their paths."""
    removed = []
    try:
        for part in sorted(snapshots_path.glob(f".{image_id}.qcow2.part-*")):
            part.unlink(missing_ok=True)
            removed.append(str(part))
    except OSError as exc:
        path = str(exc.filename or snapshots_path)
        reason = exc.strerror or str(exc)
        raise HostFilesError(what="a partial snapshot", path=path, reason=reason) from exc
    return removed
