"""The object backend's tables: one per persistent object, a column per field.

Scalar fields get typed columns; nested objects, dicts, lists and sets get one JSON column
each (JSONB on PostgreSQL) holding the wire value in the encoding of `primitive_json`, which
names every nested object's type and version. Keys and the fields queried are indexed.

Every column except the key is nullable: a stored object may lack fields (`put_changes` of
a few fields creates it), and NULL in a column of a non-nullable field means "not set".

This module is what the store reads and writes; the migrations in `migrations/versions/`
create the same schema, and tests/agent/conductor/test_tables.py keeps the three in step:
every field of every persistent object has a column here, and the migrated database has
exactly these tables, columns and indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

UUID = sa.String(36)
TEXT = sa.String()
INTEGER = sa.BigInteger()
FLOAT: sa.Double[float] = sa.Double()
BOOLEAN = sa.Boolean()
TIMESTAMP = sa.DateTime(timezone=True)
# `none_as_null`: a None value is SQL NULL, not the JSON document `null`.
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _key() -> sa.Column[str]:
    return sa.Column("uuid", UUID, primary_key=True)


instances = sa.Table(
    "instances",
    metadata,
    _key(),
    sa.Column("name", TEXT),
    sa.Column("hostname", TEXT),
    sa.Column("display_name", TEXT),
    sa.Column("user_id", TEXT),
    sa.Column("project_id", TEXT),
    sa.Column("host", TEXT),
    sa.Column("node", TEXT),
    sa.Column("launched_on", TEXT),
    sa.Column("availability_zone", TEXT),
    sa.Column("vm_state", TEXT),
    sa.Column("task_state", TEXT),
    sa.Column("power_state", TEXT),
    sa.Column("locked", BOOLEAN),
    sa.Column("flavor", JSON),
    sa.Column("memory_mb", INTEGER),
    sa.Column("vcpus", INTEGER),
    sa.Column("root_gb", INTEGER),
    sa.Column("ephemeral_gb", INTEGER),
    sa.Column("image_ref", TEXT),
    sa.Column("root_device_name", TEXT),
    sa.Column("config_drive", BOOLEAN),
    sa.Column("key_data", TEXT),
    sa.Column("user_data", TEXT),
    sa.Column("access_ip_v4", TEXT),
    sa.Column("access_ip_v6", TEXT),
    sa.Column("metadata", JSON),
    sa.Column("system_metadata", JSON),
    sa.Column("block_device_mappings", JSON),
    sa.Column("network_info", JSON),
    sa.Column("created_at", TIMESTAMP),
    sa.Column("updated_at", TIMESTAMP),
    sa.Column("launched_at", TIMESTAMP),
    sa.Column("terminated_at", TIMESTAMP),
    sa.Column("hidden", BOOLEAN),
    sa.Index("ix_instances_host_node", "host", "node"),
)

compute_nodes = sa.Table(
    "compute_nodes",
    metadata,
    _key(),
    sa.Column("host", TEXT),
    sa.Column("hypervisor_hostname", TEXT),
    sa.Column("hypervisor_type", TEXT),
    sa.Column("hypervisor_version", INTEGER),
    sa.Column("host_ip", TEXT),
    sa.Column("cpu_info", TEXT),
    sa.Column("vcpus", INTEGER),
    sa.Column("memory_mb", INTEGER),
    sa.Column("local_gb", INTEGER),
    sa.Column("vcpus_used", INTEGER),
    sa.Column("memory_mb_used", INTEGER),
    sa.Column("local_gb_used", INTEGER),
    sa.Column("free_ram_mb", INTEGER),
    sa.Column("free_disk_gb", INTEGER),
    sa.Column("disk_available_least", INTEGER),
    sa.Column("current_workload", INTEGER),
    sa.Column("running_vms", INTEGER),
    sa.Column("cpu_allocation_ratio", FLOAT),
    sa.Column("ram_allocation_ratio", FLOAT),
    sa.Column("disk_allocation_ratio", FLOAT),
    sa.Column("stats", JSON),
    sa.Column("pci_device_pools", JSON),
    sa.Column("supported_instances", JSON),
    sa.Index("ix_compute_nodes_host_hypervisor_hostname", "host", "hypervisor_hostname"),
)

migrations = sa.Table(
    "migrations",
    metadata,
    _key(),
    sa.Column("instance_uuid", UUID),
    sa.Column("migration_type", TEXT),
    sa.Column("status", TEXT),
    sa.Column("source_compute", TEXT),
    sa.Column("source_node", TEXT),
    sa.Column("dest_compute", TEXT),
    sa.Column("dest_node", TEXT),
    sa.Column("dest_host", TEXT),
    sa.Column("memory_total", INTEGER),
    sa.Column("memory_processed", INTEGER),
    sa.Column("memory_remaining", INTEGER),
    sa.Column("disk_total", INTEGER),
    sa.Column("disk_processed", INTEGER),
    sa.Column("disk_remaining", INTEGER),
    sa.Column("hidden", BOOLEAN),
    sa.Column("created_at", TIMESTAMP),
    sa.Column("updated_at", TIMESTAMP),
    sa.Index("ix_migrations_instance_uuid", "instance_uuid"),
    sa.Index("ix_migrations_status", "status"),
    # Revision 0002: a host's migrations in flight, from either end.
    sa.Index("ix_migrations_source_compute_status", "source_compute", "status"),
    sa.Index("ix_migrations_dest_compute_status", "dest_compute", "status"),
)

services = sa.Table(
    "services",
    metadata,
    _key(),
    sa.Column("host", TEXT),
    sa.Column("binary", TEXT),
    sa.Column("topic", TEXT),
    sa.Column("disabled", BOOLEAN),
    sa.Column("disabled_reason", TEXT),
    sa.Column("forced_down", BOOLEAN),
    sa.Column("report_count", INTEGER),
    sa.Column("version", INTEGER),
    sa.Column("last_seen_up", TIMESTAMP),
    # Revision 0002 replaced the index on host alone: Service.get_by_host_and_binary.
    sa.Index("ix_services_host_binary", "host", "binary"),
)

# Revision 0003: security groups, their rules, instances' memberships, provider rules. Keyed
# by `id` (a uuid, as Neutron's). A group's `rules` field is no column: the rules are rows of
# their own, which the group's lookups read (`JOINED_FIELDS`).
security_groups = sa.Table(
    "security_groups",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("name", TEXT),
    sa.Column("description", TEXT),
    sa.Column("project_id", TEXT),
    sa.Index("ix_security_groups_project_id", "project_id"),
)

security_group_rules = sa.Table(
    "security_group_rules",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("parent_group_id", UUID),
    sa.Column("protocol", TEXT),
    sa.Column("from_port", INTEGER),
    sa.Column("to_port", INTEGER),
    sa.Column("direction", TEXT),
    sa.Column("ethertype", TEXT),
    sa.Column("remote_ip_prefix", TEXT),
    sa.Column("remote_group_id", UUID),
    sa.Index("ix_security_group_rules_parent_group_id", "parent_group_id"),
)

security_group_memberships = sa.Table(
    "security_group_memberships",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("security_group_id", UUID),
    sa.Column("instance_uuid", UUID),
    sa.Index("ix_security_group_memberships_instance_uuid", "instance_uuid"),
    sa.Index("ix_security_group_memberships_security_group_id", "security_group_id"),
)

provider_firewall_rules = sa.Table(
    "provider_firewall_rules",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("protocol", TEXT),
    sa.Column("from_port", INTEGER),
    sa.Column("to_port", INTEGER),
    sa.Column("cidr", TEXT),
)

# Object name -> its table. The key column is named after the object's OBJ_KEY.
OBJECT_TABLES: dict[str, sa.Table] = {
    "Instance": instances,
    "ComputeNode": compute_nodes,
    "Migration": migrations,
    "Service": services,
    "SecurityGroup": security_groups,
    "SecurityGroupRule": security_group_rules,
    "SecurityGroupMembership": security_group_memberships,
    "ProviderFirewallRule": provider_firewall_rules,
}

# Fields of a stored object that have no column: its lookups read them from other tables.
JOINED_FIELDS: dict[str, frozenset[str]] = {
    "SecurityGroup": frozenset({"rules"}),
}
