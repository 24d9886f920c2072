"""The message catalogue: the ComputeDriver contract as RPC methods, and where each one stands.

Every driver method has one entry: its message name (the driver method's own name), which
actor serves it, and its status. Only `IMPLEMENTED_*` methods are exposed over RPC; the README
table is checked against this catalogue by a test, so the two cannot drift apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    REAL_QEMU = "implemented, tested on real QEMU"
    TEST_DRIVER = "implemented, tested on the libvirt test driver only"
    # Reached over the bus, but the libvirt side is exercised by no test here: the test
    # guest has no QEMU guest agent (on real QEMU only the NotSupported refusal is tested).
    FAKE_DRIVER = "implemented, tested with an in-memory driver only"
    PLANNED = "planned"


@dataclass(slots=True, frozen=True)
class Entry:
    method: str
    scope: str  # "host" or "instance"
    arguments: str
    result: str
    status: Status
    planned_in: str = ""  # the piece of work that will bring a planned method


_HOST_REAL = [
    ("get_available_resource", "nodename: str", "ComputeNode"),
    ("get_available_nodes", "refresh: bool", "list[str]"),
    ("get_host_uptime", "-", "float (seconds)"),
    ("get_host_ip_addr", "-", "str | None"),
    ("set_host_enabled", "enabled: bool", "str"),
    ("host_maintenance_mode", "host: str, mode: bool", "str"),
    ("list_instances", "-", "list[str] (domain names)"),
    ("list_instance_uuids", "-", "list[str]"),
    ("instance_exists", "uuid: str", "bool"),
    ("get_info", "uuid: str (any instance the host knows)", "InstanceInfo"),
    ("get_per_instance_usage", "-", "dict[str, InstanceInfo]"),
    ("get_all_bw_counters", "instance_uuids: list[str] | None", "list[dict]"),
    ("get_all_volume_usage", "instance_uuids: list[str] | None", "list[dict]"),
]

_I = "instance: Instance"
_STATE = "Instance (as recorded after the operation)"
_NET = "network_info, block_device_info (both optional)"
_VOLUME = "connection_info: VolumeConnection, mountpoint: str"

# (method, arguments, result, status)
_INSTANCE = [
    (
        "spawn",
        f"{_I}, image_meta: ImageMeta, {_NET}",
        _STATE,
        Status.REAL_QEMU,
    ),
    ("destroy", f"{_I}, {_NET}, destroy_disks: bool", _STATE, Status.REAL_QEMU),
    ("cleanup", f"{_I}, {_NET}, destroy_disks: bool", "None", Status.REAL_QEMU),
    ("reboot", f"{_I}, reboot_type: SOFT|HARD, {_NET}", _STATE, Status.REAL_QEMU),
    (
        "power_off",
        f"{_I}, timeout: float | None, retry_interval: float | None",
        _STATE,
        Status.REAL_QEMU,
    ),
    ("power_on", f"{_I}, {_NET}", _STATE, Status.REAL_QEMU),
    ("pause", _I, _STATE, Status.REAL_QEMU),
    ("unpause", _I, _STATE, Status.REAL_QEMU),
    ("suspend", _I, _STATE, Status.REAL_QEMU),
    ("resume", f"{_I}, {_NET}", _STATE, Status.REAL_QEMU),
    ("soft_delete", _I, _STATE, Status.REAL_QEMU),
    ("restore", _I, _STATE, Status.REAL_QEMU),
    ("rescue", f"{_I}, image_meta: ImageMeta", _STATE, Status.REAL_QEMU),
    ("unrescue", _I, _STATE, Status.REAL_QEMU),
    ("resume_state_on_host_boot", f"{_I}, {_NET}", _STATE, Status.REAL_QEMU),
    (
        "snapshot",
        f"{_I}, image_id: str (UUID)",
        "str (the qcow2 file written; ImageMeta events)",
        Status.REAL_QEMU,
    ),
    (
        "poll_rebooting_instances",
        "timeout: float (per instance: its actor finishes its own overdue reboot)",
        "bool (rebooted)",
        Status.REAL_QEMU,
    ),
    ("attach_volume", f"{_I}, {_VOLUME}", _STATE, Status.REAL_QEMU),
    ("detach_volume", f"{_I}, {_VOLUME}", _STATE, Status.REAL_QEMU),
    (
        "swap_volume",
        f"{_I}, old_connection_info: VolumeConnection, new_connection_info: VolumeConnection, "
        "mountpoint: str, resize_to: int",
        _STATE,
        Status.REAL_QEMU,
    ),
    (
        "attach_interface",
        f"{_I}, vif: VIF, image_meta: ImageMeta | None",
        _STATE,
        Status.REAL_QEMU,
    ),
    ("detach_interface", f"{_I}, vif: VIF", _STATE, Status.REAL_QEMU),
    ("get_volume_connector", _I, "VolumeConnector", Status.REAL_QEMU),
    (
        "default_root_device_name",
        f"{_I}, image_meta: ImageMeta, root_bdm: BlockDeviceMapping | None",
        "str",
        Status.REAL_QEMU,
    ),
    (
        "default_device_names_for_instance",
        f"{_I}, root_device_name: str, block_device_mappings: BlockDeviceMappingList",
        "BlockDeviceMappingList",
        Status.REAL_QEMU,
    ),
    ("get_info", _I, "InstanceInfo", Status.REAL_QEMU),
    ("get_diagnostics", _I, "Diagnostics", Status.REAL_QEMU),
    ("block_stats", f"{_I}, disk_id: str", "list[int]", Status.REAL_QEMU),
    ("interface_stats", f"{_I}, iface_id: str", "list[int]", Status.REAL_QEMU),
    ("get_console_output", _I, "str (the serial log's tail)", Status.REAL_QEMU),
    ("get_vnc_console", _I, "ConsoleInfo", Status.REAL_QEMU),
    ("get_serial_console", _I, "ConsoleInfo", Status.REAL_QEMU),
    ("macs_for_instance", _I, "list[str]", Status.REAL_QEMU),
    (
        "change_instance_metadata",
        f"{_I}, diff: dict (key: ['+', value] | ['-'])",
        _STATE,
        Status.REAL_QEMU,
    ),
    ("set_admin_password", f"{_I}, new_pass: str", "None", Status.FAKE_DRIVER),
    ("inject_file", f"{_I}, path: str, contents: bytes", "None", Status.FAKE_DRIVER),
    ("inject_network_info", f"{_I}, network_info: NetworkInfo", _STATE, Status.REAL_QEMU),
    (
        "reset_network",
        _I,
        "None (NotSupported: QEMU guests configure their own network)",
        Status.REAL_QEMU,
    ),
]

_INSTANCE_PLANNED = [
    ("unplug_vifs", "instance: Instance, network_info: NetworkInfo", "None"),
    ("dhcp_options_for_instance", "instance: Instance", "list | None"),
    (
        "ensure_filtering_rules_for_instance",
        "instance: Instance, network_info: NetworkInfo",
        "None",
    ),
    ("refresh_instance_security_rules", "instance: Instance", "None"),
    ("unfilter_instance", "instance: Instance, network_info: NetworkInfo", "None"),
]

_MIGRATION_PLANNED = [
    (
        "check_can_live_migrate_destination",
        "instance: Instance, block_migration: bool, disk_over_commit: bool",
        "LiveMigrateData",
    ),
    (
        "check_can_live_migrate_source",
        "instance: Instance, dest_check_data: LiveMigrateData",
        "LiveMigrateData",
    ),
    ("check_instance_shared_storage_local", "instance: Instance", "dict | None"),
    (
        "pre_live_migration",
        "instance: Instance, block_device_info, network_info, migrate_data: LiveMigrateData",
        "LiveMigrateData",
    ),
    (
        "live_migration",
        "instance: Instance, dest: str, migrate_data: LiveMigrateData",
        "None (progress events)",
    ),
    (
        "post_live_migration",
        "instance: Instance, block_device_info, migrate_data: LiveMigrateData",
        "None",
    ),
    (
        "post_live_migration_at_destination",
        "instance: Instance, network_info, block_migration: bool",
        "None",
    ),
    (
        "rollback_live_migration_at_destination",
        "instance: Instance, network_info, block_device_info, destroy_disks: bool",
        "None",
    ),
]

CATALOGUE: tuple[Entry, ...] = (
    *(Entry(m, "host", a, r, Status.REAL_QEMU) for m, a, r in _HOST_REAL),
    *(Entry(m, "instance", a, r, status) for m, a, r, status in _INSTANCE),
    *(
        Entry(m, "instance", a, r, Status.PLANNED, "host networking")
        for m, a, r in _INSTANCE_PLANNED
    ),
    *(
        Entry(m, "instance", a, r, Status.PLANNED, "live migration")
        for m, a, r in _MIGRATION_PLANNED
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
