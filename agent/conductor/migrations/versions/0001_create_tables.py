"""The object backend's first schema: instances, compute_nodes, migrations, services.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Written out in full, not built from `agent.conductor.tables`: a revision is what the
database looked like at that time, whatever the tables module says later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> Any:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _columns(kind: str, *names: str) -> list[sa.Column[Any]]:
    types: dict[str, Callable[[], Any]] = {
        "text": sa.String,
        "uuid": lambda: sa.String(36),
        "integer": sa.BigInteger,
        "float": sa.Double,
        "boolean": sa.Boolean,
        "timestamp": lambda: sa.DateTime(timezone=True),
        "json": _json,
    }
    return [sa.Column(name, types[kind](), nullable=True) for name in names]


def _key() -> sa.Column[str]:
    return sa.Column("uuid", sa.String(36), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "instances",
        _key(),
        *_columns("text", "name", "hostname", "display_name", "user_id", "project_id"),
        *_columns("text", "host", "node", "launched_on", "availability_zone"),
        *_columns("text", "vm_state", "task_state", "power_state"),
        *_columns("boolean", "locked"),
        *_columns("json", "flavor"),
        *_columns("integer", "memory_mb", "vcpus", "root_gb", "ephemeral_gb"),
        *_columns("text", "image_ref", "root_device_name"),
        *_columns("boolean", "config_drive"),
        *_columns("text", "key_data", "user_data", "access_ip_v4", "access_ip_v6"),
        *_columns("json", "metadata", "system_metadata", "block_device_mappings"),
        *_columns("json", "network_info"),
        *_columns("timestamp", "created_at", "updated_at", "launched_at", "terminated_at"),
        *_columns("boolean", "hidden"),
    )
    op.create_index("ix_instances_host_node", "instances", ["host", "node"])

    op.create_table(
        "compute_nodes",
        _key(),
        *_columns("text", "host", "hypervisor_hostname", "hypervisor_type"),
        *_columns("integer", "hypervisor_version"),
        *_columns("text", "host_ip", "cpu_info"),
        *_columns("integer", "vcpus", "memory_mb", "local_gb"),
        *_columns("integer", "vcpus_used", "memory_mb_used", "local_gb_used"),
        *_columns("integer", "free_ram_mb", "free_disk_gb", "disk_available_least"),
        *_columns("integer", "current_workload", "running_vms"),
        *_columns("float", "cpu_allocation_ratio", "ram_allocation_ratio"),
        *_columns("float", "disk_allocation_ratio"),
        *_columns("json", "stats", "pci_device_pools", "supported_instances"),
    )
    op.create_index(
        "ix_compute_nodes_host_hypervisor_hostname",
        "compute_nodes",
        ["host", "hypervisor_hostname"],
    )

    op.create_table(
        "migrations",
        _key(),
        *_columns("uuid", "instance_uuid"),
        *_columns("text", "migration_type", "status"),
        *_columns("text", "source_compute", "source_node", "dest_compute", "dest_node"),
        *_columns("text", "dest_host"),
        *_columns("integer", "memory_total", "memory_processed", "memory_remaining"),
        *_columns("integer", "disk_total", "disk_processed", "disk_remaining"),
        *_columns("boolean", "hidden"),
        *_columns("timestamp", "created_at", "updated_at"),
    )
    op.create_index("ix_migrations_instance_uuid", "migrations", ["instance_uuid"])
    op.create_index("ix_migrations_status", "migrations", ["status"])

    op.create_table(
        "services",
        _key(),
        *_columns("text", "host", "binary", "topic"),
        *_columns("boolean", "disabled"),
        *_columns("text", "disabled_reason"),
        *_columns("boolean", "forced_down"),
        *_columns("integer", "report_count", "version"),
        *_columns("timestamp", "last_seen_up"),
    )
    op.create_index("ix_services_host", "services", ["host"])


def downgrade() -> None:
    for table in ("services", "migrations", "compute_nodes", "instances"):
        op.drop_table(table)
