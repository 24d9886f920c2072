"""The host actor's share of the rest of the ComputeDriver contract: host statistics, the image
cache, and the host methods this hypervisor does not do, each refused with its reason.

Every refusal is a typed `NotSupported` naming the method and saying why a libvirt host run
by this agent has nothing to do for it, so a control plane never meets `UnknownMethod` for a
name of the contract. The reasons are constants here (`REFUSALS`), listed in the catalogue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NoReturn

from actors.actor import Actor
from actors.addresses import INSTANCE_PREFIX
from actors.handlers import handler
from actors.instance.errors import InvalidHostArgument, NotSupported

if TYPE_CHECKING:
    from actors.host import HostActorSettings, HostHypervisor

# nova's host power actions (`nova.compute.api.HostAPI.host_power_action`).
POWER_ACTIONS: Final = ("reboot", "shutdown", "startup")
# The cpu time counters nova reports from libvirt's node CPU stats, in nanoseconds.
CPU_TIMES: Final = ("kernel", "idle", "user", "iowait")

REFUSALS: Final[dict[str, str]] = {
    "get_console_pool_info": (
        "console pools served the XenAPI proxies (xvp); a libvirt guest's consoles are "
        "its own VNC and serial ports (get_vnc_console, get_serial_console)"
    ),
    "host_power_action": (
        "the agent runs beside the hypervisor and does not power its own host off or on: "
        "that is the operator's or the BMC's (nova's libvirt driver does not either); "
        "use host_maintenance_mode to drain it first"
    ),
    "add_to_aggregate": (
        "aggregates are the control plane's scheduling metadata; a libvirt host has "
        "nothing to configure for one (nova's libvirt driver does not implement it, and "
        "its compute manager ignores the refusal)"
    ),
    "remove_from_aggregate": (
        "aggregates are the control plane's scheduling metadata; a libvirt host has "
        "nothing to undo for one (nova's libvirt driver does not implement it)"
    ),
    "undo_aggregate_operation": (
        "add_to_aggregate and remove_from_aggregate change nothing on this host, so there "
        "is nothing to undo"
    ),
    "register_event_listener": (
        "a callback cannot cross RPC: subscribe on the bus to instance.<uuid>.lifecycle "
        "(LifecycleEvent), which the host actor publishes for every domain lifecycle event"
    ),
    "emit_event": (
        "the host actor itself publishes each domain lifecycle event on the bus "
        "(instance.<uuid>.lifecycle); events are not injected from outside"
    ),
}


class HostContractHandlers(Actor):
    """Handlers of `HostActor` (which inherits them) for the host methods added at RPC API
    1.1. They use the host actor's `settings` and hypervisor."""

    settings: HostActorSettings
    _hypervisor: HostHypervisor

    # --- counts and statistics -------------------------------------------------------------

    @handler
    async def get_num_instances(self) -> int:
        """How many domains the hypervisor has, running or not."""
        return len(await self._hypervisor.list_domains())

    @handler
    async def get_host_stats(self, refresh: bool = False) -> dict[str, Any]:
        """nova's dictionary of host stats, from the hypervisor's node as the resource audit
        reads it (`refresh` is accepted for nova's signature: it is read afresh every time)."""
        node = await self._hypervisor.get_available_resource(self.settings.host)
        return {
            "vcpus": node.vcpus,
            "vcpus_used": node.vcpus_used,
            "memory_mb": node.memory_mb,
            "memory_mb_used": node.memory_mb_used,
            "local_gb": node.local_gb,
            "local_gb_used": node.local_gb_used,
            "disk_available_least": node.disk_available_least,
            "hypervisor_type": node.hypervisor_type,
            "hypervisor_version": node.hypervisor_version,
            "hypervisor_hostname": node.hypervisor_hostname,
            "cpu_info": node.cpu_info,
            "supported_instances": node.supported_instances,
            "host_ip": None if node.host_ip is None else str(node.host_ip),
            "num_instances": await self.get_num_instances(),
        }

    @handler
    async def get_host_cpu_stats(self) -> dict[str, int]:
        """The host's CPU times summed over all CPUs (kernel, idle, user, iowait; ns) and
        its CPU frequency (MHz), as nova reads them from libvirt."""
        return await self._hypervisor.get_host_cpu_stats()

    # --- the image cache -------------------------------------------------------------------

    @handler
    async def manage_image_cache(self, all_instances: list[str] | None = None) -> dict[str, Any]:
        """Drop the cache references of instances that are gone, then remove the bases
        unused for the configured age. Alive are this host's domains, its instance actors
        (an incoming migration's, before its domain exists), `all_instances` (uuids the
        caller knows, on this host or on hosts sharing its cache) and, the hypervisor adds,
        every instance with a directory in the instances path. Returns what was done:
        removed, in_use, waiting, dropped_references. Also run every
        `image_cache_interval` seconds."""
        for uuid in all_instances or []:
            if not isinstance(uuid, str) or not uuid:
                reason = f"{uuid!r} is not an instance uuid"
                raise InvalidHostArgument(
                    method="manage_image_cache", argument="all_instances", reason=reason
                )
        live = {d.uuid for d in await self._hypervisor.list_domains()}
        live.update(
            address.removeprefix(INSTANCE_PREFIX)
            for address in self.system.addresses()
            if address.startswith(INSTANCE_PREFIX)
        )
        live.update(all_instances or [])
        return await self._hypervisor.manage_image_cache(sorted(live))

    # --- refused, each with its reason -----------------------------------------------------
    # The aggregate methods take the host first: they are asked of the host they name.

    @handler
    async def get_console_pool_info(self, console_type: str) -> NoReturn:
        raise _refused("get_console_pool_info")

    @handler
    async def host_power_action(self, action: str) -> NoReturn:
        if action not in POWER_ACTIONS:
            reason = f"{action!r} is not one of {POWER_ACTIONS}"
            raise InvalidHostArgument(method="host_power_action", argument="action", reason=reason)
        raise _refused("host_power_action")

    @handler
    async def add_to_aggregate(self, host: str, aggregate: dict[str, Any]) -> NoReturn:
        raise _refused("add_to_aggregate")

    @handler
    async def remove_from_aggregate(self, host: str, aggregate: dict[str, Any]) -> NoReturn:
        raise _refused("remove_from_aggregate")

    @handler
    async def undo_aggregate_operation(
        self, host: str, op: str, aggregate: dict[str, Any], set_error: bool = True
    ) -> NoReturn:
        raise _refused("undo_aggregate_operation")

    @handler
    async def register_event_listener(self, callback: str | None = None) -> NoReturn:
        raise _refused("register_event_listener")

    @handler
    async def emit_event(self, event: dict[str, Any] | None = None) -> NoReturn:
        raise _refused("emit_event")

    # --- constants of the contract ---------------------------------------------------------

    @handler
    async def legacy_nwinfo(self) -> bool:
        """False: this agent takes network info as `NetworkInfo` objects (a list of `VIF`s),
        never nova's legacy list of (network, mapping) pairs."""
        return False


def _refused(method: str) -> NotSupported:
    return NotSupported(operation=method, reason=REFUSALS[method])
