"""Domain events: libvirt's callbacks turned into one plain record, `DomainEvent`.

The Host registers the callbacks of `domain_event_callbacks` on every connection it opens.
Each callback only reads what libvirt handed it (the domain's uuid and name are local to the
domain object, no call to libvirtd) and passes a `DomainEvent` on. Events are triggers, not
truth: whoever receives one re-reads the domain's state from libvirt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import libvirt

from agent.virt.errors import UnknownLifecycleEvent


class DomainEventKind(StrEnum):
    # Lifecycle (VIR_DOMAIN_EVENT_ID_LIFECYCLE), one per virDomainEventType.
    DEFINED = "defined"
    UNDEFINED = "undefined"
    STARTED = "started"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    STOPPED = "stopped"
    SHUTDOWN = "shutdown"
    PMSUSPENDED = "pmsuspended"
    CRASHED = "crashed"
    # One per other event id the agent listens to.
    DEVICE_REMOVED = "device-removed"
    DEVICE_REMOVAL_FAILED = "device-removal-failed"
    JOB_COMPLETED = "job-completed"
    MIGRATION_ITERATION = "migration-iteration"
    REBOOT = "reboot"
    WATCHDOG = "watchdog"
    IO_ERROR = "io-error"


LIFECYCLE_KINDS = frozenset(
    {
        DomainEventKind.DEFINED,
        DomainEventKind.UNDEFINED,
        DomainEventKind.STARTED,
        DomainEventKind.SUSPENDED,
        DomainEventKind.RESUMED,
        DomainEventKind.STOPPED,
        DomainEventKind.SHUTDOWN,
        DomainEventKind.PMSUSPENDED,
        DomainEventKind.CRASHED,
    }
)

_NO_STATS: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True, frozen=True)
class DomainEvent:
    """One event libvirt reported for one domain.

    `detail` is the lifecycle detail (`booted`, `destroyed`, `migrated`, ...), the watchdog
    action, or the I/O-error action, in libvirt's words, lower case. `device` is the device
    alias (device removal, I/O error), `path` the I/O error's source, `reason` its reason,
    `iteration` the migration iteration, `job` the completed job's statistics.
    `sequence` is the order the Host received it in (increasing over the Host's life).
    """

    uuid: str
    name: str
    kind: DomainEventKind
    detail: str = ""
    device: str = ""
    path: str = ""
    reason: str = ""
    iteration: int = 0
    job: Mapping[str, Any] = field(default_factory=lambda: _NO_STATS)
    sequence: int = 0

    @property
    def is_lifecycle(self) -> bool:
        return self.kind in LIFECYCLE_KINDS

    def numbered(self, sequence: int) -> DomainEvent:
        return replace(self, sequence=sequence)


def _constant_names(prefix: str) -> dict[int, str]:
    """libvirt constants `<prefix>FOO_BAR` as {value: "foo-bar"}; new libvirt values included."""
    return {
        getattr(libvirt, name): name[len(prefix) :].lower().replace("_", "-")
        for name in dir(libvirt)
        if name.startswith(prefix)
    }


_LIFECYCLE_TYPES: dict[int, DomainEventKind] = {
    getattr(libvirt, f"VIR_DOMAIN_EVENT_{kind.name}"): kind for kind in LIFECYCLE_KINDS
}
_LIFECYCLE_DETAILS: dict[DomainEventKind, dict[int, str]] = {
    kind: _constant_names(f"VIR_DOMAIN_EVENT_{kind.name}_") for kind in LIFECYCLE_KINDS
}
_WATCHDOG_ACTIONS = _constant_names("VIR_DOMAIN_EVENT_WATCHDOG_")
_IO_ERROR_ACTIONS = _constant_names("VIR_DOMAIN_EVENT_IO_ERROR_")


def lifecycle_event(uuid: str, name: str, event: int, detail: int) -> DomainEvent:
    """The record of a lifecycle callback's (event, detail) pair.

    Raises `UnknownLifecycleEvent` for an event type newer than this libvirt-python; an
    unknown detail of a known type is kept as its number.
    """
    kind = _LIFECYCLE_TYPES.get(event)
    if kind is None:
        raise UnknownLifecycleEvent(event=event, uuid=uuid)
    return DomainEvent(uuid, name, kind, detail=_LIFECYCLE_DETAILS[kind].get(detail, str(detail)))


DeliverEvent = Callable[[DomainEvent], None]
# (event id, callback) pairs, the callback in the signature libvirt-python calls it with.
Registration = tuple[int, Callable[..., None]]


def domain_event_callbacks(deliver: DeliverEvent) -> list[Registration]:
    """The callbacks to register with `domainEventRegisterAny(None, id, callback, opaque)`.

    Each turns its libvirt arguments into a `DomainEvent` and calls `deliver` with it, on the
    thread libvirt dispatches events on. `opaque` is ignored: the caller binds what it needs
    into `deliver`.
    """

    def on_lifecycle(
        _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int, _opaque: Any
    ) -> None:
        try:
            record = lifecycle_event(dom.UUIDString(), dom.name(), event, detail)
        except UnknownLifecycleEvent:
            return  # a future libvirt's event type: nothing here knows how to act on it
        deliver(record)

    def on_reboot(_conn: libvirt.virConnect, dom: libvirt.virDomain, _opaque: Any) -> None:
        deliver(DomainEvent(dom.UUIDString(), dom.name(), DomainEventKind.REBOOT))

    def on_watchdog(
        _conn: libvirt.virConnect, dom: libvirt.virDomain, action: int, _opaque: Any
    ) -> None:
        detail = _WATCHDOG_ACTIONS.get(action, str(action))
        deliver(DomainEvent(dom.UUIDString(), dom.name(), DomainEventKind.WATCHDOG, detail))

    def on_io_error(
        _conn: libvirt.virConnect,
        dom: libvirt.virDomain,
        path: str,
        device: str,
        action: int,
        reason: str,
        _opaque: Any,
    ) -> None:
        detail = _IO_ERROR_ACTIONS.get(action, str(action))
        kind = DomainEventKind.IO_ERROR
        deliver(DomainEvent(dom.UUIDString(), dom.name(), kind, detail, device, path, reason or ""))

    def on_device_removed(
        _conn: libvirt.virConnect, dom: libvirt.virDomain, device: str, _opaque: Any
    ) -> None:
        kind = DomainEventKind.DEVICE_REMOVED
        deliver(DomainEvent(dom.UUIDString(), dom.name(), kind, device=device))

    def on_device_removal_failed(
        _conn: libvirt.virConnect, dom: libvirt.virDomain, device: str, _opaque: Any
    ) -> None:
        kind = DomainEventKind.DEVICE_REMOVAL_FAILED
        deliver(DomainEvent(dom.UUIDString(), dom.name(), kind, device=device))

    def on_job_completed(
        _conn: libvirt.virConnect, dom: libvirt.virDomain, stats: dict[str, Any], _opaque: Any
    ) -> None:
        kind = DomainEventKind.JOB_COMPLETED
        job = MappingProxyType(dict(stats))
        deliver(DomainEvent(dom.UUIDString(), dom.name(), kind, job=job))

    def on_migration_iteration(
        _conn: libvirt.virConnect, dom: libvirt.virDomain, iteration: int, _opaque: Any
    ) -> None:
        kind = DomainEventKind.MIGRATION_ITERATION
        deliver(DomainEvent(dom.UUIDString(), dom.name(), kind, iteration=iteration))

    return [
        (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle),
        (libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, on_reboot),
        (libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG, on_watchdog),
        # The _REASON variant carries the reason; libvirt sends both ids for each error.
        (libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON, on_io_error),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, on_device_removed),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, on_device_removal_failed),
        (libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, on_job_completed),
        (libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, on_migration_iteration),
    ]
