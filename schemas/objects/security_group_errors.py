"""What a security group, one of its rules or a provider firewall rule refuses.

    VirtactorError                      schemas.errors
    └── SecurityGroupError              a security group or firewall rule that cannot be used
        ├── InvalidSecurityGroupRule    a rule whose fields do not make a rule (protocol
        │                               unknown, port range upside down, ICMP type out of
        │                               range, remote CIDR of the other IP version, ...)
        ├── InvalidProviderFirewallRule the same for a provider (operator) rule
        └── InvalidSecurityGroup        a group change the store does not take as asked

Raised before anything is stored or any filter changes; `agent.rpc.remote_errors` imports
this module, so a client rebuilds each as its own class.
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class SecurityGroupError(VirtactorError):
    msg_fmt = "security group error: {reason}"


class InvalidSecurityGroupRule(SecurityGroupError):
    rule: str
    reason: str

    msg_fmt = "security group rule {rule}: {reason}"


class InvalidProviderFirewallRule(SecurityGroupError):
    rule: str
    reason: str

    msg_fmt = "provider firewall rule {rule}: {reason}"


class InvalidSecurityGroup(SecurityGroupError):
    group: str
    reason: str

    msg_fmt = "security group {group}: {reason}"
