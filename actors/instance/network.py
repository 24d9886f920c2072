"""The instance actor's host networking: plugging its taps, DHCP options, and its traffic
filters (docs/networking.md).

The filters themselves are written by the host's firewall actor (`actors.firewall`), which
all instances share; this actor asks it for the instance's filters, then points the guest's
interfaces at them (or at none) in place, without restarting the guest. In that order: a
filter must exist before an interface names it, and no interface may name it when it goes.
With the host's firewall off (`[firewall] driver = "none"`) the filtering methods change
nothing.
"""

from __future__ import annotations

from actors.instance.filtering import FilteringCore
from actors.instance.method import driver_method
from actors.instance.names import check_vif
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo


class NetworkHandlers(FilteringCore):
    """plug_vifs, unplug_vifs, dhcp_options_for_instance, ensure_filtering_rules_for_instance,
    refresh_instance_security_rules, unfilter_instance."""

    # --- taps ----------------------------------------------------------------------------------

    @driver_method
    async def plug_vifs(self, instance: Instance, network_info: NetworkInfo) -> list[str]:
        """Plug the running guest's taps into their bridges (making a bridge its network
        says to create), as after the host's networking was rebuilt; idempotent. Returns
        what changed ("tap -> bridge"); a guest that is not running has no taps to plug
        (libvirt plugs them when it starts)."""
        self._check_vifs(instance, network_info)
        return await self._need_driver().plug_vifs(self.uuid, list(network_info))

    @driver_method
    async def unplug_vifs(self, instance: Instance, network_info: NetworkInfo) -> list[str]:
        """Take the guest's taps off their bridges (the guest keeps its NICs, unlinked);
        idempotent. Returns what changed ("tap -/- bridge")."""
        self._check_vifs(instance, network_info)
        return await self._need_driver().unplug_vifs(self.uuid, list(network_info))

    @driver_method
    async def dhcp_options_for_instance(self, instance: Instance) -> list[dict[str, str]] | None:
        """The DHCP options a DHCP server should give this instance, from its network info
        (the record's, else the request's): its router, DNS servers and the DHCP server's
        own address, per subnet, as nova's `[{"opt_name": ..., "opt_value": ...}]`. None
        when the instance has no subnet with any of them."""
        self._check_target(instance)
        network_info = self.record.instance.network_info if self.record is not None else None
        if network_info is None and instance.obj_attr_is_set("network_info"):
            network_info = instance.network_info
        return dhcp_options(network_info)

    # --- filters -------------------------------------------------------------------------------

    @driver_method
    async def ensure_filtering_rules_for_instance(
        self, instance: Instance, network_info: NetworkInfo
    ) -> list[str]:
        """Put the instance's filters in place from its security groups as the object
        backend has them now, and point its interfaces at them (the guest need not exist
        yet: a live migration's destination filters before the guest arrives). Returns only
        when the filters are defined; the filters written."""
        self._check_vifs(instance, network_info)
        return await self._filter(network_info)

    @driver_method
    async def refresh_instance_security_rules(self, instance: Instance) -> list[str]:
        """The instance's groups changed: rebuild its filters from its recorded network info
        and point its interfaces at them; the filters written."""
        record = await self._begin(instance)
        return await self._filter(record.instance.network_info or NetworkInfo())

    @driver_method
    async def unfilter_instance(self, instance: Instance, network_info: NetworkInfo) -> list[str]:
        """Point the guest's interfaces at no filter, then remove the instance's filters and
        the group filters no other instance here uses; the filters removed."""
        self._check_vifs(instance, network_info)
        return await self._unfilter([vif.address for vif in network_info])

    def _check_vifs(self, instance: Instance, network_info: NetworkInfo) -> None:
        self._check_target(instance)
        self._need_driver()
        for vif in network_info:
            check_vif(self.method, self.uuid, vif)


def dhcp_options(network_info: NetworkInfo | None) -> list[dict[str, str]] | None:
    """nova's DHCP options of `network_info`: `router`, `dns-server` and
    `server-ip-address`, one of each per IPv4 subnet that has it, in VIF order."""
    options: list[dict[str, str]] = []
    for vif in network_info or []:
        for subnet in vif.network.subnets if vif.network is not None else []:
            if subnet.cidr.version != 4:
                continue
            if subnet.gateway is not None:
                options.append({"opt_name": "router", "opt_value": str(subnet.gateway)})
            if subnet.dns:
                servers = ",".join(str(ip) for ip in subnet.dns)
                options.append({"opt_name": "dns-server", "opt_value": servers})
            if subnet.dhcp_server is not None:
                server = str(subnet.dhcp_server)
                options.append({"opt_name": "server-ip-address", "opt_value": server})
    return options or None
