"""The typed client calls, made from the handlers: one declaration per driver method.

A driver method is declared once, by its handler (`actors/host.py`, `actors/instance/`).
`ComputeClient` inherits `DriverCalls`, whose attributes are descriptors built from those
handlers: `client.pause(host, instance)` takes `host` (the agent to ask), then exactly the
handler's parameters (names, order, types, defaults, as a type checker sees them through
`ParamSpec`), and returns what the handler returns. The call sends every argument under its
parameter's name, defaults filled in, to the method of the handler's name.

How a call is addressed:

- `DriverCall`: to the actor of the `instance` argument's uuid, or to the host actor for a
  method without one;
- `InstanceCall`: an instance method that takes no `instance` (`poll_rebooting_instances`)
  names the instance's uuid after the host: `(host, uuid, timeout)`;
- `OwnHostCall`: a host method whose own first argument is a host (`host_maintenance_mode`)
  is asked of that host: `(host, mode)`;
- `get_info`, served by both scopes: an `Instance` goes to its actor, a uuid to the host.

The per-call options (deadline, idempotency key) are the client's: `client.with_options(
timeout=..., message_id=...).spawn(...)`. Every call raises the agent's error as its own
class, `CallTimeout` when no reply came in time, and retries `AgentInitializing` within its
deadline (see `ComputeClient.call`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from actors.firewall import FirewallActor
from actors.host import HostActor
from actors.instance import InstanceActor
from actors.tracker import ResourceTrackerActor
from schemas.objects import Instance, InstanceInfo

if TYPE_CHECKING:  # the client inherits these calls
    from agent.client import ComputeClient as Caller

P = ParamSpec("P")
R = TypeVar("R")
Handler = Callable[..., Coroutine[Any, Any, Any]]


async def _send(
    caller: Caller, host: str, method: str, args: dict[str, Any], uuid: str | None
) -> Any:
    """`caller.call` of `method`, with the options `with_options` set on `caller`."""
    return await caller.call(
        host,
        method,
        args,
        instance=uuid,
        timeout=caller.call_timeout,
        message_id=caller.call_message_id,
    )


class _Call(Generic[P, R]):
    """What every kind of typed call shares: the handler's name and signature."""

    def __init__(self, handler: Callable[..., Coroutine[Any, Any, R]]) -> None:
        self.handler = handler
        self.method = handler.__name__
        self.signature = inspect.signature(handler)

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.method:
            raise TypeError(f"the typed call {name!r} is made from the handler {self.method!r}")

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every parameter after `self` by name, defaults filled in; `TypeError` as a
        direct call of the handler would raise it."""
        bound = self.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments[next(iter(self.signature.parameters))]
        return arguments


class DriverCall(_Call[P, R]):
    """`(host, *handler parameters)`: see the module docstring."""

    def __init__(self, handler: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]) -> None:
        super().__init__(handler)

    @overload
    def __get__(self, caller: None, owner: type) -> DriverCall[P, R]: ...

    @overload
    def __get__(
        self, caller: Caller, owner: type
    ) -> Callable[Concatenate[str, P], Coroutine[Any, Any, R]]: ...

    def __get__(self, caller: Caller | None, owner: type) -> Any:
        if caller is None:
            return self

        async def call(host: str, *args: P.args, **kwargs: P.kwargs) -> R:
            arguments = self.arguments(args, kwargs)
            target = arguments.get("instance")
            # The uuid only addresses the message: one without lets the agent refuse it, typed.
            uuid = None
            if isinstance(target, Instance) and target.obj_attr_is_set("uuid"):
                uuid = target.uuid
            return cast(R, await _send(caller, host, self.method, arguments, uuid))

        return call


class InstanceCall(_Call[P, R]):
    """`(host, uuid, *handler parameters)`: an instance method that takes no `instance`."""

    def __init__(self, handler: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]) -> None:
        super().__init__(handler)

    @overload
    def __get__(self, caller: None, owner: type) -> InstanceCall[P, R]: ...

    @overload
    def __get__(
        self, caller: Caller, owner: type
    ) -> Callable[Concatenate[str, str, P], Coroutine[Any, Any, R]]: ...

    def __get__(self, caller: Caller | None, owner: type) -> Any:
        if caller is None:
            return self

        async def call(host: str, uuid: str, *args: P.args, **kwargs: P.kwargs) -> R:
            arguments = self.arguments(args, kwargs)
            return cast(R, await _send(caller, host, self.method, arguments, uuid))

        return call


class OwnHostCall(_Call[P, R]):
    """`(*handler parameters)`, asked of the handler's own `host` argument."""

    def __init__(self, handler: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]) -> None:
        super().__init__(handler)
        if list(self.signature.parameters)[1:2] != ["host"]:
            raise TypeError(f"{self.method!r} takes no host of its own")

    @overload
    def __get__(self, caller: None, owner: type) -> OwnHostCall[P, R]: ...

    @overload
    def __get__(self, caller: Caller, owner: type) -> Callable[P, Coroutine[Any, Any, R]]: ...

    def __get__(self, caller: Caller | None, owner: type) -> Any:
        if caller is None:
            return self

        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = self.arguments(args, kwargs)
            return cast(R, await _send(caller, arguments["host"], self.method, arguments, None))

        return call


