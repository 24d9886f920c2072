"""What the resource tracker refuses, and why.

    VirtactorError                  schemas.errors
    ├── ClaimFailed                 the host has not enough of a resource left
    └── ClaimRequestError           a claim request refused before any effect
        ├── InvalidClaim            an argument that is malformed (no uuid, negative sizes)
        ├── PciAliasNotDefined      a flavor asks for a PCI alias this host does not define
        └── ClaimNotFound           no such claim to confirm

They live with the tracker (which raises them) and are re-exported by `agent.errors`.
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class ClaimFailed(VirtactorError):
    """`resource` is vcpus, memory_mb, disk_gb or pci:<alias>; `free` what was left of it."""

    uuid: str
    resource: str
    requested: int
    free: int

    msg_fmt = "claim for instance {uuid} failed: {resource} requested {requested}, only {free} free"


class ClaimRequestError(VirtactorError):
    msg_fmt = "invalid claim request"


class InvalidClaim(ClaimRequestError):
    action: str
    argument: str
    reason: str

    msg_fmt = "{action}: argument {argument} is invalid: {reason}"


class PciAliasNotDefined(ClaimRequestError):
    uuid: str
    alias: str

    msg_fmt = (
        "claim for instance {uuid}: PCI alias {alias!r} is not defined on this host "
        "([resources] pci_alias)"
    )


class ClaimNotFound(ClaimRequestError):
    action: str
    key: str

    msg_fmt = "{action}: there is no claim for {key} on this host"
