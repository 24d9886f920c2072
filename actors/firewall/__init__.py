"""The firewall actor and what it is made of (see `actors.firewall.actor`)."""

from actors.firewall.actor import FirewallActor, FirewallDriver
from actors.firewall.errors import (
    FilteringError,
    InvalidFirewallArgument,
    SecurityGroupsUnavailable,
)
from actors.firewall.settings import FirewallSettings

__all__ = [
    "FilteringError",
    "FirewallActor",
    "FirewallDriver",
    "FirewallSettings",
    "InvalidFirewallArgument",
    "SecurityGroupsUnavailable",
]
