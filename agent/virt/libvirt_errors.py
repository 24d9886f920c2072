"""libvirt's errors, translated once, at the edge every blocking libvirt call leaves through.

`Host.run` hands each `libvirtError` to `translate`, as httpx's `map_exceptions` does with
transport errors: the most specific typed error wins, and no raw libvirt error reaches a
caller.

    connection lost (`reconnect.is_connection_lost`)  -> HypervisorUnavailable (retryable)
    the domain is gone (VIR_ERR_NO_DOMAIN)            -> InstanceNotFound(uuid)
    no guest agent answers                            -> GuestAgentUnavailable(uuid) (retryable)
    the driver lacks the API (VIR_ERR_NO_SUPPORT)     -> NotSupported
    anything else                                     -> HypervisorError(code, origin, reason)

The instance is the `uuid` the caller ran the work for (`Host.run_on`), else the one libvirt
names in its message ("no domain with matching uuid '...'"); with neither, a vanished domain
stays a `HypervisorError`.

Inside a blocking job, code that gives an error a meaning of its own (stopping a domain that
is "not running" finds it stopped already) asks the predicates here, on the raw error.
"""

from __future__ import annotations

import re

import libvirt

from agent.errors import HypervisorError, HypervisorUnavailable, InstanceNotFound, NotSupported
from agent.virt.guest.errors import GuestAgentUnavailable
from agent.virt.reconnect import describe, is_connection_lost
from schemas.errors import VirtactorError


def _code(name: str, number: int) -> int:
    # Error numbers newer than the libvirt a libvirt-python was built against are missing
    # from its module; libvirt never renumbers them (virterror.h: "should remain stable").
    return int(getattr(libvirt, name, number))


# An agent silent past the command's timeout has its own number in libvirt releases after
# 9.7 (next to VIR_ERR_AGENT_COMMAND_FAILED, 113: the agent answered with an error, which
# stays a HypervisorError); older ones report it as VIR_ERR_AGENT_UNRESPONSIVE.
VIR_ERR_AGENT_COMMAND_TIMEOUT = _code("VIR_ERR_AGENT_COMMAND_TIMEOUT", 112)

_AGENT_UNAVAILABLE = frozenset(
    {
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,  # no agent connected, or not answering guest-sync
        libvirt.VIR_ERR_AGENT_UNSYNCED,
        VIR_ERR_AGENT_COMMAND_TIMEOUT,
    }
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def error_code(exc: libvirt.libvirtError) -> int:
    """libvirt's `virErrorNumber` of `exc`; 0 (VIR_ERR_OK) for an error libvirt did not set."""
    return exc.get_error_code() or 0


def has_code(exc: libvirt.libvirtError, *codes: int) -> bool:
    return error_code(exc) in codes


def is_domain_gone(exc: libvirt.libvirtError) -> bool:
    """The domain does not exist (any more): never defined, undefined, or a transient one
    that stopped."""
    return error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN


def is_wrong_state(exc: libvirt.libvirtError) -> bool:
    """libvirt refused the call in the domain's current state ("domain is not running")."""
    return error_code(exc) == libvirt.VIR_ERR_OPERATION_INVALID


def is_unsupported(exc: libvirt.libvirtError) -> bool:
    """The connection's driver does not implement the API (libvirt's test driver often)."""
    return error_code(exc) == libvirt.VIR_ERR_NO_SUPPORT


def flags_refused(exc: libvirt.libvirtError) -> bool:
    """A driver refusing a flag it does not implement: libvirt's `virCheckFlags` answers
    VIR_ERR_INVALID_ARG "unsupported flags (0x..)", some drivers VIR_ERR_NO_SUPPORT."""
    code = error_code(exc)
    return code == libvirt.VIR_ERR_INVALID_ARG or (
        code == libvirt.VIR_ERR_NO_SUPPORT and "unsupported flags" in str(exc)
    )


def is_lost(exc: libvirt.libvirtError) -> bool:
    """The connection to libvirtd is gone, as opposed to an error of the call itself."""
    return is_connection_lost(error_code(exc), exc.get_error_domain() or 0)


def translate(exc: libvirt.libvirtError, *, uri: str, uuid: str | None = None) -> VirtactorError:
    """The typed error `exc` stands for, for a call to the hypervisor at `uri` made for the
    instance `uuid` (None: no one instance). Pure: the caller raises it `from exc`."""
    reason = exc.get_error_message() or str(exc)
    if is_lost(exc):
        return HypervisorUnavailable(uri=uri, reason=describe(exc))
    instance = uuid or _named_uuid(reason)
    if instance is not None:
        if is_domain_gone(exc):
            return InstanceNotFound(uuid=instance)
        if error_code(exc) in _AGENT_UNAVAILABLE:
            return GuestAgentUnavailable(uuid=instance, reason=reason)
    if is_unsupported(exc):
        return NotSupported(operation=_api_name(exc), reason=reason)
    return HypervisorError(code=error_code(exc), origin=exc.get_error_domain() or 0, reason=reason)


def _named_uuid(message: str) -> str | None:
    found = _UUID.search(message)
    return None if found is None else found.group(0).lower()


def _api_name(exc: libvirt.libvirtError) -> str:
    # VIR_ERR_NO_SUPPORT's one argument is the public API's name ("virDomainBlockCopy").
    name = exc.get_str2()
    return name if isinstance(name, str) and name.startswith("vir") else "this libvirt call"
