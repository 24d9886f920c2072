"""Actor addresses: the names the agent's actors are looked up by.

An address is a plain string, `kind` or `kind:id`, so it can travel in an RPC envelope and a
log line unchanged. The kind (the part before the colon) groups actors for metrics.
"""

from __future__ import annotations

from uuid import UUID

HOST_ADDRESS = "host"
TRACKER_ADDRESS = "tracker"
FIREWALL_ADDRESS = "firewall"
INSTANCE_PREFIX = "instance:"
MIGRATION_PREFIX = "migration:"


def instance_address(uuid: UUID | str) -> str:
    """The address of the actor that owns instance `uuid`."""
    return f"{INSTANCE_PREFIX}{uuid}"


def migration_address(uuid: UUID | str) -> str:
    """The address of the actor that runs migration `uuid`."""
    return f"{MIGRATION_PREFIX}{uuid}"


def address_kind(address: str) -> str:
    """The kind of an address: `instance` for `instance:<uuid>`, `host` for `host`."""
    return address.partition(":")[0]
