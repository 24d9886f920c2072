"""The pure rules of a resize or cold migration: what is refused before the guest is touched,
how the disk info reads, and the record the instance has on its destination.

Nothing here touches a clock, a hypervisor or an actor; `actors.instance.resize` applies it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from actors.migration.errors import ResizeRefused
from schemas.objects.enums import VMState
from schemas.objects.flavor import Flavor
from schemas.objects.instance import Instance

GIB = 1024 * 1024 * 1024
# A disk file name in the instance directory: one path component, no dot file.
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
FLAVOR_SIZES = ("memory_mb", "vcpus", "root_gb")


class BadArgument(ValueError):
    """An argument that is malformed: `argument` names it, the message says why."""

    def __init__(self, argument: str, reason: str) -> None:
        super().__init__(reason)
        self.argument = argument
        self.reason = reason


def check_flavor(flavor: Flavor) -> None:
    """`BadArgument` for a flavor a guest cannot have (sizes unset, no CPU or memory, negative
    disks)."""
    for name in FLAVOR_SIZES:
        if not flavor.obj_attr_is_set(name):
            raise BadArgument("flavor", f"its {name} is unset")
    if flavor.vcpus < 1 or flavor.memory_mb < 1:
        reason = (
            f"a guest needs 1 vCPU and 1 MiB at least, got {flavor.vcpus} and {flavor.memory_mb}"
        )
        raise BadArgument("flavor", reason)
    if flavor.root_gb < 0 or flavor.ephemeral_gb < 0 or flavor.swap < 0:
        raise BadArgument("flavor", "a disk size is negative")


def check_no_shrink(uuid: str, old: Flavor, new: Flavor) -> None:
    """`ResizeRefused` when `new` has a smaller root or ephemeral disk than `old` (a qcow2
    disk cannot be shrunk under a file system; nova refuses the same)."""
    if old.root_gb > 0 and new.root_gb < old.root_gb:
        reason = f"its root disk cannot shrink from {old.root_gb} GiB to {new.root_gb} GiB"
        raise ResizeRefused(uuid=uuid, reason=reason)
    if new.ephemeral_gb < old.ephemeral_gb:
        reason = (
            f"its ephemeral disk cannot shrink from {old.ephemeral_gb} GiB to "
            f"{new.ephemeral_gb} GiB"
        )
        raise ResizeRefused(uuid=uuid, reason=reason)


def check_root_fits(uuid: str, root_virtual_size: int, new: Flavor) -> None:
    """`ResizeRefused` when the root disk as it is now is bigger than `new`'s root_gb (0: the
    image's own size, anything fits)."""
    if new.root_gb > 0 and root_virtual_size > new.root_gb * GIB:
        reason = (
            f"its root disk ({root_virtual_size} bytes) is larger than the new flavor's "
            f"{new.root_gb} GiB"
        )
        raise ResizeRefused(uuid=uuid, reason=reason)


@dataclass(slots=True, frozen=True)
class ResizeDestination:
    """Where a resize's files go: the destination host, its libvirtd as the source reaches
    it, and its instance directory and image cache (paths on the destination)."""

    host: str
    uri: str
    instance_dir: str
    image_cache_dir: str


@dataclass(slots=True, frozen=True)
class MovedDisk:
    """One entry of nova's disk info, as the destination uses it: the file's name in the
    instance directory and its size."""

    file: str
    virt_disk_size: int


def disk_info_json(entries: list[dict[str, object]]) -> str:
    """nova's disk info: a JSON list of the local disks (path, type, virt_disk_size,
    backing_file, disk_size, over_committed_disk_size), in the order given."""
    return json.dumps(entries, sort_keys=True)


def parse_disk_info(text: str) -> list[MovedDisk]:
    """The disks `disk_info_json` listed; `BadArgument("disk_info", ...)` for anything else
    (not JSON, not a list of disks, a path that is not a plain file name at its end)."""
    try:
        entries = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise BadArgument("disk_info", f"it is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise BadArgument("disk_info", "it is not a list of disks")
    disks = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise BadArgument("disk_info", "a disk has no path")
        name = entry["path"].rsplit("/", 1)[-1]
        if not _FILE.fullmatch(name):
            raise BadArgument("disk_info", f"{entry['path']!r} does not end in a file name")
        size = entry.get("virt_disk_size", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadArgument("disk_info", f"the size of {name} is not a byte count")
        disks.append(MovedDisk(name, size))
    if len({d.file for d in disks}) != len(disks):
        raise BadArgument("disk_info", "a file is listed twice")
    return disks


def resized_instance(instance: Instance, host: str, vm_state: str = VMState.RESIZED) -> Instance:
    """`instance` (its flavor the new one) as recorded on its destination `host`: the sizes
    of its flavor, in `vm_state` with no task."""
    moved = instance.obj_clone()
    flavor = moved.flavor
    moved.host = host
    moved.node = host
    moved.memory_mb = flavor.memory_mb
    moved.vcpus = flavor.vcpus
    moved.root_gb = flavor.root_gb
    moved.ephemeral_gb = flavor.ephemeral_gb
    moved.vm_state = vm_state
    moved.task_state = None
    return moved
