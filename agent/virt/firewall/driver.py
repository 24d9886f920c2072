"""`NWFilterDriver`: the firewall actor's driver on libvirt's network filters.

It builds the filters (`filters`, pure: every rule is checked before any XML exists) and
has `Firewall` define only those that changed. Which instances use which group filter is
read back from the interface filters libvirt keeps, so nothing is lost when the agent
restarts.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from agent.virt.firewall.filters import (
    PREFIX,
    PROVIDER,
    instance_filters,
    interface_filter_name,
    provider_filter,
    secgroup_filter,
)
from agent.virt.firewall.firewall import Firewall
from schemas.objects import NetworkInfo, ProviderFirewallRule, SecurityGroup
from schemas.objects.network import IPAddress

if TYPE_CHECKING:
    from agent.virt.host import Host

SECGROUP_PREFIX = f"{PREFIX}secgroup-"


class NWFilterDriver:
    """The filters of the host `host` is connected to (implements
    `actors.firewall.FirewallDriver`)."""

    def __init__(self, host: Host) -> None:
        self.firewall = Firewall(host)

    async def define_instance(
        self,
        instance_uuid: str,
        network_info: NetworkInfo,
        groups: Sequence[SecurityGroup],
        provider_rules: Sequence[ProviderFirewallRule],
        members: Mapping[str, Sequence[IPAddress]],
    ) -> list[str]:
        built = instance_filters(instance_uuid, network_info, groups, provider_rules, members)
        return await self.firewall.define(built)

    async def define_groups(
        self, groups: Sequence[SecurityGroup], members: Mapping[str, Sequence[IPAddress]]
    ) -> list[str]:
        built = [secgroup_filter(group, members) for group in groups]
        return await self.firewall.define(built)

    async def define_provider(self, rules: Sequence[ProviderFirewallRule]) -> list[str]:
        return await self.firewall.define([provider_filter(rules)])

    async def remove_instance(self, instance_uuid: str, macs: Iterable[str] | None) -> list[str]:
        documents = await self.firewall.documents()
        if macs is None:
            own = f"{PREFIX}{uuidlib.UUID(instance_uuid)}-"
            going = sorted(name for name in documents if name.startswith(own))
        else:
            wanted = {interface_filter_name(instance_uuid, mac) for mac in macs}
            going = sorted(name for name in documents if name in wanted)
        staying = {name: xml for name, xml in documents.items() if name not in going}
        used = {ref for xml in staying.values() for ref in _references(xml)}
        unused = sorted(
            name for name in staying if name.startswith(SECGROUP_PREFIX) and name not in used
        )
        return await self.firewall.undefine([*going, *unused])

    async def groups_in_use(self) -> dict[str, set[str]]:
        documents = await self.firewall.documents()
        users: dict[str, set[str]] = {}
        for name, xml in documents.items():
            instance = _interface_owner(name)
            if instance is None:
                continue
            for ref in _references(xml):
                if ref.startswith(SECGROUP_PREFIX):
                    users.setdefault(ref.removeprefix(SECGROUP_PREFIX), set()).add(instance)
        return users

    async def provider_in_use(self) -> bool:
        return PROVIDER in await self.firewall.defined()


def _references(xml: str) -> list[str]:
    return [ref.get("filter", "") for ref in ET.fromstring(xml).iter("filterref")]


def _interface_owner(name: str) -> str | None:
    """The instance uuid of an interface filter `virtactor-<uuid>-<12 hex>`, else None."""
    rest = name.removeprefix(PREFIX)
    if rest == name or rest.startswith("secgroup-"):
        return None
    uuid, _, mac = rest.rpartition("-")
    if len(uuid) != 36 or len(mac) != 12:
        return None
    return uuid
