"""The RPC API version: what this release serves, and what a client sends each host.

`RPC_API_VERSION` ("MAJOR.MINOR") names the methods and arguments this release serves; the
objects inside a request are versioned apart, by the manifest. An agent serves a request of
its own major and a minor no newer than its own (`agent.rpc.server.check_rpc_version`), and
refuses any other with `IncompatibleRpcVersion` naming the version it serves. A new method or
argument moves the minor; a method removed or changed in meaning moves the major
(docs/upgrades.md).

History:
    1.0: the first release (0.1.0).
    1.1: the resource tracker's methods (instance_claim, abort_instance_claim, move_claim,
         drop_move_claim, confirm_move_claim, drop_move_claim_at_source,
         update_available_resource, get_compute_node) and live migration's
         (live_migration, live_migration_abort, live_migration_force_complete,
         check_can_live_migrate_destination(_cleanup), check_can_live_migrate_source,
         pre_live_migration, post_live_migration(_at_destination),
         rollback_live_migration_at_destination); the rest of the ComputeDriver contract
         (init_host, get_num_instances, get_host_stats, get_host_cpu_stats,
         manage_image_cache, legacy_nwinfo, instance_on_disk, get_instance_disk_info,
         get_device_name_for_instance, trigger_crash_dump,
         post_interrupted_snapshot_cleanup, get_instance_diagnostics,
         network_binding_host_id) and its refusals (get_console_pool_info,
         host_power_action, add_to_aggregate, remove_from_aggregate,
         undo_aggregate_operation, register_event_listener, emit_event, get_rdp_console,
         get_mks_console, set_bootable, pre_block_migration); host networking
         (plug_vifs, unplug_vifs, dhcp_options_for_instance,
         ensure_filtering_rules_for_instance, refresh_instance_security_rules,
         unfilter_instance, refresh_security_group_rules, refresh_security_group_members,
         refresh_provider_fw_rules, filter_defer_apply_on, filter_defer_apply_off); resize
         and cold migration
         (migrate_disk_and_power_off, finish_migration, confirm_migration,
         finish_revert_migration, and the destination's check_can_resize_destination,
         confirm_migration_at_destination, revert_migration_at_destination);
         get_spice_console.

A client sends the older of `RPC_API_VERSION` and its cap (`ComputeClient(rpc_version_cap=)`,
`[rpc] rpc_version_cap`), and per host the older version that host said it serves
(`RpcVersions`, `negotiated`), so a client of release N keeps talking to agents of N-1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from agent.errors import IncompatibleRpcVersion, InvalidRpcVersionCap
from schemas import parse_version

if TYPE_CHECKING:
    from agent.rpc.envelope import Request

RPC_API_VERSION = "1.1"

# The version that brought each method newer than 1.0 (as nova's RPC client prepares each
# call at the version its method needs): a request carries the older of that and what the
# client may send the host, so a method every release serves still reaches agents of older
# releases, a fanout included, while a new method sent to one is refused as unknown.
METHOD_VERSIONS: dict[str, str] = {
    method: "1.1"
    for method in (
        "instance_claim",
        "abort_instance_claim",
        "move_claim",
        "drop_move_claim",
        "confirm_move_claim",
        "drop_move_claim_at_source",
        "update_available_resource",
        "get_compute_node",
        "live_migration",
        "live_migration_abort",
        "live_migration_force_complete",
        "check_can_live_migrate_destination",
        "check_can_live_migrate_destination_cleanup",
        "check_can_live_migrate_source",
        "pre_live_migration",
        "post_live_migration",
        "post_live_migration_at_destination",
        "rollback_live_migration_at_destination",
        "init_host",
        "get_num_instances",
        "get_host_stats",
        "get_host_cpu_stats",
        "manage_image_cache",
        "legacy_nwinfo",
        "get_console_pool_info",
        "host_power_action",
        "add_to_aggregate",
        "remove_from_aggregate",
        "undo_aggregate_operation",
        "register_event_listener",
        "emit_event",
        "instance_on_disk",
        "get_instance_disk_info",
        "get_device_name_for_instance",
        "trigger_crash_dump",
        "post_interrupted_snapshot_cleanup",
        "get_instance_diagnostics",
        "network_binding_host_id",
        "get_rdp_console",
        "get_mks_console",
        "set_bootable",
        "pre_block_migration",
        "plug_vifs",
        "unplug_vifs",
        "dhcp_options_for_instance",
        "ensure_filtering_rules_for_instance",
        "refresh_instance_security_rules",
        "unfilter_instance",
        "refresh_security_group_rules",
        "refresh_security_group_members",
        "refresh_provider_fw_rules",
        "filter_defer_apply_on",
        "filter_defer_apply_off",
        "migrate_disk_and_power_off",
        "finish_migration",
        "confirm_migration",
        "finish_revert_migration",
        "check_can_resize_destination",
        "confirm_migration_at_destination",
        "revert_migration_at_destination",
        "get_spice_console",
    )
}

T = TypeVar("T")


def capped_rpc_version(current: str, cap: str | None) -> str:
    """The RPC API version a client of `current` sends under `cap`: `current`, or `cap` when
    older. Raises `InvalidRpcVersionCap` for a cap that is not "MAJOR.MINOR", is newer than
    `current` or is of another major: this release cannot speak it."""
    if cap is None:
        return current
    try:
        wanted = parse_version(cap)
    except ValueError:
        raise InvalidRpcVersionCap(cap=cap, reason="it is not of the form 'MAJOR.MINOR'") from None
    ours = parse_version(current)
    if wanted.major != ours.major:
        reason = f"it is of another major than this release's RPC API version {current}"
        raise InvalidRpcVersionCap(cap=cap, reason=reason)
    if wanted.minor > ours.minor:
        reason = f"it is newer than this release's RPC API version {current}"
        raise InvalidRpcVersionCap(cap=cap, reason=reason)
    return cap


def served_instead(sent: str, served: object) -> str | None:
    """The version to send again at after an agent refused `sent` naming `served`: `served`
    when it is of the same major and an older minor; None when the refusal is final (another
    major, or nothing older to step down to)."""
    if not isinstance(served, str):
        return None
    try:
        theirs, ours = parse_version(served), parse_version(sent)
    except ValueError:
        return None
    if theirs.major == ours.major and theirs.minor < ours.minor:
        return served
    return None


def version_for(method: str, allowed: str) -> str:
    """The RPC API version to send `method` at when `allowed` is the newest the client may
    send: the older of the two (`METHOD_VERSIONS`, 1.0 for the first release's methods)."""
    needed = METHOD_VERSIONS.get(method, "1.0")
    return min(needed, allowed, key=parse_version)


class RpcVersions:
    """The RPC API version a client sends each host: its own (`own`), or the older one that
    host said it serves. A learnt version holds until `forget(host)`: the client forgets it
    when the host's manifest changes (its agent was replaced: upgraded, or rolled back), and
    relearns it from a new refusal if the agent is still older."""

    __slots__ = ("_hosts", "own")

    def __init__(self, own: str) -> None:
        self.own = own
        self._hosts: dict[str, str] = {}

    def for_host(self, host: str) -> str:
        return self._hosts.get(host, self.own)

    def for_all(self) -> str:
        """The version a fanout carries: the oldest any host is known to serve."""
        return min([self.own, *self._hosts.values()], key=parse_version)

    def learn(self, host: str, sent: str, served: object) -> str | None:
        """Remember that `host` refused `sent` and serves `served`; the version to send it
        from now on, or None when that refusal is final (see `served_instead`)."""
        version = served_instead(sent, served)
        if version is not None:
            self._hosts[host] = version
        return version

    def forget(self, host: str) -> None:
        self._hosts.pop(host, None)


def resend_id(message_id: str, version: str) -> str:
    """The message id a call gets at `version` after an agent answered `message_id` with a
    refusal it remembered (agents of release 0.1.0 keep every reply, refusals included):
    derived from the key, so sending that call again under the key reaches the same entry."""
    return f"{message_id}@rpc-{version}"


async def negotiated(
    versions: RpcVersions, host: str, request: Request, send: Callable[[], Awaitable[T]]
) -> T:
    """`send()` the call `request`, then once more at an older RPC API version `host` said
    it serves, under the same message id: an agent refuses an RPC version before it runs
    anything, and does not remember that refusal. Raises the refusal when it is final.

    An agent that answered with a refusal of another version than the one just sent (one of
    0.1.0, answering from its reply cache a refusal of an earlier send under that id) is sent
    the call once more under `resend_id`. Each resend shares the caller's deadline."""
    stepped = renamed = False
    while True:
        try:
            return await send()
        except IncompatibleRpcVersion as refusal:
            if refusal.fields.get("requested") != request.rpc_version and not renamed:
                renamed = True
                request.message_id = resend_id(request.message_id, request.rpc_version)
                continue
            served = refusal.fields.get("served")
            version = None if stepped else versions.learn(host, request.rpc_version, served)
            if version is None:
                raise
            stepped = True
            request.rpc_version = version
