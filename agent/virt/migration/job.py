"""A migration job's progress as libvirt reports it (`virDomainGetJobStats`), read and parsed.

`read_job(dom)` is blocking: run it through the Host. The parser is a pure function of the
statistics dictionary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import libvirt

from actors.migration.monitor import JobProgress

_RUNNING_STATES = {
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY),
}


def _int(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key)
    return int(value) if isinstance(value, int | float) else 0


def parse_job_stats(stats: Mapping[str, Any], postcopy: bool = False) -> JobProgress:
    """The progress in `stats`; `postcopy`: the domain is in its post-copy phase."""
    downtime = stats.get(libvirt.VIR_DOMAIN_JOB_DOWNTIME)
    return JobProgress(
        elapsed_ms=_int(stats, libvirt.VIR_DOMAIN_JOB_TIME_ELAPSED),
        data_total=_int(stats, libvirt.VIR_DOMAIN_JOB_DATA_TOTAL),
        data_processed=_int(stats, libvirt.VIR_DOMAIN_JOB_DATA_PROCESSED),
        data_remaining=_int(stats, libvirt.VIR_DOMAIN_JOB_DATA_REMAINING),
        memory_total=_int(stats, libvirt.VIR_DOMAIN_JOB_MEMORY_TOTAL),
        memory_processed=_int(stats, libvirt.VIR_DOMAIN_JOB_MEMORY_PROCESSED),
        memory_remaining=_int(stats, libvirt.VIR_DOMAIN_JOB_MEMORY_REMAINING),
        disk_total=_int(stats, libvirt.VIR_DOMAIN_JOB_DISK_TOTAL),
        disk_processed=_int(stats, libvirt.VIR_DOMAIN_JOB_DISK_PROCESSED),
        disk_remaining=_int(stats, libvirt.VIR_DOMAIN_JOB_DISK_REMAINING),
        iteration=_int(stats, libvirt.VIR_DOMAIN_JOB_MEMORY_ITERATION),
        dirty_rate=_int(stats, libvirt.VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE),
        downtime_ms=int(downtime) if isinstance(downtime, int | float) else None,
        postcopy=postcopy,
    )


def read_job(dom: libvirt.virDomain) -> JobProgress | None:
    """The running job's progress, or None when the domain runs no job (blocking)."""
    stats = dom.jobStats()
    if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) in (
        libvirt.VIR_DOMAIN_JOB_NONE,
        libvirt.VIR_DOMAIN_JOB_COMPLETED,
    ):
        return None
    state = tuple(dom.state())
    return parse_job_stats(stats, postcopy=state in _RUNNING_STATES)
