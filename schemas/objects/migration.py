"""`Migration`: one move of an instance between hosts, and its progress."""

from __future__ import annotations

from datetime import datetime

from schemas import fields
from schemas.objects.context import RequestContext
from schemas.objects.enums import MigrationStatus, MigrationType
from schemas.registry import default_registry
from schemas.remotable import remotable_classmethod
from schemas.store import PersistentObject


@default_registry.register
class Migration(PersistentObject):
    """Source, destination, status and memory/disk progress of a migration."""

    # 1.0: Initial version
    # 1.1: Added the remotable destroy
    # 1.2: Added the remotable get_by_dest_compute
    VERSION = "1.2"
    __slots__ = ()
    OBJ_KEY = "uuid"

    uuid: str = fields.UUID(read_only=True)
    instance_uuid: str = fields.UUID()
    migration_type: str = fields.Enum(MigrationType)
    status: str = fields.Enum(MigrationStatus)
    source_compute: str | None = fields.String(nullable=True, default=None)
    source_node: str | None = fields.String(nullable=True, default=None)
    dest_compute: str | None = fields.String(nullable=True, default=None)
    dest_node: str | None = fields.String(nullable=True, default=None)
    dest_host: str | None = fields.String(nullable=True, default=None)  # address to reach it
    memory_total: int | None = fields.Integer(nullable=True, default=None)
    memory_processed: int | None = fields.Integer(nullable=True, default=None)
    memory_remaining: int | None = fields.Integer(nullable=True, default=None)
    disk_total: int | None = fields.Integer(nullable=True, default=None)
    disk_processed: int | None = fields.Integer(nullable=True, default=None)
    disk_remaining: int | None = fields.Integer(nullable=True, default=None)
    hidden: bool = fields.Boolean(default=False)
    created_at: datetime | None = fields.DateTime(nullable=True, default=None)
    updated_at: datetime | None = fields.DateTime(nullable=True, default=None)

    @remotable_classmethod
    async def get_by_uuid(cls, ctx: RequestContext | None, uuid: str) -> Migration:
        """The stored migration `uuid`, or ObjectNotFound."""
        return await cls._obj_get(cls.OBJ_NAME, uuid)

    @remotable_classmethod
    async def get_by_instance(
        cls, ctx: RequestContext | None, instance_uuid: str
    ) -> list[Migration]:
        """Every stored migration of instance `instance_uuid`."""
        return await cls._obj_find("get_by_instance", {"instance_uuid": instance_uuid})

    @remotable_classmethod
    async def get_by_dest_compute(cls, ctx: RequestContext | None, host: str) -> list[Migration]:
        """Every stored migration to host `host` (its resource tracker's move claims)."""
        return await cls._obj_find("get_by_dest_compute", {"dest_compute": host})
