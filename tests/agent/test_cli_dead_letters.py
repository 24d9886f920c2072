"""`virtactor dead-letters` as a script runs it, against the real RabbitMQ: the letters an
agent refused (a cast it cannot decode, on libvirt's test:///default) and the letters the
broker dead-lettered (a cast that expired in a queue nobody consumes), listed without being
taken, narrowed to one host, requeued to their host's queue (where the agent handles them
again), and purged.

The agent runs in this process, on the session loop; each command is a child process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import msgpack  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import AmqpSection, ConductorSection, ResourcesSection
from agent.rpc.envelope import Kind, Request, pack
from agent.service import Agent
from agent.transport import AmqpSettings, AmqpTransport
from agent.transport.topics import Names
from schemas import RequestContext
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import embedded_config
from tests.agent.test_cli_commands import Result, virtactor
from tests.conftest import ON_SESSION_LOOP

pytestmark = ON_SESSION_LOOP

HOST = "cmp-dl"  # served by an agent
IDLE = "cmp-dl-idle"  # a request queue nobody consumes
NOT_AN_ENVELOPE = b"\xc1 not an envelope"
EXPIRY = 0.3  # seconds a cast to IDLE waits before the broker dead-letters it
ARRIVAL_TIMEOUT = 20.0
# No deadline: it may run when requeued. An admin's: the agent's policy lets it run then.
CONTEXT = RequestContext(request_id="req-dead-letters", is_admin=True)


@dataclass
class Bus:
    url: str
    prefix: str
    sender: AmqpTransport
    client: ComputeClient

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    @property
    def options(self) -> list[str]:
        return ["--url", self.url, "--prefix", self.prefix]

    async def dead_letters(self, *args: str) -> Result:
        return await virtactor("dead-letters", *args, *self.options)


@dataclass
class Letters:
    refused: str  # the message id of the cast the agent could not decode
    expired: str  # the message id of the cast that expired in IDLE's queue


async def queue_count(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def purge(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await (await channel.get_queue(queue)).purge()


async def take_one(url: str, queue: str) -> aio_pika.abc.AbstractIncomingMessage | None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        return await (await channel.get_queue(queue)).get(no_ack=True, fail=False)


async def peek_ids(url: str, queue: str) -> list[str | None]:
    """The message ids in `queue`, in order, leaving every message there."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        ids = []
        while (message := await source.get(no_ack=False, fail=False)) is not None:
            ids.append(message.message_id)
        return ids  # unacknowledged: back in the queue when the channel closes


async def wait_for_ids(url: str, queue: str, ids: set[str]) -> None:
    """Until every one of `ids` is in `queue`. An agent dead-letters at least once: a refusal
    whose ack was lost is refused again on redelivery, so a letter may come twice."""
    async with asyncio.timeout(ARRIVAL_TIMEOUT):
        while not ids <= set(await peek_ids(url, queue)):  # noqa: ASYNC110 - a broker queue
            await asyncio.sleep(0.1)


def by_id(document: Any) -> dict[str, dict[str, Any]]:
    return {letter["message_id"]: letter for letter in document["letters"]}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def bus(rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bus]:
    """An agent HOST, the queue of IDLE (declared, never consumed), a transport and a client
    to send with, on a prefix of their own; the broker's topology is deleted on exit."""
    root = tmp_path_factory.mktemp("dead-letters")
    prefix = f"vt-dl-{uuid.uuid4().hex[:8]}"
    base = embedded_config(root, HOST)
    config = dataclasses.replace(
        base,
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        # No conductor on this bus: the agent keeps no records.
        conductor=ConductorSection(save_records=False),
        resources=ResourcesSection(audit_interval=3600),
    )
    agent = Agent(config)
    sender = AmqpTransport(AmqpSettings(url=rabbitmq_url, prefix=prefix))
    client: ComputeClient | None = None
    try:
        await agent.start()
        await agent.wait_ready(timeout=30)
        await sender.start()
        await sender.declare_host(IDLE, fanout=False)
        client = await ComputeClient.connect(
            rabbitmq_url, prefix=prefix, default_timeout=30, announce_interval=None, is_admin=True
        )
        yield Bus(rabbitmq_url, prefix, sender, client)
    finally:
        if client is not None:
            await client.aclose()
        await sender.aclose()
        await agent.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [HOST, IDLE])


