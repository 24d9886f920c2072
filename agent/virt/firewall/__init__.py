"""Traffic filtering of the instances' interfaces as libvirt nwfilters: the filters built from
security groups and provider rules (`filters`, pure) and defined on a host (`Firewall`).

Importing this package loads no libvirt (clients import `agent.virt.firewall.errors`).
"""

from __future__ import annotations

from agent.virt.firewall.errors import (
    FirewallError,
    InvalidFilterName,
    RemoteGroupMembersMissing,
)
from agent.virt.firewall.filters import (
    NWFilter,
    base_filters,
    instance_filters,
    interface_filter,
    interface_filter_name,
    provider_filter,
    secgroup_filter,
    secgroup_filter_name,
)
from agent.virt.firewall.firewall import Firewall, canonical_filter

__all__ = [
    "Firewall",
    "FirewallError",
    "InvalidFilterName",
    "NWFilter",
    "RemoteGroupMembersMissing",
    "base_filters",
    "canonical_filter",
    "instance_filters",
    "interface_filter",
    "interface_filter_name",
    "provider_filter",
    "secgroup_filter",
    "secgroup_filter_name",
]
