"""The reboot-flap filter, a pure function of events and explicit times (no clock, no libvirt)."""

from __future__ import annotations

import pytest

from agent.virt.events import DomainEvent, DomainEventKind
from agent.virt.reboot_filter import RebootFlapFilter, opens_hold

A = "aaaaaaaa-0000-0000-0000-000000000001"
B = "bbbbbbbb-0000-0000-0000-000000000002"
K = DomainEventKind
_counter = iter(range(1, 10_000))


def ev(kind: DomainEventKind, detail: str = "", uuid: str = A) -> DomainEvent:
    return DomainEvent(uuid, "vm", kind, detail=detail, sequence=next(_counter))


def test_events_that_cannot_be_half_a_reboot_pass_at_once() -> None:
    flaps = RebootFlapFilter(delay=2.0)
    started, paused = ev(K.STARTED, "booted"), ev(K.SUSPENDED, "paused")

    assert flaps.feed(started, now=0.0) == [started]
    assert flaps.feed(paused, now=0.1) == [paused]
    assert flaps.next_deadline() is None


def test_a_stop_followed_by_a_start_within_the_delay_is_dropped() -> None:
    flaps = RebootFlapFilter(delay=2.0)
    shutdown, stopped = ev(K.SHUTDOWN, "host"), ev(K.STOPPED, "destroyed")
    resumed, started = ev(K.RESUMED, "unpaused"), ev(K.STARTED, "booted")

    assert flaps.feed(shutdown, now=10.0) == []
    assert flaps.feed(stopped, now=10.1) == []
    assert flaps.feed(resumed, now=10.2) == []
    assert flaps.next_deadline() == 12.0
    # QEMU reports RESUMED before STARTED on a start: both pass, the stops are gone.
    assert flaps.feed(started, now=10.3) == [resumed, started]
    assert flaps.dropped == 2
    assert not flaps.holding(A)
    assert flaps.due(now=99.0) == []


def test_a_stop_not_followed_by_a_start_is_released_in_order_at_the_deadline() -> None:
    flaps = RebootFlapFilter(delay=2.0)
    shutdown, stopped = ev(K.SHUTDOWN, "guest"), ev(K.STOPPED, "shutdown")
    flaps.feed(shutdown, now=5.0)
    flaps.feed(stopped, now=5.5)

    assert flaps.due(now=6.999) == []
    assert flaps.due(now=7.0) == [shutdown, stopped]
    assert flaps.next_deadline() is None
    assert flaps.dropped == 0


def test_a_start_after_the_deadline_finds_the_stop_released_first() -> None:
    flaps = RebootFlapFilter(delay=1.0)
    stopped, started = ev(K.STOPPED, "destroyed"), ev(K.STARTED, "booted")
    flaps.feed(stopped, now=0.0)

    # The caller's timer never fired: the late start still comes after the stop.
    assert flaps.feed(started, now=3.0) == [stopped, started]
    assert flaps.dropped == 0


@pytest.mark.parametrize("detail", ["migrated", "saved", "from-snapshot"])
def test_stops_no_reboot_produces_pass_at_once(detail: str) -> None:
    flaps = RebootFlapFilter(delay=2.0)
    stopped = ev(K.STOPPED, detail)

    assert not opens_hold(stopped)
    assert flaps.feed(stopped, now=0.0) == [stopped]


def test_holds_are_per_domain() -> None:
    flaps = RebootFlapFilter(delay=2.0)
    stop_a, started_b = ev(K.STOPPED, "destroyed", A), ev(K.STARTED, "booted", B)
    flaps.feed(stop_a, now=0.0)

    assert flaps.feed(started_b, now=0.5) == [started_b]
    assert flaps.holding(A)
    assert not flaps.holding(B)


def test_expired_holds_of_several_domains_are_released_in_arrival_order() -> None:
    flaps = RebootFlapFilter(delay=1.0)
    stop_b, stop_a = ev(K.STOPPED, "destroyed", B), ev(K.STOPPED, "crashed", A)
    flaps.feed(stop_b, now=0.0)
    flaps.feed(stop_a, now=0.2)

    assert flaps.due(now=5.0) == [stop_b, stop_a]


def test_flush_releases_everything_held_in_arrival_order() -> None:
    flaps = RebootFlapFilter(delay=10.0)
    stop_a, stop_b, undefined_a = (
        ev(K.STOPPED, "destroyed", A),
        ev(K.STOPPED, "destroyed", B),
        ev(K.UNDEFINED, "removed", A),
    )
    for event in (stop_a, stop_b, undefined_a):
        flaps.feed(event, now=0.0)

    assert flaps.flush() == [stop_a, stop_b, undefined_a]
    assert flaps.next_deadline() is None


def test_a_zero_delay_holds_nothing() -> None:
    flaps = RebootFlapFilter(delay=0.0)
    stopped = ev(K.STOPPED, "destroyed")

    assert flaps.feed(stopped, now=0.0) == [stopped]


def test_a_negative_delay_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"^reboot flap delay must be >= 0 seconds, got -1\.0$"):
        RebootFlapFilter(delay=-1.0)
