"""The operation journal's resolvers: what becomes of an operation an agent restart
interrupted, as pure functions of the request's arguments and the instance now.

Each resolver weighs the instance's record (and, for the methods in `FACTS`, what the
instance actor reads besides: a managed save image, a snapshot's files) and returns a
`Verdict`: `DONE` (the effect is there), `RUN_AGAIN` (it is not, and serving the request
again completes it without doing anything twice), or `INTERRUPTED` (no state says, or
running it again is not safe). Why each method is judged as it is: docs/recovery.md, "The
operation journal". Nothing here reads a clock, libvirt or an actor.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.objects.enums import PowerState, VMState
from schemas.objects.instance import Instance
from schemas.objects.network import VIF
from schemas.objects.volume import VolumeConnection


class Verdict(enum.Enum):
    DONE = "done"
    RUN_AGAIN = "run again"
    INTERRUPTED = "interrupted"


@dataclass(slots=True, frozen=True)
class Found:
    """What the state says beyond the record, read only for the methods whose resolver
    needs it (`FACTS`): whether libvirt holds a managed save image of the guest, the path
    of a snapshot's whole image (its partial files already removed)."""

    managed_save: bool | None = None
    snapshot_image: str | None = None


NOTHING_FOUND = Found()

# A resolver: the request's arguments, the instance now (None: the agent knows none) and
# what else was found (`FACTS`).
Resolver = Callable[[Mapping[str, Any], Instance | None, Found], Verdict]


