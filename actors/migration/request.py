"""What the source instance actor hands the migration actor."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.objects.instance import Instance
from schemas.objects.migrate_data import LiveMigrateData
from schemas.objects.migration import Migration
from schemas.objects.migration_policy import MigrationPolicy


@dataclass(slots=True, frozen=True)
class MigrationRequest:
    """What the source instance actor hands over: the instance as recorded, where it goes,
    the `Migration` record, and how."""

    instance: Instance
    dest: str
    migration: Migration
    policy: MigrationPolicy
    block_migration: bool = False
    migrate_data: LiveMigrateData | None = None