class DriverCalls:
    """Every served driver method as a typed call (a test checks that none is missing)."""

    # host-scoped
    get_available_resource = DriverCall(HostActor.get_available_resource)
    get_available_nodes = DriverCall(HostActor.get_available_nodes)
    get_host_uptime = DriverCall(HostActor.get_host_uptime)
    get_host_ip_addr = DriverCall(HostActor.get_host_ip_addr)
    set_host_enabled = DriverCall(HostActor.set_host_enabled)
    host_maintenance_mode = OwnHostCall(HostActor.host_maintenance_mode)
    list_instances = DriverCall(HostActor.list_instances)
    list_instance_uuids = DriverCall(HostActor.list_instance_uuids)
    instance_exists = DriverCall(HostActor.instance_exists)
    get_per_instance_usage = DriverCall(HostActor.get_per_instance_usage)
    get_all_bw_counters = DriverCall(HostActor.get_all_bw_counters)
    get_all_volume_usage = DriverCall(HostActor.get_all_volume_usage)
    init_host = DriverCall(HostActor.init_host)
    get_num_instances = DriverCall(HostActor.get_num_instances)
    get_host_stats = DriverCall(HostActor.get_host_stats)
    get_host_cpu_stats = DriverCall(HostActor.get_host_cpu_stats)
    manage_image_cache = DriverCall(HostActor.manage_image_cache)
    legacy_nwinfo = DriverCall(HostActor.legacy_nwinfo)
    get_console_pool_info = DriverCall(HostActor.get_console_pool_info)
    host_power_action = DriverCall(HostActor.host_power_action)
    add_to_aggregate = OwnHostCall(HostActor.add_to_aggregate)
    remove_from_aggregate = OwnHostCall(HostActor.remove_from_aggregate)
    undo_aggregate_operation = OwnHostCall(HostActor.undo_aggregate_operation)
    register_event_listener = DriverCall(HostActor.register_event_listener)
    emit_event = DriverCall(HostActor.emit_event)
    # an instance's life and power
    spawn = DriverCall(InstanceActor.spawn)
    destroy = DriverCall(InstanceActor.destroy)
    cleanup = DriverCall(InstanceActor.cleanup)
    reboot = DriverCall(InstanceActor.reboot)
    power_off = DriverCall(InstanceActor.power_off)
    power_on = DriverCall(InstanceActor.power_on)
    pause = DriverCall(InstanceActor.pause)
    unpause = DriverCall(InstanceActor.unpause)
    suspend = DriverCall(InstanceActor.suspend)
    resume = DriverCall(InstanceActor.resume)
    soft_delete = DriverCall(InstanceActor.soft_delete)
    restore = DriverCall(InstanceActor.restore)
    rescue = DriverCall(InstanceActor.rescue)
    unrescue = DriverCall(InstanceActor.unrescue)
    resume_state_on_host_boot = DriverCall(InstanceActor.resume_state_on_host_boot)
    snapshot = DriverCall(InstanceActor.snapshot)
    poll_rebooting_instances = InstanceCall(InstanceActor.poll_rebooting_instances)
    # an instance's devices
    attach_volume = DriverCall(InstanceActor.attach_volume)
    detach_volume = DriverCall(InstanceActor.detach_volume)
    swap_volume = DriverCall(InstanceActor.swap_volume)
    attach_interface = DriverCall(InstanceActor.attach_interface)
    detach_interface = DriverCall(InstanceActor.detach_interface)
    get_volume_connector = DriverCall(InstanceActor.get_volume_connector)
    default_root_device_name = DriverCall(InstanceActor.default_root_device_name)
    default_device_names_for_instance = DriverCall(InstanceActor.default_device_names_for_instance)
    # an instance's reads, metadata and guest agent
    get_diagnostics = DriverCall(InstanceActor.get_diagnostics)
    block_stats = DriverCall(InstanceActor.block_stats)
    interface_stats = DriverCall(InstanceActor.interface_stats)
    get_console_output = DriverCall(InstanceActor.get_console_output)
    get_vnc_console = DriverCall(InstanceActor.get_vnc_console)
    get_serial_console = DriverCall(InstanceActor.get_serial_console)
    get_spice_console = DriverCall(InstanceActor.get_spice_console)
    macs_for_instance = DriverCall(InstanceActor.macs_for_instance)
    change_instance_metadata = DriverCall(InstanceActor.change_instance_metadata)
    set_admin_password = DriverCall(InstanceActor.set_admin_password)
    inject_file = DriverCall(InstanceActor.inject_file)
    inject_network_info = DriverCall(InstanceActor.inject_network_info)
    reset_network = DriverCall(InstanceActor.reset_network)
    # the rest of the contract: disks, device names, crash dumps, refusals
    instance_on_disk = DriverCall(InstanceActor.instance_on_disk)
    get_instance_disk_info = DriverCall(InstanceActor.get_instance_disk_info)
    get_device_name_for_instance = DriverCall(InstanceActor.get_device_name_for_instance)
    trigger_crash_dump = DriverCall(InstanceActor.trigger_crash_dump)
    post_interrupted_snapshot_cleanup = DriverCall(InstanceActor.post_interrupted_snapshot_cleanup)
    get_instance_diagnostics = DriverCall(InstanceActor.get_instance_diagnostics)
    network_binding_host_id = DriverCall(InstanceActor.network_binding_host_id)
    get_rdp_console = DriverCall(InstanceActor.get_rdp_console)
    get_mks_console = DriverCall(InstanceActor.get_mks_console)
    set_bootable = DriverCall(InstanceActor.set_bootable)
    pre_block_migration = DriverCall(InstanceActor.pre_block_migration)
    # live migration
    live_migration = DriverCall(InstanceActor.live_migration)
    live_migration_abort = DriverCall(InstanceActor.live_migration_abort)
    live_migration_force_complete = DriverCall(InstanceActor.live_migration_force_complete)
    check_can_live_migrate_destination = DriverCall(
        InstanceActor.check_can_live_migrate_destination
    )
    check_can_live_migrate_destination_cleanup = DriverCall(
        InstanceActor.check_can_live_migrate_destination_cleanup
    )
    check_can_live_migrate_source = DriverCall(InstanceActor.check_can_live_migrate_source)
    pre_live_migration = DriverCall(InstanceActor.pre_live_migration)
    post_live_migration = DriverCall(InstanceActor.post_live_migration)
    post_live_migration_at_destination = DriverCall(
        InstanceActor.post_live_migration_at_destination
    )
    rollback_live_migration_at_destination = DriverCall(
        InstanceActor.rollback_live_migration_at_destination
    )
    # resize and cold migration
    migrate_disk_and_power_off = DriverCall(InstanceActor.migrate_disk_and_power_off)
    finish_migration = DriverCall(InstanceActor.finish_migration)
    confirm_migration = DriverCall(InstanceActor.confirm_migration)
    finish_revert_migration = DriverCall(InstanceActor.finish_revert_migration)
    check_can_resize_destination = DriverCall(InstanceActor.check_can_resize_destination)
    confirm_migration_at_destination = DriverCall(InstanceActor.confirm_migration_at_destination)
    revert_migration_at_destination = DriverCall(InstanceActor.revert_migration_at_destination)
    # host networking: the instance's taps and filters, and the host's shared filters
    plug_vifs = DriverCall(InstanceActor.plug_vifs)
    unplug_vifs = DriverCall(InstanceActor.unplug_vifs)
    dhcp_options_for_instance = DriverCall(InstanceActor.dhcp_options_for_instance)
    ensure_filtering_rules_for_instance = DriverCall(
        InstanceActor.ensure_filtering_rules_for_instance
    )
    refresh_instance_security_rules = DriverCall(InstanceActor.refresh_instance_security_rules)
    unfilter_instance = DriverCall(InstanceActor.unfilter_instance)
    refresh_security_group_rules = DriverCall(FirewallActor.refresh_security_group_rules)
    refresh_security_group_members = DriverCall(FirewallActor.refresh_security_group_members)
    refresh_provider_fw_rules = DriverCall(FirewallActor.refresh_provider_fw_rules)
    filter_defer_apply_on = DriverCall(FirewallActor.filter_defer_apply_on)
    filter_defer_apply_off = DriverCall(FirewallActor.filter_defer_apply_off)
    # the host's resource tracker (claims and the audit)
    instance_claim = DriverCall(ResourceTrackerActor.instance_claim)
    abort_instance_claim = DriverCall(ResourceTrackerActor.abort_instance_claim)
    move_claim = DriverCall(ResourceTrackerActor.move_claim)
    drop_move_claim = DriverCall(ResourceTrackerActor.drop_move_claim)
    confirm_move_claim = DriverCall(ResourceTrackerActor.confirm_move_claim)
    drop_move_claim_at_source = DriverCall(ResourceTrackerActor.drop_move_claim_at_source)
    update_available_resource = DriverCall(ResourceTrackerActor.update_available_resource)
    get_compute_node = DriverCall(ResourceTrackerActor.get_compute_node)

    async def get_info(self, host: str, instance: Instance | str) -> InstanceInfo:
        """Served by both scopes: an `Instance` is answered by its actor (the handler
        `get_info(instance)`), a uuid by the host for any domain it has (`get_info(uuid)`)."""
        caller = cast("Caller", self)
        if isinstance(instance, Instance):
            info = await _send(caller, host, "get_info", {"instance": instance}, instance.uuid)
        else:
            info = await _send(caller, host, "get_info", {"uuid": instance}, None)
        return cast(InstanceInfo, info)


# Both scopes' get_info handlers, which the hand-written call above serves.
BOTH_SCOPES: Mapping[str, tuple[Handler, Handler]] = {
    "get_info": (HostActor.get_info, InstanceActor.get_info)
}
