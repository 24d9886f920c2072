"""The firewall actor's typed errors (known to every client: agent/rpc/remote_errors.py)."""

from __future__ import annotations

from schemas.errors import VirtactorError


class FilteringError(VirtactorError):
    """Base of the firewall actor's errors."""

    msg_fmt = "firewall error"


class SecurityGroupsUnavailable(FilteringError):
    """The groups, rules or members an interface's filter is made of cannot be read from the
    object backend (none configured, or it did not answer in time): nothing was changed."""

    msg_fmt = "host {host}: security groups cannot be read: {reason}"
    retryable = True


class InvalidFirewallArgument(FilteringError):
    """A firewall method was called with an argument it cannot use; nothing was changed."""

    msg_fmt = "{action}: argument {argument!r} is invalid: {reason}"
