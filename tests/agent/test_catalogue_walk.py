"""The whole catalogue over the bus: every method an agent serves answers, on the embedded
default (libvirt's test driver), with a result or a typed refusal — never `UnknownMethod`.

One agent and one guest; the calls run in `CALLS`' order (spawn first, destroy last), each
with well-formed arguments. A method answers a result, or `NotSupported` with a reason, or —
listed in `REFUSED_HERE` with the error class and why — a typed refusal that is this lone
agent's situation (no volume attached, no peer to migrate to), not a missing method.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from actors.instance.errors import (
    InstanceInvalidState,
    InterfaceNotAttached,
    InvalidInstanceArgument,
    NotSupported,
    VolumeNotAttached,
)
from actors.migration.errors import MigrationNotFound, MigrationPreCheckError, ResizeRefused
from agent.client import ComputeClient
from agent.errors import HypervisorError, InvalidArguments, UnknownMethod
from agent.rpc.catalogue import CATALOGUE, Status, exposed_methods
from agent.virt.guest.errors import ConsoleUnavailable
from schemas.errors import VirtactorError
from schemas.objects import (
    BlockDeviceMappingList,
    Instance,
    LiveMigrateData,
    Migration,
    NetworkInfo,
)
from tests.actors.instance.fakes import IMAGE_ID, file_volume, image_meta, instance, vif
from tests.agent.embedded import domain_removed, embedded_agent, embedded_config, make_root_image
from tests.conftest import ON_SESSION_LOOP

HOST = "compute-walk"

pytestmark = ON_SESSION_LOOP

# Not served yet: none.
PLANNED: set[str] = set()


@dataclass
class Walk:
    client: ComputeClient
    guest: Instance
    tmp_path: Path


Args = Callable[[Walk], dict[str, Any]]


def _guest(w: Walk) -> dict[str, Any]:
    return {"instance": w.guest}


def _with(**extra: Callable[[Walk], Any]) -> Args:
    return lambda w: {"instance": w.guest, **{k: make(w) for k, make in extra.items()}}


def _host(**extra: Callable[[Walk], Any]) -> Args:
    return lambda w: {k: make(w) for k, make in extra.items()}


def _migration(w: Walk) -> Migration:
    return Migration(
        uuid=str(uuid.UUID(int=1)),
        instance_uuid=w.guest.uuid,
        migration_type="live-migration",
        status="running",
        source_compute=HOST,
        dest_compute=HOST,
    )


def _flavor(w: Walk) -> Any:
    return w.guest.flavor


def _no_volume(w: Walk) -> Any:
    return file_volume(str(w.tmp_path / "volume.raw"))


# (method, arguments), in the order they are called.
CALLS: list[tuple[str, Args]] = [
    ("spawn", _with(image_meta=lambda w: image_meta())),
    ("init_host", _host()),
    ("get_available_resource", _host(nodename=lambda w: HOST)),
    ("get_available_nodes", _host()),
    ("get_host_uptime", _host()),
    ("get_host_ip_addr", _host()),
    ("set_host_enabled", _host(enabled=lambda w: True)),
    ("host_maintenance_mode", _host(host=lambda w: HOST, mode=lambda w: False)),
    ("list_instances", _host()),
    ("list_instance_uuids", _host()),
    ("instance_exists", _host(uuid=lambda w: w.guest.uuid)),
    ("get_info", _guest),
    ("get_per_instance_usage", _host()),
    ("get_all_bw_counters", _host()),
    ("get_all_volume_usage", _host()),
    ("get_num_instances", _host()),
    ("get_host_stats", _host()),
    ("get_host_cpu_stats", _host()),
    ("manage_image_cache", _host()),
    ("legacy_nwinfo", _host()),
    ("get_console_pool_info", _host(console_type=lambda w: "vnc")),
    ("host_power_action", _host(action=lambda w: "reboot")),
    ("add_to_aggregate", _host(host=lambda w: HOST, aggregate=lambda w: {})),
    ("remove_from_aggregate", _host(host=lambda w: HOST, aggregate=lambda w: {})),
    (
        "undo_aggregate_operation",
        _host(host=lambda w: HOST, op=lambda w: "add", aggregate=lambda w: {}),
    ),
    ("register_event_listener", _host()),
    ("emit_event", _host()),
    ("get_diagnostics", _guest),
    ("get_instance_diagnostics", _guest),
    ("block_stats", _with(disk_id=lambda w: "vda")),
    ("interface_stats", _with(iface_id=lambda w: "tap0")),
    ("get_console_output", _guest),
    ("get_vnc_console", _guest),
    ("get_serial_console", _guest),
    ("get_spice_console", _guest),
    ("get_rdp_console", _guest),
    ("get_mks_console", _guest),
    ("macs_for_instance", _guest),
    ("change_instance_metadata", _with(diff=lambda w: {"role": ["+", "walk"]})),
    ("set_admin_password", _with(new_pass=lambda w: "s3cret")),
    ("inject_file", _with(path=lambda w: "/etc/motd", contents=lambda w: b"hi\n")),
    ("inject_network_info", _with(network_info=lambda w: NetworkInfo())),
    ("reset_network", _guest),
    # host networking (the firewall is off here: the filtering methods change nothing)
    ("plug_vifs", _with(network_info=lambda w: NetworkInfo())),
    ("unplug_vifs", _with(network_info=lambda w: NetworkInfo())),
    ("dhcp_options_for_instance", _guest),
    ("ensure_filtering_rules_for_instance", _with(network_info=lambda w: NetworkInfo())),
    ("refresh_instance_security_rules", _guest),
    ("unfilter_instance", _with(network_info=lambda w: NetworkInfo())),
    ("filter_defer_apply_on", _host()),
    ("refresh_security_group_rules", _host(security_group_id=lambda w: str(uuid.uuid4()))),
    ("refresh_security_group_members", _host(security_group_id=lambda w: str(uuid.uuid4()))),
    ("refresh_provider_fw_rules", _host()),
    ("filter_defer_apply_off", _host()),
    ("network_binding_host_id", _guest),
    ("get_volume_connector", _guest),
    ("default_root_device_name", _with(image_meta=lambda w: image_meta())),
    (
        "default_device_names_for_instance",
        _with(
            root_device_name=lambda w: "/dev/vda",
            block_device_mappings=lambda w: BlockDeviceMappingList(),
        ),
    ),
    ("get_device_name_for_instance", _guest),
    ("get_instance_disk_info", _guest),
    ("instance_on_disk", _guest),
    ("attach_volume", _with(connection_info=_no_volume, mountpoint=lambda w: "/dev/vdb")),
    ("detach_volume", _with(connection_info=_no_volume, mountpoint=lambda w: "/dev/vdb")),
    (
        "swap_volume",
        _with(
            old_connection_info=_no_volume,
            new_connection_info=_no_volume,
            mountpoint=lambda w: "/dev/vdb",
        ),
    ),
    ("attach_interface", _with(vif=lambda w: vif())),
    ("detach_interface", _with(vif=lambda w: vif())),
    ("set_bootable", _with(is_bootable=lambda w: True)),
    ("trigger_crash_dump", _guest),
    ("snapshot", _with(image_id=lambda w: str(uuid.uuid4()))),
    ("post_interrupted_snapshot_cleanup", _with(image_id=lambda w: str(uuid.uuid4()))),
    ("reboot", _guest),
    ("poll_rebooting_instances", _host(timeout=lambda w: 60.0)),
    ("pause", _guest),
    ("unpause", _guest),
    ("suspend", _guest),
    ("resume", _guest),
    ("rescue", _with(image_meta=lambda w: image_meta())),
    ("unrescue", _guest),
    ("power_off", _guest),
    ("power_on", _guest),
    ("soft_delete", _guest),
    ("restore", _guest),
    ("resume_state_on_host_boot", _guest),
    # the resource tracker
    ("instance_claim", _guest),
    ("update_available_resource", _host()),
    ("get_compute_node", _host()),
    ("move_claim", _with(migration=_migration)),
    ("confirm_move_claim", _host(migration=_migration)),
    ("drop_move_claim", _host(migration=_migration)),
    ("drop_move_claim_at_source", _host(migration=_migration)),
    ("abort_instance_claim", _guest),
    # resize, with no peer: each step refuses what it cannot do alone (its destination's revert
    # last of all: it removes the guest)
    ("check_can_resize_destination", _with(flavor=_flavor, migration=_migration)),
    (
        "migrate_disk_and_power_off",
        _with(dest=lambda w: HOST, flavor=_flavor, migration=_migration),
    ),
    (
        "finish_migration",
        _with(
            migration=_migration,
            disk_info=lambda w: "[]",
            network_info=lambda w: None,
            image_meta=lambda w: image_meta(),
            resize_instance=lambda w: False,
        ),
    ),
    ("confirm_migration", _with(migration=_migration)),
    ("finish_revert_migration", _with(network_info=lambda w: None, migration=_migration)),
    ("confirm_migration_at_destination", _with(migration=_migration)),
    # live migration, with no peer: each step refuses what it cannot do alone
    ("check_can_live_migrate_destination", _guest),
    ("check_can_live_migrate_source", _with(dest_check_data=lambda w: LiveMigrateData())),
    (
        "check_can_live_migrate_destination_cleanup",
        _with(dest_check_data=lambda w: LiveMigrateData()),
    ),
    ("pre_block_migration", _guest),
    ("pre_live_migration", _with(migrate_data=lambda w: LiveMigrateData())),
    ("live_migration", _with(dest=lambda w: HOST, migration=_migration)),
    ("live_migration_force_complete", _guest),
    ("live_migration_abort", _with(migration_id=lambda w: str(uuid.UUID(int=1)))),
    ("post_live_migration", _guest),
    ("post_live_migration_at_destination", _guest),
    ("rollback_live_migration_at_destination", _guest),
    ("revert_migration_at_destination", _with(migration=_migration)),
    ("cleanup", _guest),
    ("destroy", _guest),
]

# Typed refusals of this lone test-driver agent's situation: method -> (error, why).
REFUSED_HERE: dict[str, tuple[type[VirtactorError], str]] = {
    "interface_stats": (HypervisorError, "libvirt knows no interface tap0 of the guest"),
    "get_vnc_console": (ConsoleUnavailable, "the test driver allocates no VNC port"),
    "get_serial_console": (ConsoleUnavailable, "the test driver allocates no pty"),
    "get_spice_console": (ConsoleUnavailable, "the guest has no SPICE display (off by default)"),
    "detach_volume": (VolumeNotAttached, "no volume could be attached (test driver)"),
    "swap_volume": (VolumeNotAttached, "no volume could be attached (test driver)"),
    "detach_interface": (InterfaceNotAttached, "no port could be attached (test driver)"),
    "check_can_live_migrate_destination": (MigrationPreCheckError, "no peer to migrate to"),
    "check_can_live_migrate_source": (MigrationPreCheckError, "no peer to migrate to"),
    "live_migration": (MigrationPreCheckError, "the destination is this host"),
    "pre_live_migration": (InvalidInstanceArgument, "no migration started, so none to name"),
    "live_migration_force_complete": (MigrationNotFound, "no live migration runs"),
    "live_migration_abort": (MigrationNotFound, "no live migration runs"),
    "check_can_resize_destination": (ResizeRefused, "the guest is here already"),
    "migrate_disk_and_power_off": (ResizeRefused, "the destination is this host"),
    "finish_migration": (ResizeRefused, "the guest is here already"),
    "confirm_migration": (InvalidInstanceArgument, "the destination is this host"),
    "finish_revert_migration": (InstanceInvalidState, "no resize left the guest waiting"),
}


@pytest_asyncio.fixture(loop_scope="session")
async def walk(tmp_path: Path) -> AsyncIterator[Walk]:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    guest = instance(str(uuid.uuid4()), name="walk-guest", image_ref=IMAGE_ID)
    async with domain_removed(guest.uuid), embedded_agent(config) as (_agent, client):
        yield Walk(client, guest, tmp_path)


async def test_the_walk_calls_every_served_method_once_and_leaves_out_only_the_planned() -> None:
    called = [method for method, _args in CALLS]
    served = {e.method for e in CATALOGUE if e.status is not Status.PLANNED}
    planned = {e.method for e in CATALOGUE if e.status is Status.PLANNED}

    assert len(called) == len(set(called))
    assert set(called) == served == set(exposed_methods())
    assert planned == PLANNED
    assert set(REFUSED_HERE) <= served


async def test_every_served_method_answers_a_result_or_a_typed_refusal(walk: Walk) -> None:
    wrong: list[str] = []
    for method, make_args in CALLS:
        args = make_args(walk)
        routed = "instance" in args or method == "poll_rebooting_instances"
        try:
            await walk.client.call(HOST, method, args, instance=walk.guest.uuid if routed else None)
        except (UnknownMethod, InvalidArguments) as exc:
            wrong.append(f"{method}: {exc!r}")
        except NotSupported as exc:
            if not exc.reason or method in REFUSED_HERE:
                wrong.append(f"{method}: {exc!r}")
        except VirtactorError as exc:
            expected = REFUSED_HERE.get(method, (None, ""))[0]
            if expected is None or not isinstance(exc, expected):
                wrong.append(f"{method}: {exc!r}")
        else:
            if method in REFUSED_HERE:
                wrong.append(f"{method} answered although {REFUSED_HERE[method][1]}")
    assert not wrong, "\n".join(wrong)
