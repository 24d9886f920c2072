"""How `virtactor dead-letters` reads a dead letter: pure functions of its body and headers
(no broker; `test_cli_dead_letters.py` runs the command on the real RabbitMQ)."""

from __future__ import annotations

import datetime

from agent.commands.dead_letters import describe, origin_host, republished_headers
from agent.rpc.envelope import Kind, Request, pack
from agent.transport.topics import Names
from schemas import RequestContext

NAMES = Names("vt")
NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.UTC)
INSTANCE = "6695eb01-f6a4-8304-79aa-97f3502e193b"


def request(kind: Kind = Kind.CAST, host: str = "cmp-1") -> bytes:
    context = RequestContext(request_id="req-1", deadline=1.0)
    return pack(Request("m-1", kind, "pause", host, INSTANCE, context, {}))


def broker_death(queue: str, reason: str = "expired", count: int = 1) -> dict[str, object]:
    died = datetime.datetime(2026, 12, 7, 11, 59, 30)  # AMQP timestamps: UTC, no zone
    return {"queue": queue, "reason": reason, "count": count, "time": died, "exchange": "vt.x"}


def test_a_letter_the_broker_dead_lettered_names_its_queue_time_and_reason() -> None:
    headers = {"x-death": [broker_death("vt.compute.cmp-2", "delivery_limit", 2)]}
    letter = describe(request(host="cmp-2"), "m-1", headers, NAMES, NOW)
    assert (letter.kind, letter.method, letter.host, letter.instance) == (
        "cast",
        "pause",
        "cmp-2",
        INSTANCE,
    )
    assert (letter.reason, letter.died_in, letter.deaths) == (
        "delivery_limit",
        "vt.compute.cmp-2",
        2,
    )
    assert letter.died_at == "2026-12-07T11:59:30+00:00"
    assert letter.age_s == 30.0


def test_a_letter_an_agent_refused_has_its_reason_and_routing_key_and_no_age() -> None:
    headers = {"x-virtactor-reason": "undecodable", "x-original-routing-key": "compute.cmp-3"}
    letter = describe(b"\xc1garbage", "m-2", headers, NAMES, NOW)
    assert (letter.kind, letter.method, letter.host) == (None, None, "cmp-3")
    assert (letter.reason, letter.died_at, letter.age_s, letter.deaths) == (
        "undecodable",
        None,
        None,
        0,
    )


def test_the_queue_it_died_in_wins_over_the_host_the_envelope_names() -> None:
    headers = {"x-death": [broker_death("vt.compute.cmp-9")]}
    assert describe(request(host="cmp-1"), "m-1", headers, NAMES, NOW).host == "cmp-9"


def test_a_broadcast_an_agent_refused_has_no_host() -> None:
    headers = {"x-virtactor-reason": "undecodable", "x-original-routing-key": ""}
    assert origin_host(headers, NAMES) is None
    assert describe(b"\x00", "m-3", headers, NAMES, NOW).host is None


def test_a_queue_of_another_prefix_is_not_a_host_of_this_one() -> None:
    headers = {"x-death": [broker_death("other.compute.cmp-1")]}
    assert origin_host(headers, NAMES) is None


def test_a_letter_without_reason_headers_is_unknown() -> None:
    assert describe(request(), "m-1", {}, NAMES, NOW).reason == "unknown"


def test_a_requeued_request_keeps_its_own_headers_only() -> None:
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-death": [broker_death("vt.compute.cmp-1")],
        "x-first-death-queue": "vt.compute.cmp-1",
        "x-virtactor-reason": "undecodable",
        "x-original-routing-key": "compute.cmp-1",
    }
    assert republished_headers(headers) == {"traceparent": headers["traceparent"]}
