"""`ResourceClaim`: what a host's resource tracker set aside for one instance or migration."""

from __future__ import annotations

from schemas import fields
from schemas.base import VersionedObject
from schemas.registry import default_registry


@default_registry.register
class ResourceClaim(VersionedObject):
    """Sizes held for `instance_uuid` on node `node_uuid`; `migration_uuid` set for a move
    claim (the destination's share of a migration), and the PCI devices (addresses) held."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    instance_uuid: str = fields.UUID()
    migration_uuid: str | None = fields.UUID(nullable=True, default=None)
    host: str = fields.String()
    node_uuid: str = fields.UUID()
    vcpus: int = fields.Integer()
    memory_mb: int = fields.Integer()
    disk_gb: int = fields.Integer()
    pci_devices: list[str] = fields.List(fields.String(), default=[])
