"""Which domain lifecycle event is which `LifecycleTransition`: nova's table, as data.

nova's libvirt Host (`_event_lifecycle_callback`) turns libvirt's lifecycle events into the
compute manager's `EVENT_LIFECYCLE_*`; the host actor publishes the same transitions as
`LifecycleEvent`s on `instance.<uuid>.lifecycle`. Events arrive named as the Host layer names
them: the event type (`started`, `suspended`, ...) and libvirt's detail in lower case with
`-` for `_` (`booted`, `postcopy`, ...).
https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainEventType

Where nova differs from a plain table it needs a libvirt call: a guest suspended for a
migration (`suspended`/`migrated`) is `migration_completed` if the migration job completed.
That is the migration workflow's to say, which knows its job; here it is `paused`, nova's
answer when the job did not complete. `pmsuspended` (the guest suspended itself to RAM or
disk) is `suspended`, as its power state is; nova publishes nothing for it.
"""

from __future__ import annotations

from schemas.objects.enums import LifecycleTransition

_BY_EVENT: dict[str, LifecycleTransition] = {
    "started": LifecycleTransition.STARTED,
    "stopped": LifecycleTransition.STOPPED,
    "suspended": LifecycleTransition.PAUSED,
    "resumed": LifecycleTransition.RESUMED,
    "pmsuspended": LifecycleTransition.SUSPENDED,
}
_BY_EVENT_AND_DETAIL: dict[tuple[str, str], LifecycleTransition] = {
    ("suspended", "postcopy"): LifecycleTransition.POSTCOPY_STARTED,
}


def lifecycle_topic(uuid: str) -> str:
    return f"instance.{uuid}.lifecycle"


def lifecycle_transition(kind: str, detail: str) -> LifecycleTransition | None:
    """The transition a domain event of `kind` with `detail` reports; None for the events
    that are none (defined, undefined, shutdown requests, crashes, device and job events)."""
    return _BY_EVENT_AND_DETAIL.get((kind, detail)) or _BY_EVENT.get(kind)
