"""HostEventRelay: the Host's news reaches the host actor in order, reboot flaps held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import pytest_asyncio

from actors.errors import MailboxFull
from agent.virt.event_relay import HostEventRelay
from agent.virt.events import DomainEvent, DomainEventKind
from tests.agent.virt.helpers import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

UUID = "cccccccc-0000-0000-0000-000000000003"
K = DomainEventKind
FLAP_DELAY = 0.05


class Deliveries:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = False

    async def __call__(self, method: str, args: Mapping[str, Any]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise MailboxFull(address="host", capacity=1)
        self.seen.append((method, dict(args)))

    def kinds(self) -> list[str]:
        return [args["kind"] for method, args in self.seen if method == "route_domain_event"]


@pytest_asyncio.fixture(loop_scope="session")
async def deliveries() -> Deliveries:
    return Deliveries()


class WallClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def wall_clock() -> WallClock:
    return WallClock()


@pytest_asyncio.fixture(loop_scope="session")
async def bridge(deliveries: Deliveries, wall_clock: WallClock) -> AsyncIterator[HostEventRelay]:
    bridge = HostEventRelay(deliveries, flap_delay=FLAP_DELAY, wall_clock=wall_clock)
    bridge.start()
    yield bridge
    await bridge.aclose()


def event(kind: DomainEventKind, detail: str, sequence: int) -> DomainEvent:
    return DomainEvent(UUID, "vm", kind, detail=detail, sequence=sequence)


def relay(bridge: HostEventRelay, *events: tuple[DomainEventKind, str]) -> None:
    """libvirt's callbacks for `events` (kind, detail), numbered from 1 in order."""
    for sequence, (kind, detail) in enumerate(events, start=1):
        bridge.domain_event(event(kind, detail, sequence))


async def test_domain_events_are_delivered_in_order_as_route_domain_event(
    bridge: HostEventRelay, deliveries: Deliveries
) -> None:
    relay(bridge, (K.DEFINED, "added"), (K.STARTED, "booted"), (K.SUSPENDED, "paused"))
    await wait_for(lambda: len(deliveries.seen) == 3)

    at = 1_800_000_000.0
    assert deliveries.seen == [
        (
            "route_domain_event",
            {"uuid": UUID, "kind": k, "detail": d, "sequence": n, "occurred_at": at},
        )
        for k, d, n in [
            ("defined", "added", 1),
            ("started", "booted", 2),
            ("suspended", "paused", 3),
        ]
    ]


async def test_a_stop_followed_by_a_start_reaches_the_actor_as_the_start_only(
    bridge: HostEventRelay, deliveries: Deliveries
) -> None:
    relay(bridge, (K.STOPPED, "destroyed"), (K.RESUMED, "unpaused"), (K.STARTED, "booted"))
    await wait_for(lambda: len(deliveries.seen) == 2)
    await asyncio.sleep(FLAP_DELAY * 2)

    assert deliveries.kinds() == ["resumed", "started"]
    assert bridge.filter.dropped == 1


async def test_a_stop_alone_is_delivered_once_its_hold_expires(
    bridge: HostEventRelay, deliveries: Deliveries
) -> None:
    bridge.domain_event(event(K.STOPPED, "shutdown", 1))
    await asyncio.sleep(0)
    assert deliveries.seen == []

    await wait_for(lambda: deliveries.kinds() == ["stopped"])
    assert bridge.pending == 0


async def test_a_held_stop_is_delivered_with_the_time_it_arrived_not_its_release(
    bridge: HostEventRelay, deliveries: Deliveries, wall_clock: WallClock
) -> None:
    bridge.domain_event(event(K.STOPPED, "shutdown", 1))
    wall_clock.now += 60  # the hold ends later: the event still says when it happened
    await wait_for(lambda: deliveries.kinds() == ["stopped"])

    assert deliveries.seen[0][1]["occurred_at"] == 1_800_000_000.0


async def test_connection_news_is_delivered_after_the_events_before_it(
    bridge: HostEventRelay, deliveries: Deliveries
) -> None:
    bridge.domain_event(event(K.STOPPED, "destroyed", 1))  # held
    bridge.connection_lost("end of file from libvirtd")
    bridge.connection_restored()
    await wait_for(lambda: len(deliveries.seen) == 3)

    assert [method for method, _ in deliveries.seen] == [
        "hypervisor_connection_lost",
        "route_domain_event",
        "hypervisor_connection_restored",
    ]
    assert deliveries.seen[0][1] == {"reason": "end of file from libvirtd"}


async def test_a_failed_delivery_is_counted_and_does_not_stop_the_next(
    bridge: HostEventRelay, deliveries: Deliveries
) -> None:
    deliveries.fail_next = True
    relay(bridge, (K.DEFINED, "added"), (K.UNDEFINED, "removed"))
    await wait_for(lambda: len(deliveries.seen) == 1)

    assert deliveries.kinds() == ["undefined"]
    assert (bridge.failed, bridge.delivered) == (1, 1)
