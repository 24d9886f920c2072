"""`ComputeNode`: the hypervisor's resources, as the resource tracker reports them."""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from schemas import fields
from schemas.base import Relationships
from schemas.objects.context import RequestContext
from schemas.objects.pci import PciDevicePoolList
from schemas.registry import default_registry
from schemas.remotable import remotable_classmethod
from schemas.store import PersistentObject
from schemas.versions import Version


@default_registry.register
class ComputeNode(PersistentObject):
    """Capacity, usage and identity of one hypervisor node."""

    # 1.0: Initial version
    # 1.1: Added pci_device_pools
    # 1.2: Added supported_instances
    # 1.3: Added the remotable destroy
    VERSION = "1.3"
    __slots__ = ()
    OBJ_KEY = "uuid"
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"pci_device_pools": [("1.1", "1.0")]}

    uuid: str = fields.UUID(read_only=True)
    host: str = fields.String()
    hypervisor_hostname: str = fields.String()
    hypervisor_type: str = fields.String()
    hypervisor_version: int = fields.Integer()
    host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = fields.IPAddress(
        nullable=True, default=None
    )
    cpu_info: str = fields.String(default="{}")  # libvirt CPU model/topology as JSON text

    vcpus: int = fields.Integer()
    memory_mb: int = fields.Integer()
    local_gb: int = fields.Integer()
    vcpus_used: int = fields.Integer(default=0)
    memory_mb_used: int = fields.Integer(default=0)
    local_gb_used: int = fields.Integer(default=0)
    free_ram_mb: int | None = fields.Integer(nullable=True, default=None)
    free_disk_gb: int | None = fields.Integer(nullable=True, default=None)
    disk_available_least: int | None = fields.Integer(nullable=True, default=None)
    current_workload: int | None = fields.Integer(nullable=True, default=None)
    running_vms: int | None = fields.Integer(nullable=True, default=None)

    cpu_allocation_ratio: float = fields.Float(default=4.0)
    ram_allocation_ratio: float = fields.Float(default=1.0)
    disk_allocation_ratio: float = fields.Float(default=1.0)
    stats: dict[str, str] = fields.Dict(fields.String(), default={})

    pci_device_pools: PciDevicePoolList | None = fields.Object(
        "PciDevicePoolList", nullable=True, default=None
    )
    # What guests the host can run: [architecture, hypervisor type, VM mode] triples, e.g.
    # ["x86_64", "kvm", "hvm"], one per <guest>/<arch>/<domain> of libvirt's capabilities.
    supported_instances: list[list[str]] = fields.List(fields.List(fields.String()), default=[])

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        # Also dropped by the relationship map; kept explicit as the history says why.
        if target_version < (1, 2):
            primitive.pop("supported_instances", None)
        if target_version < (1, 1):
            primitive.pop("pci_device_pools", None)

    @remotable_classmethod
    async def get_by_uuid(cls, ctx: RequestContext | None, uuid: str) -> ComputeNode:
        """The stored compute node `uuid`, or ObjectNotFound."""
        return await cls._obj_get(cls.OBJ_NAME, uuid)

    @remotable_classmethod
    async def get_by_host(cls, ctx: RequestContext | None, host: str) -> list[ComputeNode]:
        """Every stored node of host `host` (one per hypervisor node it runs)."""
        return await cls._obj_find("get_by_host", {"host": host})
