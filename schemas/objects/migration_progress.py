"""`MigrationProgress`: one poll of a running live migration, as published."""

from __future__ import annotations

from typing import Any

from schemas import fields
from schemas.base import VersionedObject
from schemas.objects.enums import MigrationPhase, MigrationStatus
from schemas.registry import default_registry
from schemas.versions import Version


@default_registry.register
class MigrationProgress(VersionedObject):
    """Sizes in bytes, `dirty_rate` in pages per second, times in milliseconds; `downtime_ms`
    the downtime libvirt expects (or measured, at the end)."""

    # 1.0: Initial version
    # 1.1: Added phase
    VERSION = "1.1"
    __slots__ = ()

    migration_uuid: str = fields.UUID()
    instance_uuid: str = fields.UUID()
    status: str = fields.Enum(MigrationStatus)
    percent: int = fields.Integer(default=0)
    elapsed_ms: int = fields.Integer(default=0)
    memory_total: int = fields.Integer(default=0)
    memory_processed: int = fields.Integer(default=0)
    memory_remaining: int = fields.Integer(default=0)
    disk_total: int = fields.Integer(default=0)
    disk_processed: int = fields.Integer(default=0)
    disk_remaining: int = fields.Integer(default=0)
    iteration: int = fields.Integer(default=0)
    dirty_rate: int = fields.Integer(default=0)
    downtime_ms: int | None = fields.Integer(nullable=True, default=None)
    postcopy: bool = fields.Boolean(default=False)
    stalls: int = fields.Integer(default=0)
    # The policy actions taken so far, in order ("set_downtime:300", "post_copy", ...).
    actions: list[str] = fields.List(fields.String(), default=[])
    # What the job is doing: "pre-copy", "post-copy", "post-copy-paused" (the stream broke
    # after the switch; the guest waits on the destination), "post-copy-recovering".
    phase: str = fields.String(default=MigrationPhase.PRE_COPY)

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 1):
            primitive.pop("phase", None)
