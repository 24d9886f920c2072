"""The versions an agent publishes at, from what its subscribers announced: pure policy, no
bus, no clock (time is passed in)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.rpc.announcer import Announcer
from agent.rpc.envelope import Event, Kind, Reply, Request, pack
from agent.rpc.events import EventPublisher
from agent.rpc.manifest import Manifest
from agent.rpc.subscribers import (
    InvalidAnnouncement,
    SubscriberTable,
    announcement,
    event_target,
    parse_announcement,
)
from agent.transport import InProcessBus
from schemas import DecodeLimits, ObjectRegistry, VersionedObject, fields
from schemas.errors import ObjectVersionError
from schemas.versions import Version

OWN = {"Flavor": "1.2", "Instance": "1.4", "Widget": "2.1"}
LIMITS = DecodeLimits()
REGISTRY = ObjectRegistry()


@REGISTRY.register
class Widget(VersionedObject):
    # 1.0: Initial version
    # 1.1: Added colour
    VERSION = "1.1"
    __slots__ = ()

    name: str = fields.String()
    colour: str = fields.String(default="plain")

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 1):
            primitive.pop("colour", None)


@REGISTRY.register
class Gadget(VersionedObject):
    """Holds a Widget in a field."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    part: Widget = fields.Object("Widget")


@REGISTRY.register
class Crate(VersionedObject):
    """Holds Gadgets, and through them Widgets, in a dict."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    contents: dict[str, Gadget] = fields.Dict(fields.Object("Gadget"))


@REGISTRY.register
class Label(VersionedObject):
    """Holds no object."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    text: str = fields.String()


# --- event_target ---------------------------------------------------------------------------


def test_with_no_subscriber_and_no_cap_nothing_is_lowered() -> None:
    assert event_target(OWN, None, []) == {}


def test_the_oldest_announced_version_of_each_object_is_the_target() -> None:
    announced = [{"Instance": "1.2", "Flavor": "1.2"}, {"Instance": "1.3", "Flavor": "1.1"}]
    assert event_target(OWN, None, announced) == {"Instance": "1.2", "Flavor": "1.1"}


def test_newer_announced_versions_and_unknown_objects_lower_nothing() -> None:
    announced = [{"Instance": "1.9", "Flavor": "1.2", "Gizmo": "1.0"}]
    assert event_target(OWN, None, announced) == {}


def test_an_announced_version_of_another_major_is_ignored() -> None:
    assert event_target(OWN, None, [{"Widget": "1.7", "Instance": "1.1"}]) == {"Instance": "1.1"}


def test_the_cap_stays_a_pin_below_every_announcement() -> None:
    cap = {"Instance": "1.1", "Flavor": "1.9"}
    assert event_target(OWN, cap, [{"Instance": "1.3", "Flavor": "1.0"}]) == {
        "Instance": "1.1",
        "Flavor": "1.0",
    }


def test_a_cap_of_another_major_is_refused() -> None:
    with pytest.raises(ObjectVersionError) as refused:
        event_target(OWN, {"Widget": "1.0"}, [])
    assert str(refused.value) == (
        "Widget version 1.0 is not supported (this side has 2.1): "
        "a version cap of another major version"
    )


def test_a_cap_that_is_not_a_version_is_refused() -> None:
    with pytest.raises(ObjectVersionError) as refused:
        event_target(OWN, {"Instance": "1.x"}, [])
    assert str(refused.value) == (
        "Instance version 1.x is not supported (this side has 1.4): malformed version cap"
    )


# --- SubscriberTable ------------------------------------------------------------------------

OLD = Manifest({"Flavor": "1.1", "Instance": "1.2", "Widget": "2.1"})
OLDER = Manifest({"Flavor": "1.0", "Instance": "1.2", "Widget": "2.1"})


def test_a_table_with_no_subscribers_publishes_at_its_own_versions_or_the_cap() -> None:
    assert SubscriberTable(OWN, None, "h1").target(0.0) is None
    capped = SubscriberTable(OWN, {"Instance": "1.3"}, "h1").target(0.0)
    assert capped is not None and dict(capped) == {"Instance": "1.3"}


