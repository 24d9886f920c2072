"""What building a guest's network filters refuses.

    VirtactorError                      schemas.errors
    └── FirewallError                   the filters of an instance cannot be built
        ├── RemoteGroupMembersMissing   a rule names a remote group whose members' IPs the
        │                               caller did not give
        └── InvalidFilterName           a filter name libvirt would not take

Bad rules themselves are `schemas.objects.security_group_errors.InvalidSecurityGroupRule`
(or `InvalidProviderFirewallRule`). Every one is raised before any filter changes.
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class FirewallError(VirtactorError):
    msg_fmt = "firewall error: {reason}"


class RemoteGroupMembersMissing(FirewallError):
    rule: str
    group: str

    msg_fmt = (
        "security group rule {rule} allows the members of group {group}, whose members' IPs "
        "were not given"
    )


class InvalidFilterName(FirewallError):
    name: str

    msg_fmt = "{name!r} is not a filter name libvirt takes (letters, digits, '_', '.', ':', '-')"
