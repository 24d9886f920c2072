"""Network info: the VIFs of an instance, their networks and subnets (nova's network model)."""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objectlist import ObjectList
from schemas.objects.enums import VIFModel, VIFType, VNICType
from schemas.registry import default_registry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@default_registry.register
class Subnet(VersionedObject):
    """One subnet of a network, with the fixed IPs the VIF holds in it."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    cidr: IPNetwork = fields.IPNetwork()
    gateway: IPAddress | None = fields.IPAddress(nullable=True, default=None)
    dhcp_server: IPAddress | None = fields.IPAddress(nullable=True, default=None)
    dns: list[IPAddress] = fields.List(fields.IPAddress(), default=[])
    ips: list[IPAddress] = fields.List(fields.IPAddress(), default=[])


@default_registry.register
class Network(VersionedObject):
    """The network a VIF is plugged into."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"subnets": [("1.0", "1.0")]}

    id: str = fields.UUID()
    label: str = fields.String()
    bridge: str | None = fields.String(nullable=True, default=None)
    mtu: int | None = fields.Integer(nullable=True, default=None)
    should_create_bridge: bool = fields.Boolean(default=False)
    subnets: list[Subnet] = fields.ListOfObjects("Subnet", default=[])


@default_registry.register
class VIF(VersionedObject):
    """A virtual interface (a Neutron port) of an instance."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"network": [("1.0", "1.0")]}

    id: str = fields.UUID()
    address: str = fields.MACAddress()
    type: str = fields.Enum(VIFType)
    vnic_type: str = fields.Enum(VNICType, default=VNICType.NORMAL)
    model: str | None = fields.Enum(VIFModel, nullable=True, default=None)
    devname: str | None = fields.String(nullable=True, default=None)
    ovs_interfaceid: str | None = fields.String(nullable=True, default=None)
    network: Network | None = fields.Object("Network", nullable=True, default=None)
    active: bool = fields.Boolean(default=False)
    preserve_on_delete: bool = fields.Boolean(default=False)
    details: dict[str, str] = fields.Dict(fields.String(), default={})
    profile: dict[str, str] = fields.Dict(fields.String(), default={})

    def fixed_ips(self) -> list[IPAddress]:
        """Every fixed IP of this VIF across its network's subnets."""
        if self.network is None:
            return []
        return [ip for subnet in self.network.subnets for ip in subnet.ips]


@default_registry.register
class NetworkInfo(ObjectList[VIF]):
    """The VIFs of one instance, in guest PCI order."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"objects": [("1.0", "1.0")]}

    objects: list[VIF] = fields.ListOfObjects("VIF", default=[])