@pytest_asyncio.fixture(loop_scope="session")
async def letters(bus: Bus) -> Letters:
    """Two fresh dead letters, and nothing else in the dead-letter queue: one the agent
    refused, one the broker dead-lettered from IDLE's queue when it expired."""
    await purge(bus.url, bus.names.dead_letter_queue)
    await purge(bus.url, bus.names.host_queue(IDLE))
    refused = f"dl-refused-{uuid.uuid4().hex[:8]}"
    await bus.sender.cast(HOST, NOT_AN_ENVELOPE, message_id=refused, ttl=None)
    await wait_for_ids(bus.url, bus.names.dead_letter_queue, {refused})  # the older of the two
    expired = f"dl-expired-{uuid.uuid4().hex[:8]}"
    body = pack(Request(expired, Kind.CAST, "get_host_uptime", IDLE, None, CONTEXT, {}))
    await bus.sender.cast(IDLE, body, message_id=expired, ttl=EXPIRY)
    await wait_for_ids(bus.url, bus.names.dead_letter_queue, {refused, expired})
    return Letters(refused, expired)


async def test_lists_each_letter_with_its_method_host_reason_and_age(
    bus: Bus, letters: Letters
) -> None:
    result = await bus.dead_letters("--json")
    assert result.status == 0, result.stderr
    document = result.json()
    assert document["queue"] == bus.names.dead_letter_queue
    assert document["total"] == len(document["letters"]) >= 2
    listed = by_id(document)
    assert set(listed) == {letters.refused, letters.expired}
    refused, expired = listed[letters.refused], listed[letters.expired]
    assert (refused["reason"], refused["host"], refused["method"]) == ("undecodable", HOST, None)
    assert refused["age_s"] is None  # an agent's refusal carries no time
    assert (expired["reason"], expired["kind"], expired["method"]) == (
        "expired",
        "cast",
        "get_host_uptime",
    )
    assert (expired["host"], expired["died_in"]) == (IDLE, bus.names.host_queue(IDLE))
    assert 0 <= expired["age_s"] < 120 and expired["deaths"] == 1
    # Listing takes nothing away, nor changes the order.
    ids = await peek_ids(bus.url, bus.names.dead_letter_queue)
    assert ids == [letter["message_id"] for letter in document["letters"]]


async def test_a_host_shows_only_the_letters_meant_for_it(bus: Bus, letters: Letters) -> None:
    result = await bus.dead_letters(IDLE, "--json")
    assert result.status == 0, result.stderr
    assert [letter["message_id"] for letter in result.json()["letters"]] == [letters.expired]
    assert result.json()["total"] >= 2


async def test_a_table_for_people(bus: Bus, letters: Letters) -> None:
    result = await bus.dead_letters()
    assert result.status == 0, result.stderr
    assert f"{bus.names.dead_letter_queue}: " in result.stdout
    for text in ("get_host_uptime", "expired", "undecodable", IDLE):
        assert text in result.stdout


async def test_requeue_puts_a_letter_back_in_its_hosts_queue_as_a_cast(
    bus: Bus, letters: Letters
) -> None:
    result = await bus.dead_letters(IDLE, "--requeue", "--json")
    assert result.status == 0, result.stderr
    assert [(letter["message_id"], letter["action"]) for letter in result.json()["letters"]] == [
        (letters.expired, f"requeued to compute.{IDLE}")
    ]
    assert letters.expired not in await peek_ids(bus.url, bus.names.dead_letter_queue)
    message = await take_one(bus.url, bus.names.host_queue(IDLE))
    assert message is not None
    assert message.message_id == letters.expired
    assert (message.reply_to, message.expiration) == (None, None)
    assert "x-death" not in (message.headers or {})
    body = msgpack.unpackb(message.body, raw=False, strict_map_key=False, ext_hook=lambda *_: 0)
    assert body[3] == "get_host_uptime"