def test_the_target_is_recomputed_only_when_the_announced_manifests_change() -> None:
    table = SubscriberTable(OWN, None, "h1")
    table.announce("s1", OLD, lease=30.0, now=0.0)
    first = table.target(1.0)
    assert first is not None and dict(first) == {"Flavor": "1.1", "Instance": "1.2"}
    # The same manifest again, from the same or from another subscriber: the same target.
    table.announce("s1", Manifest(dict(OLD)), lease=30.0, now=10.0)
    table.announce("s2", OLD, lease=30.0, now=10.0)
    assert table.target(11.0) is first
    table.announce("s3", OLDER, lease=30.0, now=12.0)
    third = table.target(12.0)
    assert third is not None and dict(third) == {"Flavor": "1.0", "Instance": "1.2"}


def test_a_subscriber_is_forgotten_when_its_lease_runs_out_unless_it_announced_again() -> None:
    table = SubscriberTable(OWN, None, "h1")
    table.announce("steady", OLD, lease=30.0, now=0.0)
    table.announce("gone", OLDER, lease=30.0, now=0.0)
    table.announce("steady", OLD, lease=30.0, now=20.0)
    assert set(table.subscribers(29.9)) == {"steady", "gone"}
    target = table.target(30.0)
    assert target is not None and dict(target) == {"Flavor": "1.1", "Instance": "1.2"}
    assert set(table.subscribers(30.0)) == {"steady"}
    assert table.target(50.0) is None
    assert table.subscribers(50.0) == {}


def test_a_subscriber_announcing_a_new_manifest_replaces_its_old_one() -> None:
    table = SubscriberTable(OWN, None, "h1")
    table.announce("s1", OLDER, lease=30.0, now=0.0)
    table.announce("s1", Manifest(OWN), lease=30.0, now=1.0)
    assert table.target(2.0) is None


# --- announcements on the wire --------------------------------------------------------------


def test_an_announcement_reads_back_as_sent() -> None:
    heard = parse_announcement(announcement("s1", OLD, 30.0), REGISTRY, LIMITS)
    assert (heard.subscriber, heard.manifest, heard.lease) == ("s1", OLD, 30.0)


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (
            Event("subscribers.announce.s2", "s1", {"lease": 30.0}, OLD),
            "topic 'subscribers.announce.s2' does not name its sender 's1'",
        ),
        (
            Event("subscribers.announce.s.1", "s.1", {"lease": 30.0}, OLD),
            "subscriber 's.1' is not one routing-key word",
        ),
        (
            Event("subscribers.announce.s1", "s1", {"lease": 7200}, OLD),
            "lease 7200 is not a number of seconds in (0, 3600]",
        ),
        (
            Event("subscribers.announce.s1", "s1", {"lease": True}, OLD),
            "lease True is not a number of seconds in (0, 3600]",
        ),
        (
            Event("subscribers.announce.s1", "s1", "30", OLD),
            "lease None is not a number of seconds in (0, 3600]",
        ),
        (
            Event("subscribers.announce.s1", "s1", {"lease": 30.0}, Manifest({})),
            "subscriber 's1' named no manifest",
        ),
        (
            Event("subscribers.announce.s1", "s1", {"lease": 30.0}, Manifest({"W": "1.1234567"})),
            "manifest entry W=1.1234567 is not a version",
        ),
        (Reply("m1"), "a reply envelope"),
        (Request("m1", Kind.CAST, "announce", "h1", None, None, {}), "a request envelope"),
    ],
)
def test_a_message_that_is_not_an_announcement_is_refused_naming_what_is_wrong(
    envelope: Any, reason: str
) -> None:
    with pytest.raises(InvalidAnnouncement) as refused:
        parse_announcement(pack(envelope), REGISTRY, LIMITS)
    assert str(refused.value) == f"not a subscriber announcement: {reason}"


def test_an_announce_interval_beyond_the_longest_lease_is_refused() -> None:
    with pytest.raises(ValueError) as refused:
        Announcer(InProcessBus(), OLD, interval=1201)
    assert str(refused.value) == "announce interval 1201 must be above 0 and at most 1200 seconds"


# --- the publisher's back-levelling pass ----------------------------------------------------


def test_only_events_holding_a_lowered_object_are_back_levelled() -> None:
    publisher = EventPublisher(InProcessBus(), "h1", REGISTRY)
    target = Manifest({"Widget": "1.0"})
    assert publisher.back_levels(Widget, target)
    assert publisher.back_levels(Gadget, target)  # in a field
    assert publisher.back_levels(Crate, target)  # in a dict, two levels down
    assert not publisher.back_levels(Label, target)
    assert not publisher.back_levels(Crate, Manifest({"Label": "1.0"}))
