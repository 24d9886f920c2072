"""Turning libvirt's lifecycle (event, detail) pairs into DomainEvent records."""

from __future__ import annotations

import libvirt
import pytest

from agent.virt.events import (
    DomainEvent,
    DomainEventKind,
    UnknownLifecycleEvent,
    domain_event_callbacks,
    lifecycle_event,
)

UUID = "8c2f3f4e-7d2b-4c8e-9a51-2b9f1d6f0a11"


@pytest.mark.parametrize(
    ("event", "detail", "kind", "text"),
    [
        (
            libvirt.VIR_DOMAIN_EVENT_STARTED,
            libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED,
            DomainEventKind.STARTED,
            "booted",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_STARTED,
            libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED,
            DomainEventKind.STARTED,
            "migrated",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
            libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR,
            DomainEventKind.SUSPENDED,
            "ioerror",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
            libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED,
            DomainEventKind.SUSPENDED,
            "postcopy-failed",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_RESUMED,
            libvirt.VIR_DOMAIN_EVENT_RESUMED_MIGRATED,
            DomainEventKind.RESUMED,
            "migrated",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_STOPPED,
            libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED,
            DomainEventKind.STOPPED,
            "destroyed",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_SHUTDOWN,
            libvirt.VIR_DOMAIN_EVENT_SHUTDOWN_GUEST,
            DomainEventKind.SHUTDOWN,
            "guest",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_CRASHED,
            libvirt.VIR_DOMAIN_EVENT_CRASHED_PANICKED,
            DomainEventKind.CRASHED,
            "panicked",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED,
            libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED_MEMORY,
            DomainEventKind.PMSUSPENDED,
            "memory",
        ),
        (
            libvirt.VIR_DOMAIN_EVENT_UNDEFINED,
            libvirt.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED,
            DomainEventKind.UNDEFINED,
            "removed",
        ),
    ],
)
def test_lifecycle_event_names_the_kind_and_detail_in_libvirts_words(
    event: int, detail: int, kind: DomainEventKind, text: str
) -> None:
    record = lifecycle_event(UUID, "vm", event, detail)

    assert record == DomainEvent(UUID, "vm", kind, detail=text)
    assert record.is_lifecycle


def test_an_unknown_detail_of_a_known_event_is_kept_as_its_number() -> None:
    record = lifecycle_event(UUID, "vm", libvirt.VIR_DOMAIN_EVENT_STOPPED, 999)

    assert (record.kind, record.detail) == (DomainEventKind.STOPPED, "999")


def test_an_unknown_lifecycle_event_type_raises_unknown_lifecycle_event() -> None:
    with pytest.raises(UnknownLifecycleEvent) as caught:
        lifecycle_event(UUID, "vm", 4242, 0)
    assert str(caught.value) == f"unknown libvirt lifecycle event type 4242 for domain {UUID}"


def test_non_lifecycle_kinds_are_not_lifecycle() -> None:
    assert not DomainEvent(UUID, "vm", DomainEventKind.REBOOT).is_lifecycle


def test_callbacks_cover_every_event_the_agent_routes_once() -> None:
    ids = [event_id for event_id, _ in domain_event_callbacks(lambda _event: None)]

    assert sorted(ids) == sorted(
        {
            libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
            libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG,
            libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON,
            libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
            libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
            libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
            libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
        }
    )


def test_each_callback_turns_its_libvirt_arguments_into_one_domain_event() -> None:
    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByName("test")
        uuid = dom.UUIDString()
        seen: list[DomainEvent] = []
        callbacks = dict(domain_event_callbacks(seen.append))

        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE](
            conn,
            dom,
            libvirt.VIR_DOMAIN_EVENT_STOPPED,
            libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN,
            None,
        )
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE](conn, dom, 4242, 0, None)  # ignored
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_REBOOT](conn, dom, None)
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG](
            conn, dom, libvirt.VIR_DOMAIN_EVENT_WATCHDOG_RESET, None
        )
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON](
            conn,
            dom,
            "/var/lib/disk.img",
            "virtio-disk0",
            libvirt.VIR_DOMAIN_EVENT_IO_ERROR_PAUSE,
            "enospc",
            None,
        )
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED](conn, dom, "net0", None)
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED](conn, dom, "ua-disk1", None)
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED](
            conn, dom, {"time_elapsed": 2100, "memory_total": 1024}, None
        )
        callbacks[libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION](conn, dom, 3, None)
    finally:
        conn.close()

    kinds = DomainEventKind
    assert seen == [
        DomainEvent(uuid, "test", kinds.STOPPED, detail="shutdown"),
        DomainEvent(uuid, "test", kinds.REBOOT),
        DomainEvent(uuid, "test", kinds.WATCHDOG, detail="reset"),
        DomainEvent(
            uuid,
            "test",
            kinds.IO_ERROR,
            detail="pause",
            device="virtio-disk0",
            path="/var/lib/disk.img",
            reason="enospc",
        ),
        DomainEvent(uuid, "test", kinds.DEVICE_REMOVED, device="net0"),
        DomainEvent(uuid, "test", kinds.DEVICE_REMOVAL_FAILED, device="ua-disk1"),
        DomainEvent(
            uuid, "test", kinds.JOB_COMPLETED, job={"time_elapsed": 2100, "memory_total": 1024}
        ),
        DomainEvent(uuid, "test", kinds.MIGRATION_ITERATION, iteration=3),
    ]
