"""Device-removal waits fed from the Host's events, and the listener that tees them."""

from __future__ import annotations

import pytest

from agent.virt.events import DomainEvent, DomainEventKind
from agent.virt.guest.device_events import FAILED, REMOVED, DeviceEvents, TeeListener
from tests.agent.virt.conftest import RecordingListener

pytestmark = pytest.mark.asyncio(loop_scope="session")

UUID = "5b1f0c2e-8d4a-4e6b-9c7d-1a2b3c4d5e6f"


def removed(alias: str, uuid: str = UUID, failed: bool = False) -> DomainEvent:
    kind = DomainEventKind.DEVICE_REMOVAL_FAILED if failed else DomainEventKind.DEVICE_REMOVED
    return DomainEvent(uuid, "guest", kind, device=alias)


async def test_a_wait_ends_on_the_removal_of_its_device_only() -> None:
    events = DeviceEvents()
    with events.expect(UUID, "virtio-disk1") as wait:
        events.feed(removed("virtio-disk2"))
        events.feed(removed("virtio-disk1", uuid="other"))
        assert await wait.result(0.01) is None
        events.feed(removed("virtio-disk1", failed=True))
        events.feed(removed("virtio-disk1"))
        assert await wait.result(1.0) == FAILED
        assert await wait.result(1.0) == REMOVED
    assert events.seen == 4


async def test_a_closed_wait_hears_nothing_and_lifecycle_events_are_ignored() -> None:
    events = DeviceEvents()
    wait = events.expect(UUID, "net0")
    wait.close()
    wait.close()
    events.feed(removed("net0"))
    events.feed(DomainEvent(UUID, "guest", DomainEventKind.STOPPED, "destroyed"))
    assert await wait.result(0.01) is None
    assert events.seen == 1


async def test_the_tee_feeds_the_waits_and_passes_everything_on() -> None:
    events, listener = DeviceEvents(), RecordingListener()
    tee = TeeListener(listener, events)
    wait = events.expect(UUID, "virtio-disk1")
    tee.domain_event(removed("virtio-disk1"))
    tee.connection_lost("gone")
    tee.connection_restored()
    assert await wait.result(1.0) == REMOVED
    assert [e.kind for e in listener.events] == [DomainEventKind.DEVICE_REMOVED]
    assert listener.changes == ["lost: gone", "restored"]
