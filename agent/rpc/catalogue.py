"""The message catalogue: the ComputeDriver contract as RPC methods, and where each one stands.

Every driver method has one entry: its message name (the driver method's own name), which
actor serves it, and its status. Only implemented methods are exposed over RPC. Their
arguments and results are read from the handlers' signatures, so the README table (checked
against this catalogue by a test) cannot drift from what the agent serves.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors import Actor, host_contract
from actors.firewall import FirewallActor
from actors.host import HostActor
from actors.instance import InstanceActor
from actors.instance import contract as instance_contract
from actors.tracker import ResourceTrackerActor


class Status(enum.Enum):
    REAL_QEMU = "implemented, tested on real QEMU"
    TEST_DRIVER = "implemented, tested on the libvirt test driver only"
    # Reached over the bus, but the libvirt side is exercised by no test here: the test
    # guest has no QEMU guest agent (on real QEMU only the NotSupported refusal is tested).
    FAKE_DRIVER = "implemented, tested with an in-memory driver only"
    # Served, and answered NotSupported with the reason in the result column.
    REFUSED = "refused with its reason (tested on the libvirt test driver)"
    PLANNED = "planned"


@dataclass(slots=True, frozen=True)
class Entry:
    """One driver method. An implemented one's arguments and result are read from its handler;
    the notes say only what the signature cannot. A planned one has no handler yet: its
    `planned` (arguments, result) are written by hand."""

    method: str
    scope: str  # "host", "instance", "tracker" or "firewall"
    status: Status
    arguments_note: str = ""
    result_note: str = ""
    planned_in: str = ""  # the piece of work that will bring a planned method
    planned: tuple[str, str] = ("", "")

    def handler(self) -> Callable[..., Any]:
        return _ACTORS[self.scope].handlers[self.method]

    @property
    def arguments(self) -> str:
        if self.status is Status.PLANNED:
            return self.planned[0]
        parameters = list(inspect.signature(self.handler()).parameters.values())[1:]  # self
        return _noted(", ".join(_parameter(p) for p in parameters) or "-", self.arguments_note)

    @property
    def result(self) -> str:
        if self.status is Status.PLANNED:
            return self.planned[1]
        if self.status is Status.REFUSED:
            return self.result_note  # the handler never returns
        returned = inspect.signature(self.handler()).return_annotation
        return _noted(_annotation(returned), self.result_note)


_ACTORS: dict[str, type[Actor]] = {
    "host": HostActor,
    "instance": InstanceActor,
    "tracker": ResourceTrackerActor,
    "firewall": FirewallActor,
}


def _annotation(annotation: object) -> str:
    # Handler modules use postponed annotations: the text as written is the readable form.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _parameter(parameter: inspect.Parameter) -> str:
    text = f"{parameter.name}: {_annotation(parameter.annotation)}"
    if parameter.default is not parameter.empty:
        text = f"{text} = {parameter.default!r}"
    return text


def _noted(text: str, note: str) -> str:
    return f"{text} ({note})" if note else text


_R = Status.REAL_QEMU
_RECORDED = "as recorded after the operation"

# (method, arguments note, result note)
_HOST_REAL = [
    ("get_available_resource", "", ""),
    ("get_available_nodes", "", ""),
    ("get_host_uptime", "", "seconds"),
    ("get_host_ip_addr", "", ""),
    ("set_host_enabled", "", ""),
    ("host_maintenance_mode", "", ""),
    ("list_instances", "", "domain names"),
    ("list_instance_uuids", "", ""),
    ("instance_exists", "", ""),
    ("get_info", "any instance the host knows", ""),
    ("get_per_instance_usage", "", ""),
    ("get_all_bw_counters", "", ""),
    ("get_all_volume_usage", "", ""),
]

_T = Status.TEST_DRIVER
# The rest of the contract, at RPC API 1.1: (method, status, arguments note, result note).
_HOST_MORE = [
    ("init_host", _T, "adopts every domain again", "the adopted uuids, sorted"),
    ("get_num_instances", _T, "", "domains, running or not"),
    ("get_host_stats", _T, "", "nova's host stats, from the node the audit reads"),
    ("get_host_cpu_stats", _R, "", "kernel, idle, user, iowait (ns); frequency (MHz)"),
    (
        "manage_image_cache",
        _T,
        "uuids alive besides this host's domains and instance actors",
        "removed, in_use, waiting, dropped_references; also every image_cache_interval",
    ),
    ("legacy_nwinfo", _T, "", "False: network info is NetworkInfo objects"),
]
_HOST_REFUSED = [
    "get_console_pool_info",
    "host_power_action",
    "add_to_aggregate",
    "remove_from_aggregate",
    "undo_aggregate_operation",
    "register_event_listener",
    "emit_event",
]
_INSTANCE_MORE = [
    ("instance_on_disk", _T, "no domain needed", "its directory is here and writable"),
    ("get_instance_disk_info", _R, "", "nova's JSON list of local disks"),
    ("get_device_name_for_instance", _R, "", "the next free /dev name on the bus"),
    ("trigger_crash_dump", _R, "a running guest", "an NMI injected"),
    (
        "post_interrupted_snapshot_cleanup",
        _T,
        "image_id: the snapshot's UUID (its partial files are named by it)",
        "the partial files removed",
    ),
    ("get_instance_diagnostics", _T, "", "as get_diagnostics"),
    ("network_binding_host_id", _T, "", "the instance's host, else this agent's"),
    ("get_spice_console", _R, "[guest] spice_enabled", "host, port; tls_port with TLS"),
]
_INSTANCE_REFUSED = ["get_rdp_console", "get_mks_console", "set_bootable", "pre_block_migration"]

# (method, status, arguments note, result note)
_INSTANCE = [
    ("spawn", _R, "", _RECORDED),
    ("destroy", _R, "", _RECORDED),
    ("cleanup", _R, "", ""),
    ("reboot", _R, "reboot_type: SOFT or HARD", _RECORDED),
    ("power_off", _R, "timeout: seconds for a clean shutdown, then hard", _RECORDED),
    ("power_on", _R, "", _RECORDED),
    ("pause", _R, "", _RECORDED),
    ("unpause", _R, "", _RECORDED),
    ("suspend", _R, "", _RECORDED),
    ("resume", _R, "", _RECORDED),
    ("soft_delete", _R, "", _RECORDED),
    ("restore", _R, "", _RECORDED),
    ("rescue", _R, "", _RECORDED),
    ("unrescue", _R, "", _RECORDED),
    ("resume_state_on_host_boot", _R, "", _RECORDED),
    ("snapshot", _R, "image_id: a UUID", "the qcow2 file written; ImageMeta events"),
    (
        "poll_rebooting_instances",
        _R,
        "per instance: its actor finishes its own overdue reboot",
        "rebooted",
    ),
    ("attach_volume", _R, "", _RECORDED),
    ("detach_volume", _R, "", _RECORDED),
    ("swap_volume", _R, "", _RECORDED),
    ("attach_interface", _R, "", _RECORDED),
    ("detach_interface", _R, "", _RECORDED),
    ("get_volume_connector", _R, "", ""),
    ("default_root_device_name", _R, "", ""),
    ("default_device_names_for_instance", _R, "", ""),
    ("get_info", _R, "", ""),
    ("get_diagnostics", _R, "", ""),
    ("block_stats", _R, "", ""),
    ("interface_stats", _R, "", ""),
    ("get_console_output", _R, "", "the serial log's tail"),
    ("get_vnc_console", _R, "", ""),
    ("get_serial_console", _R, "", ""),
    ("macs_for_instance", _R, "", ""),
    ("change_instance_metadata", _R, "diff: key -> ['+', value] or ['-']", _RECORDED),
    ("set_admin_password", Status.FAKE_DRIVER, "", ""),
    ("inject_file", Status.FAKE_DRIVER, "", ""),
    ("inject_network_info", _R, "", _RECORDED),
    ("reset_network", _R, "", "NotSupported: QEMU guests configure their own network"),
]

# The resource tracker's claims and audit (docs/resources.md): (method, status, arguments
# note, result note). Not driver methods: nova's compute manager makes them around the
# driver's. Move claims wait for live migration to be made on real QEMU.
_TRACKER = [
    (
        "instance_claim",
        _R,
        "flavor: the instance's own when None",
        "ClaimFailed if it does not fit",
    ),
    ("abort_instance_claim", _R, "", "whether it held a claim"),
    ("move_claim", _T, "on the destination; flavor: a resize's new one", ""),
    ("drop_move_claim", _T, "on the destination, at rollback", "whether there was one"),
    ("confirm_move_claim", _T, "on the destination, at success", "the instance's claim here"),
    (
        "drop_move_claim_at_source",
        _T,
        "on the source, once the instance left",
        "whether it had one",
    ),
    ("update_available_resource", _R, "", "the audited node, saved and published if changed"),
    ("get_compute_node", _R, "", "the node as the tracker reports it"),
]

# Host networking (docs/networking.md): (method, status, arguments note, result note).
_NETWORK_INSTANCE = [
    ("plug_vifs", _R, "taps of a running guest", "what changed: 'tap -> bridge'"),
    ("unplug_vifs", _R, "", "what changed: 'tap -/- bridge'"),
    ("dhcp_options_for_instance", _R, "", "router, dns-server, server-ip-address; None: none"),
    (
        "ensure_filtering_rules_for_instance",
        _R,
        "groups read from the object backend; the guest need not exist yet",
        "the filters written",
    ),
    ("refresh_instance_security_rules", _R, "", "the filters written"),
    ("unfilter_instance", _R, "", "the filters removed"),
]
_NETWORK_HOST = [
    ("refresh_security_group_rules", _R, "", "the filters written; [] while deferring"),
    ("refresh_security_group_members", _R, "", "the filters written; [] while deferring"),
    ("refresh_provider_fw_rules", _R, "", "the filters written; [] while deferring"),
    ("filter_defer_apply_on", _R, "", "refreshes held back, at most [firewall] defer_max_seconds"),
    ("filter_defer_apply_off", _R, "", "the filters written, each once"),
]

# Live migration (docs/migration.md): (method, status, arguments note, result note).
_MIGRATION = [
    (
        "live_migration",
        _R,
        "on the source",
        "the Migration as it starts; status and progress events",
    ),
    ("live_migration_abort", _R, "on the source", "whether it was cancelled in time"),
    ("live_migration_force_complete", _R, "on the source", "whether a job ran to force"),
    ("check_can_live_migrate_destination", _R, "on the destination", "with a storage probe"),
    ("check_can_live_migrate_destination_cleanup", _R, "on the destination", ""),
    ("check_can_live_migrate_source", _R, "on the source", "is_shared_instance_path filled in"),
    (
        "pre_live_migration",
        _R,
        "on the destination: incoming slot, move claim, directory, a block migration's disks",
        "",
    ),
    ("post_live_migration", _R, "on the source, after success", ""),
    ("post_live_migration_at_destination", _R, "on the destination, after success", _RECORDED),
    ("rollback_live_migration_at_destination", _R, "on the destination, after a failure", ""),
]

# Resize and cold migration (docs/resize.md): (method, status, arguments note, result note).
# The `_at_destination` and check steps are not driver methods: they are the destination's
# part of nova's compute-manager steps (prep_resize, confirm_resize, revert_resize).
_RESIZE = [
    (
        "migrate_disk_and_power_off",
        _R,
        "on the source; flavor: the new one; timeout: seconds for a clean shutdown, then hard",
        "nova's disk info (JSON); the disks sent over libvirt volume streams",
    ),
    (
        "finish_migration",
        _R,
        "on the destination; instance: with its new flavor",
        "recorded resized; move claim held",
    ),
    ("confirm_migration", _R, "on the source", "the Migration, confirmed"),
    (
        "finish_revert_migration",
        _R,
        "on the source, after revert_migration_at_destination",
        "recorded with its old flavor",
    ),
    (
        "check_can_resize_destination",
        _R,
        "on the destination, asked by the source; nothing claimed",
        "its libvirt URI, instance directory and image cache",
    ),
    (
        "confirm_migration_at_destination",
        _R,
        "on the destination, asked by confirm_migration",
        "the move claim made the instance's; recorded active",
    ),
    (
        "revert_migration_at_destination",
        _R,
        "on the destination, before finish_revert_migration",
        "domain, files and move claim removed",
    ),
]

CATALOGUE: tuple[Entry, ...] = (
    *(Entry(m, "host", _R, a, r) for m, a, r in _HOST_REAL),
    *(Entry(m, "instance", status, a, r) for m, status, a, r in _INSTANCE),
    *(Entry(m, "tracker", status, a, r) for m, status, a, r in _TRACKER),
    *(Entry(m, "instance", status, a, r) for m, status, a, r in _NETWORK_INSTANCE),
    *(Entry(m, "firewall", status, a, r) for m, status, a, r in _NETWORK_HOST),
    *(Entry(m, "instance", status, a, r) for m, status, a, r in _MIGRATION),
    *(Entry(m, "instance", status, a, r) for m, status, a, r in _RESIZE),
    *(Entry(m, "host", status, a, r) for m, status, a, r in _HOST_MORE),
    *(
        Entry(m, "host", Status.REFUSED, result_note=f"NotSupported: {host_contract.REFUSALS[m]}")
        for m in _HOST_REFUSED
    ),
    *(Entry(m, "instance", status, a, r) for m, status, a, r in _INSTANCE_MORE),
    *(
        Entry(
            m,
            "instance",
            Status.REFUSED,
            result_note=f"NotSupported: {instance_contract.REFUSALS[m]}",
        )
        for m in _INSTANCE_REFUSED
    ),
)


def exposed_methods() -> frozenset[str]:
    """The methods callers may reach over RPC: those implemented."""
    return frozenset(e.method for e in CATALOGUE if e.status is not Status.PLANNED)


def markdown_table() -> str:
    """The README's driver-method table, from the catalogue."""
    lines = [
        "| driver method | served by | arguments | result | status |",
        "|---|---|---|---|---|",
    ]
    for entry in CATALOGUE:
        status = entry.status.value
        if entry.planned_in:
            status = f"{status} ({entry.planned_in})"
        # A bare '|' inside a cell (`str | None`) would end the cell.
        arguments, result = (text.replace("|", "\\|") for text in (entry.arguments, entry.result))
        lines.append(
            f"| `{entry.method}` | {entry.scope} actor | {arguments} | {result} | {status} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
