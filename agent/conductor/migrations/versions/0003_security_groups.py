"""Security groups, their rules, instances' memberships and the provider's firewall rules.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Four new tables, keyed by `id` (a uuid): `SecurityGroup.get_by_instance` reads the
memberships by instance, its rules by group (`SecurityGroupRule.get_by_security_group_id`).
Only adds: a conductor of the previous release keeps serving the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(36), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "security_groups",
        _id(),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("project_id", sa.String(), nullable=True),
    )
    op.create_index("ix_security_groups_project_id", "security_groups", ["project_id"])

    op.create_table(
        "security_group_rules",
        _id(),
        sa.Column("parent_group_id", sa.String(36), nullable=True),
        sa.Column("protocol", sa.String(), nullable=True),
        sa.Column("from_port", sa.BigInteger(), nullable=True),
        sa.Column("to_port", sa.BigInteger(), nullable=True),
        sa.Column("direction", sa.String(), nullable=True),
        sa.Column("ethertype", sa.String(), nullable=True),
        sa.Column("remote_ip_prefix", sa.String(), nullable=True),
        sa.Column("remote_group_id", sa.String(36), nullable=True),
    )
    op.create_index(
        "ix_security_group_rules_parent_group_id", "security_group_rules", ["parent_group_id"]
    )

    op.create_table(
        "security_group_memberships",
        _id(),
        sa.Column("security_group_id", sa.String(36), nullable=True),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
    )
    op.create_index(
        "ix_security_group_memberships_instance_uuid",
        "security_group_memberships",
        ["instance_uuid"],
    )
    op.create_index(
        "ix_security_group_memberships_security_group_id",
        "security_group_memberships",
        ["security_group_id"],
    )

    op.create_table(
        "provider_firewall_rules",
        _id(),
        sa.Column("protocol", sa.String(), nullable=True),
        sa.Column("from_port", sa.BigInteger(), nullable=True),
        sa.Column("to_port", sa.BigInteger(), nullable=True),
        sa.Column("cidr", sa.String(), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "provider_firewall_rules",
        "security_group_memberships",
        "security_group_rules",
        "security_groups",
    ):
        op.drop_table(table)
