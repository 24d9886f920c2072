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

_INSTANCE_PLANNED = [
    (
        "spawn",
        "instance: Instance, image_meta: ImageMeta, block_device_info, network_info: NetworkInfo",
        "None",
    ),
    ("destroy", "instance: Instance, network_info, block_device_info, destroy_disks: bool", "None"),
    ("cleanup", "instance: Instance, network_info, block_device_info, destroy_disks: bool", "None"),
    ("reboot", "instance: Instance, reboot_type: SOFT|HARD", "None"),
    ("power_off", "instance: Instance, timeout: int, retry_interval: int", "None"),
    ("power_on", "instance: Instance", "None"),
    ("pause", "instance: Instance", "None"),
    ("unpause", "instance: Instance", "None"),
    ("suspend", "instance: Instance", "None"),
    ("resume", "instance: Instance", "None"),
    ("soft_delete", "instance: Instance", "None"),
    ("restore", "instance: Instance", "None"),
    ("rescue", "instance: Instance, image_meta: ImageMeta", "None"),
    ("unrescue", "instance: Instance", "None"),
    ("resume_state_on_host_boot", "instance: Instance", "None"),
    ("snapshot", "instance: Instance, image_id: str", "None (progress events)"),
    ("poll_rebooting_instances", "timeout: int, instances: list[Instance]", "None"),
    (
        "attach_volume",
        "instance: Instance, connection_info: VolumeConnection, mountpoint: str",
        "None",
    ),
    (
        "detach_volume",
        "instance: Instance, connection_info: VolumeConnection, mountpoint: str",
        "None",
    ),
    ("swap_volume", "instance: Instance, old: VolumeConnection, new: VolumeConnection", "None"),
    ("attach_interface", "instance: Instance, vif: VIF", "None"),
    ("detach_interface", "instance: Instance, vif: VIF", "None"),
    ("get_volume_connector", "instance: Instance", "VolumeConnector"),
    ("default_root_device_name", "instance: Instance, image_meta: ImageMeta", "str"),
    (
        "default_device_names_for_instance",
        "instance: Instance, root_device_name: str",
        "BlockDeviceMappingList",
    ),
    ("get_info", "instance: Instance", "InstanceInfo"),
    ("get_diagnostics", "instance: Instance", "Diagnostics"),
    ("block_stats", "instance: Instance, disk_id: str", "list[int]"),
    ("interface_stats", "instance: Instance, iface_id: str", "list[int]"),
    ("get_console_output", "instance: Instance", "str"),
    ("get_vnc_console", "instance: Instance", "ConsoleInfo"),
    ("get_serial_console", "instance: Instance", "ConsoleInfo"),
    ("macs_for_instance", "instance: Instance", "set[str] | None"),
    ("change_instance_metadata", "instance: Instance, diff: dict", "None"),
    ("set_admin_password", "instance: Instance, new_pass: str", "None"),
    ("inject_file", "instance: Instance, path: str, contents: bytes", "None"),
    ("inject_network_info", "instance: Instance, network_info: NetworkInfo", "None"),
    ("reset_network", "instance: Instance", "None"),
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
    *(
        Entry(m, "instance", a, r, Status.PLANNED, "instance actor and Guest layer")
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
        lines.append(
            f"| `{entry.method}` | {entry.scope} actor | {entry.arguments} | {entry.result} "
            f"| {status} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
