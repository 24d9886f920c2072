"""`virtactor dead-letters [HOST] [--requeue | --purge]`: the requests in the deployment's
dead-letter queue, `<prefix>.dead-letters` (docs/deploy.md, "RabbitMQ").

Requests reach it two ways, told apart by their headers:
- an agent refused one it cannot answer (a cast it could not decode, a reused message id, a
  reply address that is not direct reply-to): `x-virtactor-reason` and
  `x-original-routing-key` (`compute.<host>`), no time;
- the broker dead-lettered it from `<prefix>.compute.<host>` (expired in the queue, or
  delivered `delivery-limit` times without an ack): `x-death`, whose newest entry names the
  queue, the reason and the time.

Reading is non-destructive: each message is fetched unacknowledged (`basic.get`) and handed
back (`nack` with requeue), so the queue keeps its order. `--requeue` publishes each to its
host's routing key on the commands exchange, as a cast (no reply address: its caller stopped
waiting long ago; no expiration), and removes it from the dead letters once the broker
confirmed it; a letter whose host is unknown stays, and so does one whose body the agent cut
(`x-virtactor-body-bytes`: it kept only the first `[amqp] dead_letter_body_bytes`).
`--purge` removes them. Each action applies to at most `--limit` letters, oldest first, and
with HOST to that host's only.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import aio_pika
import aiormq
import msgpack  # type: ignore[import-untyped]
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from agent.commands import EXIT_FAILED, EXIT_OK
from agent.commands.common import BrokerUnreachable, bus_config, shown_url
from agent.commands.render import console, rows_table, write_json
from agent.security import MessageSecurity
from agent.security.settings import client_identity, message_security
from agent.security.signing import SIGNATURE_HEADERS, Purpose
from agent.transport.amqp_messages import BODY_BYTES_HEADER, REASON_HEADER
from agent.transport.topics import Names, host_routing_key

ORIGINAL_ROUTING_KEY = "x-original-routing-key"  # set by an agent's dead-lettering
# What the broker and the agent add when they dead-letter a message; a requeued copy goes
# without them, as the request it was.
DEATH_HEADERS = frozenset(
    {
        REASON_HEADER,
        ORIGINAL_ROUTING_KEY,
        "x-death",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-first-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-last-death-exchange",
        "x-delivery-count",
    }
)
KINDS = {1: "call", 2: "cast"}  # agent.rpc.envelope.Kind, without importing the RPC layer


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """One dead-lettered request as the command shows it."""

    message_id: str | None
    kind: str | None  # call or cast; None when the body is no request envelope
    method: str | None
    host: str | None  # whose queue it was meant for, when that is known
    instance: str | None
    reason: str
    died_in: str | None  # the queue the broker dead-lettered it from
    died_at: str | None  # ISO 8601, when the broker says
    age_s: float | None
    deaths: int  # how many times the broker dead-lettered it
    action: str | None = None  # requeued / purged / left: why


def describe(
    body: bytes,
    message_id: str | None,
    headers: Mapping[str, Any],
    names: Names,
    now: datetime.datetime,
) -> DeadLetter:
    """A dead letter from its body and headers, as of `now` (pure: no broker, no clock)."""
    kind, method, target, instance = _peek(body)
    death = _newest_death(headers)
    died_at = death.get("time") if death else None
    if not isinstance(died_at, datetime.datetime):
        died_at = None
    elif died_at.tzinfo is None:
        died_at = died_at.replace(tzinfo=datetime.UTC)  # AMQP timestamps are UTC seconds
    died_in = death.get("queue") if death else None
    return DeadLetter(
        message_id=message_id,
        kind=kind,
        method=method,
        host=origin_host(headers, names) or target,
        instance=instance,
        reason=_reason(headers, death),
        died_in=died_in if isinstance(died_in, str) else None,
        died_at=None if died_at is None else died_at.isoformat(),
        age_s=None if died_at is None else round((now - died_at).total_seconds(), 3),
        deaths=sum(int(d.get("count", 1)) for d in _deaths(headers)),
    )


def origin_host(headers: Mapping[str, Any], names: Names) -> str | None:
    """The host whose request queue the letter came from: the queue the broker dead-lettered
    it from, else the routing key an agent recorded; None for a broadcast an agent refused."""
    queue_prefix = names.host_queue("x")[:-1]  # "<prefix>.compute."
    for death in _deaths(headers):
        queue = death.get("queue")
        if isinstance(queue, str) and queue.startswith(queue_prefix):
            return queue.removeprefix(queue_prefix)
    key = headers.get(ORIGINAL_ROUTING_KEY)
    if isinstance(key, str) and key.startswith("compute.") and key != "compute.":
        return key.removeprefix("compute.")
    return None


def republished_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers a requeued request goes with: its own, without the dead-lettering's and
    without a signature (a requeued copy is signed by whoever requeues it, if anyone)."""
    return {
        name: value
        for name, value in headers.items()
        if name not in DEATH_HEADERS and name not in SIGNATURE_HEADERS
    }


