"""`FilteringCore`: an instance's network filters asked of the host's firewall actor, and its
interfaces pointed at them, for every handler group that changes interfaces (spawn,
destroy, interfaces attached and detached, live migration, and the filtering methods).

With the host's firewall off the firewall actor writes nothing and the driver names no
filter; without a firewall actor (a bare actor system in tests) nothing is asked.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.addresses import FIREWALL_ADDRESS
from actors.instance.core import InstanceCore
from schemas.errors import VirtactorError
from schemas.objects.enums import PowerState
from schemas.objects.network import NetworkInfo

log = logging.getLogger(__name__)


class FilteringCore(InstanceCore):
    """The filter plumbing shared by the handler groups; see the module docstring."""

    async def _filter(self, network_info: NetworkInfo) -> list[str]:
        """The filters of `network_info` written (a bad rule, or groups that cannot be read,
        fail here, before any interface changes), then named by the guest's interfaces."""
        if FIREWALL_ADDRESS not in self.system:
            return []
        args = {"instance_uuid": self.uuid, "network_info": network_info}
        written: list[str] = await self.system.ask(FIREWALL_ADDRESS, "filter_instance", args)
        driver = self._need_driver()
        # With the firewall off there is no filter to name: no domain read, no update.
        if driver.filter_interfaces and await self._domain_exists():
            macs = [vif.address for vif in network_info]
            await driver.set_interface_filters(self.uuid, macs, True)
        return written

    async def _unfilter(self, macs: list[str] | None) -> list[str]:
        """The guest's interfaces of `macs` (all the instance's filters when None) point at
        no filter, then the filters go."""
        if FIREWALL_ADDRESS not in self.system:
            return []
        driver = self._need_driver()
        if macs and driver.filter_interfaces and await self._domain_exists():
            await driver.set_interface_filters(self.uuid, macs, False)
        args: dict[str, Any] = {"instance_uuid": self.uuid, "macs": macs}
        removed: list[str] = await self.system.ask(FIREWALL_ADDRESS, "unfilter", args)
        return removed

    async def _unfilter_quietly(self) -> None:
        """Remove every filter of the instance after its domain is gone; a failure is
        logged (the guest is gone either way; the filters are found again by name)."""
        await self._unfilter_macs_quietly(None)

    async def _unfilter_macs_quietly(self, macs: list[str] | None) -> None:
        """`_unfilter(macs)`, a failure logged: the device or guest is gone either way."""
        try:
            await self._unfilter(macs)
        except VirtactorError as exc:
            log.warning(
                "instance %s: network filters not removed: %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )

    async def _domain_exists(self) -> bool:
        self._need_driver()
        return await self._read() != PowerState.PENDING