def _power_is(*done: PowerState) -> Resolver:
    """Done when the guest is in one of the `done` power states; else run again (the
    method is one libvirt applies at once or not at all)."""

    def resolve(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
        if record is not None and record.power_state in done:
            return Verdict.DONE
        return Verdict.RUN_AGAIN

    return resolve


def _device(args: Mapping[str, Any]) -> str:
    return "/dev/" + str(args.get("mountpoint", "")).removeprefix("/dev/")


def _volume_at(record: Instance | None, device: str) -> str | None:
    """The volume id the record maps at `device`, "" for a mapping without one, None if none."""
    if record is None or not record.obj_attr_is_set("block_device_mappings"):
        return None
    for mapping in record.block_device_mappings or []:
        if mapping.device_name == device:
            return mapping.volume_id or ""
    return None


def _attached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record maps this volume at the device; else the attach sent again
    completes what reached libvirt (or attaches it) and records it."""
    connection = args.get("connection_info")
    wanted = connection.data.volume_id if isinstance(connection, VolumeConnection) else None
    if wanted and _volume_at(record, _device(args)) == wanted:
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _detached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record maps nothing at the device (the mapping goes once libvirt let
    the disk go); else the detach sent again finishes it."""
    if record is not None and _volume_at(record, _device(args)) is None:
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _swapped(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record maps the new volume at the device (it is recorded once the
    guest pivoted to it); otherwise interrupted, never run again: a swap cut short may have
    pivoted without its record, or left its block copy running in QEMU, and a copy started
    again over either would be refused or copy the new volume onto itself."""
    connection = args.get("new_connection_info")
    wanted = connection.data.volume_id if isinstance(connection, VolumeConnection) else None
    if wanted and _volume_at(record, _device(args)) == wanted:
        return Verdict.DONE
    return Verdict.INTERRUPTED


def _spawned(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the instance is active (a spawn stopped after its domain was defined is
    finished at adoption); else the spawn sent again starts over from its marked leftover."""
    if record is not None and record.vm_state == VMState.ACTIVE:
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _run_again(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    return Verdict.RUN_AGAIN


def _rebooted(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """A guest that runs after a reboot is no proof the reboot happened (one stopped before
    libvirt was asked runs too, and no state tells the two apart): interrupted. A HARD
    reboot whose guest does not run (stopped between pulling the plug and starting it
    again) is run again: from there it starts the guest from its definition, which is the
    whole of its effect, and cannot boot it twice. A SOFT one is not: the record keeps its
    reboot task, which refuses a soft reboot sent again (`poll_rebooting_instances`
    finishes it with a hard one)."""
    if record is None or args.get("reboot_type", "SOFT") != "HARD":
        return Verdict.INTERRUPTED
    if record.power_state in (PowerState.SHUTDOWN, PowerState.CRASHED):
        return Verdict.RUN_AGAIN
    return Verdict.INTERRUPTED


def _suspended(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the guest is shut off and libvirt holds its managed save image; run again
    while it still runs (the managed save was not made, or not finished: libvirt keeps the
    guest running then); anything else (shut off with no image, paused) interrupted."""
    if record is None:
        return Verdict.INTERRUPTED
    if record.power_state == PowerState.SHUTDOWN and found.managed_save:
        return Verdict.DONE
    if record.power_state == PowerState.RUNNING:
        return Verdict.RUN_AGAIN
    return Verdict.INTERRUPTED


def _resumed(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the guest runs; run again while it is shut off with its managed save image
    (the start that restores it was not made); anything else interrupted (shut off with no
    image: nothing is left to resume from)."""
    if record is None:
        return Verdict.INTERRUPTED
    if record.power_state == PowerState.RUNNING:
        return Verdict.DONE
    if record.power_state == PowerState.SHUTDOWN and found.managed_save:
        return Verdict.RUN_AGAIN
    return Verdict.INTERRUPTED


def _snapshot_written(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the snapshot's image is there (renamed into place only once qemu-img
    finished: whole); otherwise interrupted, its partial files already removed. Never run
    again: the image would hold the disk as it is at the restart, not as it was asked."""
    if record is not None and found.snapshot_image is not None:
        return Verdict.DONE
    return Verdict.INTERRUPTED


def _port(args: Mapping[str, Any]) -> str | None:
    vif = args.get("vif")
    return vif.id if isinstance(vif, VIF) and vif.obj_attr_is_set("id") else None


def _has_port(record: Instance | None, port: str) -> bool:
    if record is None or not record.obj_attr_is_set("network_info"):
        return False
    return any(vif.id == port for vif in record.network_info or [])


def _interface_attached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record has the port (it is recorded once libvirt attached it); else
    the attach sent again completes what reached libvirt (the same MAC) and records it."""
    port = _port(args)
    if port is not None and _has_port(record, port):
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _interface_detached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record no longer has the port (it goes once libvirt let the device
    go); else the detach sent again finishes it."""
    port = _port(args)
    if record is None or port is None or _has_port(record, port):
        return Verdict.RUN_AGAIN
    return Verdict.DONE


def _metadata_changed(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record's metadata holds every key the diff sets, at its value, and
    none it removes; else run again (applying a diff twice is applying it once; a diff its
    handler refuses is refused again)."""
    diff = args.get("diff")
    if record is None or not isinstance(diff, Mapping) or not diff:
        return Verdict.RUN_AGAIN
    metadata = record.metadata if record.obj_attr_is_set("metadata") else {}
    for key, change in diff.items():
        if change == ["-"]:
            wanted = None
        elif isinstance(change, list) and len(change) == 2 and change[0] == "+":
            wanted = change[1]
        else:
            return Verdict.RUN_AGAIN
        if metadata.get(key) != wanted:
            return Verdict.RUN_AGAIN
    return Verdict.DONE


RESOLVERS: dict[str, Resolver] = {
    "pause": _power_is(PowerState.PAUSED),
    "unpause": _power_is(PowerState.RUNNING),
    "power_on": _power_is(PowerState.RUNNING),
    "resume": _resumed,
    "power_off": _power_is(PowerState.SHUTDOWN),
    "reboot": _rebooted,
    "suspend": _suspended,
    "snapshot": _snapshot_written,
    "attach_volume": _attached,
    "detach_volume": _detached,
    "swap_volume": _swapped,
    "attach_interface": _interface_attached,
    "detach_interface": _interface_detached,
    "change_instance_metadata": _metadata_changed,
    "spawn": _spawned,
    # Idempotent: a guest already gone is success, answered as deleted.
    "destroy": _run_again,
}


@dataclass(slots=True, frozen=True)
class Fact:
    """A `Found` field, read by asking the instance actor's `handler` with `arguments` of
    the request's."""

    field: str
    handler: str
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda args: {}


# What is read, besides the record, for the methods whose resolver needs more. Asking
# `settle_interrupted_snapshot` also removes the snapshot's partial files: whatever the
# verdict, an interrupted snapshot leaves none.
FACTS: dict[str, Fact] = {
    "suspend": Fact("managed_save", "has_managed_save"),
    "resume": Fact("managed_save", "has_managed_save"),
    "snapshot": Fact(
        "snapshot_image",
        "settle_interrupted_snapshot",
        lambda args: {"image_id": str(args.get("image_id", ""))},
    ),
}

# The reply of a method answered done, when its handler answers with something else than
# the instance: a snapshot with its image's path.
DONE_REPLIES: dict[str, Callable[[Instance | None, Found], Any]] = {
    "snapshot": lambda record, found: found.snapshot_image,
}


def verdict(
    method: str,
    args: Mapping[str, Any],
    record: Instance | None,
    found: Found = NOTHING_FOUND,
) -> Verdict:
    """What to do with an interrupted `method` called with `args`, the instance being
    `record` now and `found` what else was read for it. Methods without a resolver are
    `INTERRUPTED`."""
    resolver = RESOLVERS.get(method)
    return Verdict.INTERRUPTED if resolver is None else resolver(args, record, found)
