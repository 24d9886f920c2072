"""Signed messages on the real RabbitMQ: an agent with `signing = "require"` serves only
requests signed by a trusted key, once each; its callers take only the replies it signed,
and subscribers only the host events it signed. Whoever merely holds broker credentials
(the raw aio-pika connections here) gets nothing run, and nothing accepted."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.conductor.service import Conductor, running_conductor
from agent.config import AmqpSection, ConductorSection, ResourcesSection, SecuritySection
from agent.errors import CallTimeout
from agent.logs import RequestContextFilter, TextFormatter
from agent.rpc.envelope import Kind, Request, pack
from agent.security import MessageSecurity
from agent.security.signing import SENDER_HEADER, Purpose
from agent.service import Agent, build_transport
from agent.transport import CONDUCTOR_QUEUE, AmqpTransport, Transport
from agent.transport.amqp_messages import REASON_HEADER
from agent.transport.topics import Names
from schemas import RequestContext
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import embedded_config
from tests.agent.security.keyring import make_keys, signer
from tests.agent.test_cli_commands import virtactor

pytestmark = [pytest.mark.rabbitmq, pytest.mark.asyncio(loop_scope="session")]

HOST = "cmp-signed"  # served by the agent
ROGUE = "cmp-rogue"  # a queue whose only consumer is not an agent
IDLE = "cmp-idle"  # a queue nobody consumes
OPERATOR = "operator"
CLIENT = "control-plane"
INTRUDER = "intruder"  # has a key, but no receiver trusts it
CALL_TIMEOUT = 3.0


@dataclass
class Bus:
    url: str
    names: Names
    keys: Path
    agent: Agent
    conductor: Conductor
    client: ComputeClient

    def security(self, identity: str) -> MessageSecurity:
        return signer(self.keys, identity)

    @property
    def agent_security(self) -> MessageSecurity:
        transport = self.agent.transport
        assert isinstance(transport, AmqpTransport) and transport.settings.security is not None
        return transport.settings.security

    async def client_as(self, security: MessageSecurity | None) -> ComputeClient:
        return await ComputeClient.connect(
            self.url,
            prefix=self.names.prefix,
            security=security,
            default_timeout=CALL_TIMEOUT,
            announce_interval=None,
            is_admin=True,
        )


def request_body(message_id: str, method: str = "get_host_uptime") -> bytes:
    context = RequestContext(request_id=f"req-{message_id}", is_admin=True)
    return pack(Request(message_id, Kind.CAST, method, HOST, None, context, {}))


async def dead_letter_reasons(url: str, names: Names, wanted: set[str]) -> dict[str, str]:
    """The reasons of the dead letters with the ids in `wanted`, once all of them are there
    (the others are taken out too)."""
    found: dict[str, str] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(names.dead_letter_queue)
        async with asyncio.timeout(20):
            while not wanted <= set(found):
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.1)
                    continue
                found[message.message_id or ""] = str((message.headers or {})[REASON_HEADER])
    return {mid: found[mid] for mid in wanted}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def bus(rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bus]:
    root = tmp_path_factory.mktemp("signed-bus")
    keys = make_keys(
        root / "keys", [HOST, CONDUCTOR_QUEUE, CLIENT, OPERATOR], untrusted=(INTRUDER,)
    )
    prefix = f"vt-sig-{uuid.uuid4().hex[:8]}"

    def signing_as(identity: str) -> SecuritySection:
        return SecuritySection(
            signing="require",
            private_key=str(keys / "private" / f"{identity}.pem"),
            trusted_keys=str(keys / "trusted"),
        )

    config = dataclasses.replace(
        embedded_config(root, HOST),
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        conductor=ConductorSection(database_url=str(root / "conductor.sqlite")),
        resources=ResourcesSection(audit_interval=3600),
        security=signing_as(HOST),
    )
    # The conductor's own deployment file: its own key.
    conductor_config = dataclasses.replace(config, security=signing_as(CONDUCTOR_QUEUE))
    conductor_bus: Transport = build_transport(conductor_config, CONDUCTOR_QUEUE)
    await conductor_bus.start()
    agent = Agent(config)
    client: ComputeClient | None = None
    try:
        async with running_conductor(conductor_bus, conductor_config, upgrade=True) as conductor:
            try:
                await agent.start()
                await agent.wait_ready(timeout=30)
                bus = Bus(rabbitmq_url, Names(prefix), keys, agent, conductor, None)  # type: ignore[arg-type]
                client = await bus.client_as(bus.security(CLIENT))
                bus.client = client
                yield bus
            finally:
                if client is not None:
                    await client.aclose()
                await agent.aclose()  # before the conductor, which serves its last saves
    finally:
        await conductor_bus.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [HOST, ROGUE, IDLE, CONDUCTOR_QUEUE])


async def test_a_signed_client_is_served_and_named_as_the_sender(bus: Bus) -> None:
    before = bus.agent_security.stats.verified
    uptime = await bus.client.call(HOST, "get_host_uptime")
    assert isinstance(uptime, float) and uptime > 0
    # The request, and this client's check of the reply: both signed and verified.
    assert bus.agent_security.stats.verified > before
    transport = bus.client.transport
    assert isinstance(transport, AmqpTransport) and transport.settings.security is not None
    assert transport.settings.security.stats.verified >= 1


async def test_unsigned_and_untrusted_requests_are_refused_before_anything_runs(
    bus: Bus,
) -> None:
    refused = bus.agent_security.stats.refused
    unsigned_before, unknown_before = refused["unsigned"], refused["unknown-key"]
    for security in (None, bus.security(INTRUDER)):
        client = await bus.client_as(security)
        try:
            with pytest.raises(CallTimeout):
                await client.call(HOST, "get_host_uptime", message_id=f"m-{uuid.uuid4().hex}")
        finally:
            await client.aclose()
    assert refused["unsigned"] > unsigned_before
    assert refused["unknown-key"] > unknown_before


async def test_a_captured_request_published_again_is_refused_as_a_replay(bus: Bus) -> None:
    """Whoever reads a signed message off the broker can publish its bytes again, headers
    and all: the agent runs the first and refuses the copy (and a copy sent to another
    host: the signature names the host)."""
    signer = bus.security(CLIENT)
    first, forged_target = f"replay-{uuid.uuid4().hex[:8]}", f"moved-{uuid.uuid4().hex[:8]}"
    narrowed = f"narrowed-{uuid.uuid4().hex[:8]}"
    replayed_before = bus.agent_security.stats.refused["replayed"]
    connection = await aio_pika.connect(bus.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        commands = await channel.get_exchange(bus.names.commands)
        body = request_body(first)
        headers = signer.sign(Purpose.REQUEST, HOST, first, body, time.time() + 60)
        for _ in range(2):
            message = aio_pika.Message(body, message_id=first, headers=dict(headers))
            await commands.publish(message, routing_key=f"compute.{HOST}")
        # Signed for ROGUE, published to HOST.
        other = request_body(forged_target)
        elsewhere = signer.sign(Purpose.REQUEST, ROGUE, forged_target, other, time.time() + 60)
        message = aio_pika.Message(other, message_id=forged_target, headers=dict(elsewhere))
        await commands.publish(message, routing_key=f"compute.{HOST}")
        # Signed as a fanout (for every host), published to this host's queue alone.
        third = request_body(narrowed)
        fanned = signer.sign(Purpose.REQUEST, "*", narrowed, third, time.time() + 60)
        message = aio_pika.Message(third, message_id=narrowed, headers=dict(fanned))
        await commands.publish(message, routing_key=f"compute.{HOST}")
    reasons = await dead_letter_reasons(bus.url, bus.names, {first, forged_target, narrowed})
    assert reasons == {
        first: "signature-replayed",
        forged_target: "signature-bad-signature",
        narrowed: "signature-bad-signature",
    }
    assert bus.agent_security.stats.refused["replayed"] == replayed_before + 1


async def test_a_reply_not_signed_by_the_host_called_is_ignored(bus: Bus) -> None:
    """A consumer of ROGUE's queue that is not the agent ROGUE (anyone with the broker's
    credentials can be one) answers a call unsigned, with an untrusted key, and signed by
    a trusted identity that is not ROGUE: the caller takes none of them for the reply."""
    forgers = [None, bus.security(INTRUDER), bus.security(CLIENT)]
    connection = await aio_pika.connect(bus.url)
    answered = 0
    async with connection:
        channel = await connection.channel()
        commands = await channel.get_exchange(bus.names.commands)
        queue = await channel.declare_queue(f"{bus.names.prefix}.rogue", auto_delete=True)
        await queue.bind(commands, routing_key=f"compute.{ROGUE}")

        async def answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal answered
            await message.ack()
            assert message.reply_to is not None and message.message_id is not None
            forger = forgers[answered % len(forgers)]
            reply = b"\x96\x01\x03" + message.message_id.encode()  # any bytes will do
            headers = (
                {} if forger is None else forger.sign(Purpose.REPLY, "", message.message_id, reply)
            )
            await channel.default_exchange.publish(
                aio_pika.Message(reply, correlation_id=message.message_id, headers=headers),
                routing_key=message.reply_to,
            )
            answered += 1

        await queue.consume(answer)
        refused = bus.client.transport.settings.security.stats.refused  # type: ignore[attr-defined]
        before = sum(refused.values())
        for _ in forgers:
            with pytest.raises(CallTimeout):
                await bus.client.call(ROGUE, "get_host_uptime", timeout=1.5)
    assert answered == len(forgers)
    assert sum(refused.values()) - before == len(forgers)
    assert refused["wrong-sender"] >= 1 and refused["unsigned"] >= 1


async def test_a_subscriber_takes_only_the_host_events_the_host_signed(bus: Bus) -> None:
    topic = f"host.{HOST}.probe"
    genuine = bus.security(HOST)
    async with await bus.client.transport.subscribe(topic) as events:
        connection = await aio_pika.connect(bus.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(bus.names.events)
            for forger in (None, bus.security(INTRUDER), bus.security(CLIENT)):
                body = b"forged by " + (b"nobody" if forger is None else forger.identity.encode())
                headers = {} if forger is None else forger.sign(Purpose.EVENT, topic, "", body)
                await exchange.publish(aio_pika.Message(body, headers=headers), routing_key=topic)
            body = b"from the host"
            headers = genuine.sign(Purpose.EVENT, topic, "", body)
            await exchange.publish(aio_pika.Message(body, headers=headers), routing_key=topic)
        async with asyncio.timeout(10):
            first = await anext(aiter(events))
    assert first == b"from the host"


def served_ok(conductor: Conductor) -> bool:
    return any(outcome == "ok" for (_, _, outcome), _count in conductor.server.calls.items())


async def test_the_agent_saves_its_records_through_a_signing_conductor(bus: Bus) -> None:
    """Agent to conductor and back, both signed: the conductor serves the agent's saves (its
    replies signed as "conductor", the name of the queue the agent called)."""
    async with asyncio.timeout(30):
        while not served_ok(bus.conductor):  # noqa: ASYNC110 - counts another task updates
            await asyncio.sleep(0.1)
    conductor_transport = bus.conductor.transport
    assert isinstance(conductor_transport, AmqpTransport)
    security = conductor_transport.settings.security
    assert security is not None and security.identity == CONDUCTOR_QUEUE
    assert security.stats.verified >= 1 and not security.stats.refused


async def test_requeue_signs_again_only_what_a_trusted_key_signed_for_that_host(
    bus: Bus, tmp_path: Path
) -> None:
    """`virtactor dead-letters --requeue` run with the operator's key: a request a trusted
    client signed, expired in an idle host's queue, goes back signed as the operator; an
    unsigned request the agent refused stays where it is, never signed by the operator."""
    unsigned = f"unsigned-{uuid.uuid4().hex[:8]}"
    refused = bus.agent_security.stats.refused
    unsigned_before = refused["unsigned"]
    connection = await aio_pika.connect(bus.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        commands = await channel.get_exchange(bus.names.commands)
        message = aio_pika.Message(request_body(unsigned), message_id=unsigned)
        await commands.publish(message, routing_key=f"compute.{HOST}")
    transport = bus.client.transport
    assert isinstance(transport, AmqpTransport)
    await transport.declare_host(IDLE, fanout=False)
    await bus.client.cast(IDLE, "get_host_uptime", ttl=0.2)  # signed as CLIENT, expires there
    async with asyncio.timeout(20):
        while refused["unsigned"] == unsigned_before:  # noqa: ASYNC110 - the agent's count
            await asyncio.sleep(0.05)
    config = tmp_path / "operator.toml"
    config.write_text(
        f'[amqp]\nurl = "{bus.url}"\nprefix = "{bus.names.prefix}"\n'
        f'[security]\nsigning = "require"\nidentity = "{OPERATOR}"\n'
        f'private_key = "{bus.keys / "private" / f"{OPERATOR}.pem"}"\n'
        f'trusted_keys = "{bus.keys / "trusted"}"\n'
    )
    actions: dict[str, str] = {}
    expired: list[str] = []  # the cast's message id, once its letter is there
    async with asyncio.timeout(30):
        while unsigned not in actions or not expired:  # the expired cast may take a moment
            result = await virtactor("dead-letters", "--requeue", "--json", "--config", str(config))
            assert result.status in (0, 1), result.stderr  # 1: a letter was left
            document = result.json()
            assert isinstance(document, dict)
            actions |= {item["message_id"]: item["action"] for item in document["letters"]}
            expired += [item["message_id"] for item in document["letters"] if item["host"] == IDLE]
            await asyncio.sleep(0.2)
    assert actions[unsigned].startswith("left: refused for its signature (signature-unsigned)")
    (signed,) = expired
    assert actions[signed] == f"requeued to compute.{IDLE}"
    connection = await aio_pika.connect(bus.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(bus.names.host_queue(IDLE))
        copy = await queue.get(no_ack=True, timeout=10)
        assert copy is not None and copy.message_id == signed
        assert (copy.headers or {}).get(SENDER_HEADER) == OPERATOR


async def test_every_line_a_signed_request_causes_names_its_caller(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestContextFilter())
    message_id = f"logged-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.DEBUG):
        await bus.client.call(HOST, "get_host_uptime", message_id=message_id)
    lines = [r for r in caplog.records if getattr(r, "request_id", None) == f"req-{message_id}"]
    assert lines, "the served call logs at least its own line"
    assert {getattr(record, "caller", None) for record in lines} == {CLIENT}
    assert f"by={CLIENT}" in TextFormatter().format(lines[-1])


async def test_a_signed_fanout_reaches_the_agent(bus: Bus) -> None:
    async with await bus.client.subscribe(f"host.{HOST}.status") as events:
        await bus.client.fanout("set_host_enabled", {"enabled": True})
        async with asyncio.timeout(20):
            event = await anext(aiter(events))
    assert getattr(event, "sender_host", None) == HOST
