"""Domain lifecycle events as nova's lifecycle transitions: a pure table."""

from __future__ import annotations

import pytest

from actors.lifecycle_events import lifecycle_topic, lifecycle_transition


@pytest.mark.parametrize(
    ("kind", "detail", "transition"),
    [
        ("started", "booted", "started"),
        ("started", "restored", "started"),
        ("stopped", "destroyed", "stopped"),
        ("stopped", "saved", "stopped"),  # a managed save: nova says stopped too
        ("suspended", "paused", "paused"),
        ("suspended", "ioerror", "paused"),
        ("suspended", "postcopy", "postcopy_started"),
        ("suspended", "migrated", "paused"),  # completed or not: the migration workflow knows
        ("resumed", "unpaused", "resumed"),
        ("resumed", "postcopy", "resumed"),
        ("pmsuspended", "memory", "suspended"),
    ],
)
def test_a_lifecycle_event_maps_to_novas_transition(
    kind: str, detail: str, transition: str
) -> None:
    assert lifecycle_transition(kind, detail) == transition


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("defined", "added"),
        ("undefined", "removed"),
        ("shutdown", "finished"),
        ("crashed", "panicked"),
        ("device-removed", ""),
        ("reboot", ""),
    ],
)
def test_events_that_are_no_transition_map_to_none(kind: str, detail: str) -> None:
    assert lifecycle_transition(kind, detail) is None


def test_lifecycle_events_have_their_own_topic_per_instance() -> None:
    assert lifecycle_topic("6695eb01-f6a4-8304-79aa-97f2502e193f") == (
        "instance.6695eb01-f6a4-8304-79aa-97f2502e193f.lifecycle"
    )
