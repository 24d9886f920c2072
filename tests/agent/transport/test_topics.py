"""AMQP topic matching as the in-process bus applies it."""

from __future__ import annotations

import pytest

from agent.errors import InvalidRoutingKey
from agent.transport.topics import Names, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("instance.*.state", "instance.u1.state", True),
        ("instance.*.state", "instance.u1.x.state", False),
        ("instance.#", "instance", True),
        ("instance.#", "instance.u1.state", True),
        ("#.progress", "migration.m1.progress", True),
        ("#", "anything.at.all", True),
        ("host.*", "host", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
    ],
)
def test_topic_matching_follows_amqp_rules(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_a_host_name_with_a_dot_is_refused_as_a_routing_word() -> None:
    with pytest.raises(InvalidRoutingKey, match=r"'evil\.#' is not a valid routing-key word"):
        Names("virtactor").host_queue("evil.#")