def _deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    deaths = headers.get("x-death")
    if not isinstance(deaths, list):
        return []
    return [death for death in deaths if isinstance(death, Mapping)]


def _newest_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    deaths = _deaths(headers)  # RabbitMQ keeps the most recent death first
    return deaths[0] if deaths else None


def _reason(headers: Mapping[str, Any], death: Mapping[str, Any] | None) -> str:
    reason = headers.get(REASON_HEADER)
    if isinstance(reason, str):
        return reason
    if death is not None and isinstance(death.get("reason"), str):
        return str(death["reason"])
    return "unknown"


def _peek(body: bytes) -> tuple[str | None, str | None, str | None, str | None]:
    """(kind, method, host, instance) of a request envelope, read from its leading items only
    (agent.rpc.envelope's layout 1), so a request with objects this build does not know, or
    a broken one, is still shown; Nones for what is not there."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(body), 1))
    unpacker.feed(body)
    try:
        if unpacker.read_array_header() < 6 or unpacker.unpack() != 1:
            return None, None, None, None
        kind, _message_id, method, host, instance = (unpacker.unpack() for _ in range(5))
    except (ValueError, msgpack.UnpackException, msgpack.OutOfData, TypeError):
        return None, None, None, None
    if kind not in KINDS:
        return None, None, None, None

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    return KINDS[kind], text(method), text(host), text(instance)


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    config = bus_config(args)
    names = Names(config.amqp.prefix)
    try:
        connection = await aio_pika.connect(config.amqp.url, timeout=args.timeout or 10.0)
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerUnreachable(
            f"cannot connect to the broker at {shown_url(config.amqp.url)}: {reason}"
        ) from exc
    # Under [security] signing, a requeued request is signed again, as this client: the
    # agent would refuse the copy's old signature as a replay (or it had none).
    security = message_security(
        config.security, client_identity(config.security, config.agent.host)
    )
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await _dead_letter_queue(connection, names)
        total = 0 if queue is None else int(queue.declaration_result.message_count or 0)
        letters: list[DeadLetter] = []
        if queue is not None:
            if security is not None and args.requeue:
                await security.start()
            try:
                letters = await _handle(channel, names, args, security)
            finally:
                if security is not None:
                    await security.aclose()
    action = "requeue" if args.requeue else "purge" if args.purge else None
    left = [letter for letter in letters if action and (letter.action or "").startswith("left")]
    if args.json:
        document = {
            "queue": names.dead_letter_queue,
            "total": total,
            "host": args.host,
            "action": action,
            "letters": [asdict(letter) for letter in letters],
        }
        write_json(document, out)
    else:
        _table(letters, names, total, args, out)
    return EXIT_FAILED if left else EXIT_OK


async def _dead_letter_queue(
    connection: aio_pika.abc.AbstractConnection, names: Names
) -> AbstractQueue | None:
    """The queue, declared passively (on a channel of its own: a missing queue closes the
    channel that asked); None if no process of this prefix ever declared it."""
    probe = await connection.channel()
    try:
        return await probe.declare_queue(names.dead_letter_queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None


async def _handle(
    channel: AbstractChannel,
    names: Names,
    args: argparse.Namespace,
    security: MessageSecurity | None = None,
) -> list[DeadLetter]:
    """Fetch the oldest `--limit` letters unacknowledged, act on those of HOST (all without
    one), hand the others back; the letters of HOST with what became of each."""
    queue = await channel.get_queue(names.dead_letter_queue, ensure=False)
    now = datetime.datetime.now(datetime.UTC)
    fetched: list[AbstractIncomingMessage] = []
    shown: list[DeadLetter] = []
    try:
        while len(fetched) < args.limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            fetched.append(message)
            headers = dict(message.headers or {})
            letter = describe(message.body, message.message_id, headers, names, now)
            if args.host is not None and letter.host != args.host:
                continue
            if args.purge:
                await message.ack()
                letter = _with(letter, "purged")
            elif args.requeue:
                requeued = await _requeue(channel, names, message, letter, security)
                letter = _with(letter, requeued)
            shown.append(letter)
    finally:
        for message in fetched:
            if not message.processed:
                await message.nack(requeue=True)
    return shown


async def _requeue(
    channel: AbstractChannel,
    names: Names,
    message: AbstractIncomingMessage,
    letter: DeadLetter,
    security: MessageSecurity | None = None,
) -> str:
    """Publish `message` to its host's routing key as a cast, then remove the dead letter;
    what happened, as the letter's action."""
    if letter.host is None:
        return "left: its host is unknown (a broadcast an agent refused)"
    whole = (message.headers or {}).get(BODY_BYTES_HEADER)
    if isinstance(whole, int):
        return f"left: only the first {len(message.body)} of its {whole} bytes were kept"
    key = host_routing_key(letter.host)
    original = dict(message.headers or {})
    headers = republished_headers(original)
    if security is not None:
        refusal = _not_to_sign(security, letter, message.message_id or "", message.body, original)
        if refusal is not None:
            return refusal
        headers.update(
            security.sign(Purpose.REQUEST, letter.host, message.message_id or "", message.body)
        )
    copy = aio_pika.Message(
        message.body,
        message_id=message.message_id,
        headers=headers,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    exchange = await channel.get_exchange(names.commands, ensure=False)
    try:
        await exchange.publish(copy, routing_key=key, mandatory=True)
    except aio_pika.exceptions.PublishError:
        return f"left: no queue is bound to {key} (the host's queue was deleted)"
    except aio_pika.exceptions.DeliveryError:
        return f"left: the broker refused it for {key} (nack)"
    await message.ack()
    return f"requeued to {key}"


def _not_to_sign(
    security: MessageSecurity,
    letter: DeadLetter,
    message_id: str,
    body: bytes,
    headers: Mapping[str, Any],
) -> str | None:
    """Why a letter must not be signed again as this operator (None: it may). Only a request a
    trusted key signed for that host is: anything else on the broker (an agent refused it
    for its signature, or whoever publishes to the dead-letter exchange put it there)
    would otherwise run with the operator's name on it."""
    if letter.reason.startswith("signature-"):
        return f"left: refused for its signature ({letter.reason}); not signed again"
    assert letter.host is not None
    signer = security.signer_of(Purpose.REQUEST, letter.host, message_id, body, headers)
    if signer is None:
        return f"left: no trusted key signed it for {letter.host}; not signed again"
    return None


def _with(letter: DeadLetter, action: str) -> DeadLetter:
    return DeadLetter(**{**asdict(letter), "action": action})


def _table(
    letters: list[DeadLetter], names: Names, total: int, args: argparse.Namespace, out: TextIO
) -> None:
    rows = [
        {
            "message id": letter.message_id,
            "kind": letter.kind,
            "method": letter.method,
            "host": letter.host,
            "instance": letter.instance,
            "reason": letter.reason,
            "age": _age(letter.age_s),
            **({"action": letter.action} if letter.action else {}),
        }
        for letter in letters
    ]
    whose = "" if args.host is None else f" of {args.host}"
    title = f"{names.dead_letter_queue}: {total} dead letters, {len(letters)} shown{whose}"
    if rows:
        console(out).print(rows_table(rows, title=title))
    else:
        out.write(f"{title}\n")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"  # an agent's refusal carries no time
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