async def test_a_letter_requeued_to_its_agent_is_handled_again(bus: Bus, letters: Letters) -> None:
    result = await bus.dead_letters(HOST, "--requeue", "--json")
    assert result.status == 0, result.stderr
    assert {letter["message_id"] for letter in result.json()["letters"]} == {letters.refused}
    # The agent had it again, and refused it again: back among the dead letters, now behind
    # the letter that was younger (one never taken out would have kept its place).
    async with asyncio.timeout(ARRIVAL_TIMEOUT):
        while True:
            ids = await peek_ids(bus.url, bus.names.dead_letter_queue)
            if ids[-1:] == [letters.refused]:
                break
            await asyncio.sleep(0.1)
    assert ids.index(letters.expired) < ids.index(letters.refused)
    listed = by_id((await bus.dead_letters("--json")).json())
    assert listed[letters.refused]["reason"] == "undecodable"


async def test_purge_removes_the_letters(bus: Bus, letters: Letters) -> None:
    result = await bus.dead_letters("--purge", "--json")
    assert result.status == 0, result.stderr
    assert {letter["action"] for letter in result.json()["letters"]} == {"purged"}
    assert set(by_id(result.json())) == {letters.refused, letters.expired}
    assert await queue_count(bus.url, bus.names.dead_letter_queue) == 0
    after = await bus.dead_letters("--json")
    assert (after.json()["total"], after.json()["letters"]) == (0, [])


async def test_a_letter_of_no_known_host_is_left_and_requeue_exits_1(
    bus: Bus, letters: Letters
) -> None:
    await bus.sender.fanout(NOT_AN_ENVELOPE, message_id="dl-broadcast", ttl=None)
    await wait_for_ids(bus.url, bus.names.dead_letter_queue, {"dl-broadcast"})
    result = await bus.dead_letters("--requeue", "--json")
    assert result.status == 1
    actions = {letter["message_id"]: letter["action"] for letter in result.json()["letters"]}
    assert actions["dl-broadcast"].startswith("left: its host is unknown")
    assert actions[letters.expired] == f"requeued to compute.{IDLE}"
    assert "dl-broadcast" in await peek_ids(bus.url, bus.names.dead_letter_queue)


async def test_a_large_refused_request_keeps_only_its_first_bytes_and_is_not_requeued(
    bus: Bus,
) -> None:
    await purge(bus.url, bus.names.dead_letter_queue)
    large = NOT_AN_ENVELOPE + b"x" * (300 * 1024)
    await bus.sender.cast(HOST, large, message_id="dl-large", ttl=None)
    await wait_for_ids(bus.url, bus.names.dead_letter_queue, {"dl-large"})
    result = await bus.dead_letters(HOST, "--requeue", "--json")
    assert result.status == 1
    (letter,) = result.json()["letters"]
    kept = 64 * 1024
    assert letter["action"] == f"left: only the first {kept} of its {len(large)} bytes were kept"
    message = await take_one(bus.url, bus.names.dead_letter_queue)
    assert message is not None and message.message_id == "dl-large"
    headers = message.headers or {}
    assert headers["x-virtactor-reason"] == "undecodable"
    assert headers["x-virtactor-body-bytes"] == len(large)
    assert message.body == large[:kept]
    await purge(bus.url, bus.names.dead_letter_queue)


async def test_requeue_and_purge_together_is_a_usage_error(bus: Bus) -> None:
    result = await bus.dead_letters("--requeue", "--purge")
    assert result.status == 2
    assert "not allowed with argument" in result.stderr


async def test_a_prefix_with_no_dead_letter_queue_has_no_letters(rabbitmq_url: str) -> None:
    prefix = f"vt-dl-none-{uuid.uuid4().hex[:8]}"
    result = await virtactor("dead-letters", "--url", rabbitmq_url, "--prefix", prefix, "--json")
    assert result.status == 0, result.stderr
    assert (result.json()["total"], result.json()["letters"]) == (0, [])
