"""Listing domains and reading their state: blocking readers the Host runs in the executor.

A domain whose state cannot be read is reported with `state=None`, so that whoever maps it
to a power state can say "unknown" rather than guess "shut off".
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt

from agent.errors import InstanceNotFound
from agent.virt.reconnect import is_connection_lost

# States in which the domain has a QEMU process (virDomainState).
ACTIVE_STATES = frozenset(
    {
        libvirt.VIR_DOMAIN_RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED,
        libvirt.VIR_DOMAIN_PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN,
        libvirt.VIR_DOMAIN_PMSUSPENDED,
        libvirt.VIR_DOMAIN_CRASHED,
    }
)


@dataclass(slots=True, frozen=True)
class DomainRecord:
    """One domain and its state as libvirt reported it (`virDomainState` and its reason).

    `state` and `reason` are None when libvirt could not tell.
    """

    uuid: str
    name: str
    state: int | None
    reason: int | None

    @property
    def active(self) -> bool | None:
        """Whether the domain has a running hypervisor process; None when unknown."""
        return None if self.state is None else self.state in ACTIVE_STATES


def _unreadable(exc: libvirt.libvirtError) -> bool:
    """An error about this one domain, not about the connection (which callers must see)."""
    return not is_connection_lost(exc.get_error_code(), exc.get_error_domain())


def _record(dom: libvirt.virDomain) -> DomainRecord | None:
    """The domain's record; None if it vanished; state None if libvirt could not read it."""
    try:
        state, reason = dom.state()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        if not _unreadable(exc):
            raise
        return DomainRecord(dom.UUIDString(), dom.name(), None, None)
    return DomainRecord(dom.UUIDString(), dom.name(), state, reason)


def read_domain_records(conn: libvirt.virConnect) -> dict[str, DomainRecord]:
    """Every domain of `conn`, running or only defined, by uuid (blocking)."""
    try:
        stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        # Drivers without bulk stats: one state() call per domain.
        records = (_record(dom) for dom in conn.listAllDomains(0))
        return {r.uuid: r for r in records if r is not None}
    found: dict[str, DomainRecord] = {}
    for dom, values in stats:
        uuid = dom.UUIDString()
        found[uuid] = DomainRecord(
            uuid, dom.name(), values.get("state.state"), values.get("state.reason")
        )
    return found


def read_domain_record(conn: libvirt.virConnect, uuid: str) -> DomainRecord:
    """The domain `uuid` and its current state (blocking); `InstanceNotFound` if absent."""
    try:
        dom = conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise InstanceNotFound(uuid=uuid) from exc
        raise
    record = _record(dom)
    if record is None:
        raise InstanceNotFound(uuid=uuid)
    return record
