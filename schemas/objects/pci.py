"""PCI passthrough objects: a host device, and the pools the resource tracker reports."""

from __future__ import annotations

from typing import ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objectlist import ObjectList
from schemas.objects.enums import PciDeviceStatus, PciDeviceType
from schemas.registry import default_registry


@default_registry.register
class PciDevice(VersionedObject):
    """One assignable PCI device (or SR-IOV function) of the host."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    address: str = fields.String()  # "0000:81:00.1" (domain:bus:slot.function)
    compute_node_uuid: str | None = fields.UUID(nullable=True, default=None)
    vendor_id: str = fields.String()
    product_id: str = fields.String()
    dev_type: str = fields.Enum(PciDeviceType)
    status: str = fields.Enum(PciDeviceStatus, default=PciDeviceStatus.AVAILABLE)
    dev_id: str | None = fields.String(nullable=True, default=None)  # libvirt nodedev name
    label: str | None = fields.String(nullable=True, default=None)
    numa_node: int | None = fields.Integer(nullable=True, default=None)
    parent_addr: str | None = fields.String(nullable=True, default=None)
    instance_uuid: str | None = fields.UUID(nullable=True, default=None)
    request_id: str | None = fields.String(nullable=True, default=None)
    extra_info: dict[str, str] = fields.Dict(fields.String(), default={})


@default_registry.register
class PciDevicePool(VersionedObject):
    """A count of identical free devices (same vendor, product, NUMA node and tags)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    vendor_id: str = fields.String()
    product_id: str = fields.String()
    numa_node: int | None = fields.Integer(nullable=True, default=None)
    tags: dict[str, str] = fields.Dict(fields.String(), default={})
    count: int = fields.Integer()


@default_registry.register
class PciDevicePoolList(ObjectList[PciDevicePool]):
    """The PCI pools of a compute node (nova's `pci_device_pools`)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"objects": [("1.0", "1.0")]}

    objects: list[PciDevicePool] = fields.ListOfObjects("PciDevicePool", default=[])
