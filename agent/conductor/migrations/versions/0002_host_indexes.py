"""Indexes for a host's lookups: its services by binary, its migrations in flight.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

`Service.get_by_host_and_binary` filters on both columns: one index on (host, binary)
replaces the one on host alone. The migration workflow looks up the migrations a host is
the source or destination of, by status.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_services_host", table_name="services")
    op.create_index("ix_services_host_binary", "services", ["host", "binary"])
    op.create_index(
        "ix_migrations_source_compute_status", "migrations", ["source_compute", "status"]
    )
    op.create_index("ix_migrations_dest_compute_status", "migrations", ["dest_compute", "status"])


def downgrade() -> None:
    op.drop_index("ix_migrations_dest_compute_status", table_name="migrations")
    op.drop_index("ix_migrations_source_compute_status", table_name="migrations")
    op.drop_index("ix_services_host_binary", table_name="services")
    op.create_index("ix_services_host", "services", ["host"])
