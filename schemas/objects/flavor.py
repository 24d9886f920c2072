"""`Flavor`: the hardware template an instance was built from."""

from __future__ import annotations

from typing import Any

from schemas import fields
from schemas.base import VersionedObject
from schemas.registry import default_registry
from schemas.versions import Version


@default_registry.register
class Flavor(VersionedObject):
    """Sizes and extra specs (`hw:cpu_policy`, `quota:...`) that shape a guest."""

    # 1.0: Initial version
    # 1.1: Added description
    VERSION = "1.1"
    __slots__ = ()

    flavorid: str = fields.String()
    name: str = fields.String()
    memory_mb: int = fields.Integer()
    vcpus: int = fields.Integer()
    root_gb: int = fields.Integer()
    ephemeral_gb: int = fields.Integer(default=0)
    swap: int = fields.Integer(default=0)
    rxtx_factor: float = fields.Float(default=1.0)
    vcpu_weight: int | None = fields.Integer(nullable=True, default=None)
    disabled: bool = fields.Boolean(default=False)
    is_public: bool = fields.Boolean(default=True)
    extra_specs: dict[str, str] = fields.Dict(fields.String(), default={})
    description: str | None = fields.String(nullable=True, default=None)

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 1):
            primitive.pop("description", None)
