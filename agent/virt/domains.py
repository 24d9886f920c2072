"""Listing domains and reading their state: blocking readers the Host runs in the executor.

A domain whose state cannot be read is reported with `state=None`, so that whoever maps it
to a power state can say "unknown" rather than guess "shut off".
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt

from agent.errors import InstanceNotFound
from agent.virt.libvirt_errors import is_domain_gone, is_lost, is_unsupported

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


def _record(dom: libvirt.virDomain) -> DomainRecord | None:
    """The domain's record; None if it vanished; state None if libvirt could not read it."""
    try:
        state, reason = dom.state()
    except libvirt.libvirtError as exc:
        if is_domain_gone(exc):
            return None
        if is_lost(exc):  # not about this domain: the caller must hear of it
            raise
        return DomainRecord(dom.UUIDString(), dom.name(), None, None)
    return DomainRecord(dom.UUIDString(), dom.name(), state, reason)


def read_domain_records(conn: libvirt.virConnect) -> dict[str, DomainRecord]:
    """Every domain of `conn`, running or only defined, by uuid (blocking)."""
    try:
        stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
    except libvirt.libvirtError as exc:
        if not is_unsupported(exc):
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
    """The domain `uuid` and its current state (blocking); `InstanceNotFound` if it vanished
    while read. Run it with `Host.run_on(uuid, ...)`, which names a lookup that failed."""
    record = _record(conn.lookupByUUIDString(uuid))
    if record is None:
        raise InstanceNotFound(uuid=uuid)
    return record


@dataclass(slots=True, frozen=True)
class DomainInfo:
    """`virDomainGetInfo` of one domain: state, memory in KiB, vCPUs, CPU time in ns.

    `domain_id` is libvirt's run-time id, None for a domain that is not running.
    """

    uuid: str
    state: int
    max_mem_kb: int
    mem_kb: int
    vcpus: int
    cpu_time_ns: int
    domain_id: int | None


def _info(dom: libvirt.virDomain) -> DomainInfo:
    state, max_mem, mem, vcpus, cpu_time = dom.info()
    domain_id = dom.ID()
    return DomainInfo(
        dom.UUIDString(),
        state,
        max_mem,
        mem,
        vcpus,
        cpu_time,
        domain_id if domain_id >= 0 else None,
    )


def read_domain_info(conn: libvirt.virConnect, uuid: str) -> DomainInfo:
    """`DomainInfo` of domain `uuid` (blocking); run it with `Host.run_on(uuid, ...)`."""
    return _info(conn.lookupByUUIDString(uuid))


def read_domain_infos(conn: libvirt.virConnect) -> dict[str, DomainInfo]:
    """`DomainInfo` of every domain, by uuid (blocking); domains that vanish are skipped."""
    infos: dict[str, DomainInfo] = {}
    for dom in conn.listAllDomains(0):
        try:
            info = _info(dom)
        except libvirt.libvirtError as exc:
            if is_domain_gone(exc):
                continue
            raise
        infos[info.uuid] = info
    return infos


@dataclass(slots=True, frozen=True)
class InterfaceCounters:
    uuid: str
    interface: str  # the host-side device name (tap)
    rx_bytes: int
    tx_bytes: int


@dataclass(slots=True, frozen=True)
class BlockCounters:
    uuid: str
    device: str  # the guest's target name (vda)
    path: str
    rd_req: int
    rd_bytes: int
    wr_req: int
    wr_bytes: int


Stats = dict[str, object]


def _numbered(stats: Stats, prefix: str) -> list[Stats]:
    """`<prefix>.count` and `<prefix>.<i>.<key>` entries of a domain's bulk stats as dicts."""
    count = stats.get(f"{prefix}.count", 0)
    entries = []
    for index in range(count if isinstance(count, int) else 0):
        head = f"{prefix}.{index}."
        entries.append({k[len(head) :]: v for k, v in stats.items() if k.startswith(head)})
    return entries


def _ints(stats: Stats, *keys: str) -> list[int]:
    """The integer values of `keys` in `stats`, 0 for one missing."""
    return [value if isinstance(value := stats.get(key), int) else 0 for key in keys]


def _devices(conn: libvirt.virConnect, group: int, prefix: str) -> list[tuple[str, Stats]]:
    """(domain uuid, one device's stats) for every `prefix` device of every running domain,
    from one bulk stats call of `group` (blocking)."""
    return [
        (dom.UUIDString(), device)
        for dom, stats in conn.getAllDomainStats(group)
        for device in _numbered(stats, prefix)
    ]


def read_interface_counters(conn: libvirt.virConnect) -> list[InterfaceCounters]:
    """Traffic counters of every running domain's interfaces (blocking)."""
    return [
        InterfaceCounters(uuid, str(net.get("name", "")), *_ints(net, "rx.bytes", "tx.bytes"))
        for uuid, net in _devices(conn, libvirt.VIR_DOMAIN_STATS_INTERFACE, "net")
    ]


def read_block_counters(conn: libvirt.virConnect) -> list[BlockCounters]:
    """I/O counters of every running domain's disks (blocking)."""
    return [
        BlockCounters(
            uuid,
            str(block.get("name", "")),
            str(block.get("path", "")),
            *_ints(block, "rd.reqs", "rd.bytes", "wr.reqs", "wr.bytes"),
        )
        for uuid, block in _devices(conn, libvirt.VIR_DOMAIN_STATS_BLOCK, "block")
    ]
