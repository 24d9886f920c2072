"""AMQP message details shared by the transport: building requests, reading dead letters,
mapping broker refusals to typed errors, and what counts as "the connection went away"."""

from __future__ import annotations

from collections.abc import Mapping

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from agent.errors import TransportError, Unroutable

REASON_HEADER = "x-virtactor-reason"
# On a dead letter whose body was cut to its first bytes: the body's whole size in bytes.
BODY_BYTES_HEADER = "x-virtactor-body-bytes"
# The W3C trace context a request carries (agent/observability/tracing.py): kept on the copy
# a handler's outcome dead-letters, so a requeued letter runs in its trace again.
TRACE_HEADERS = ("traceparent", "tracestate")
# RabbitMQ direct reply-to: a caller names the pseudo-queue, and the broker hands the server
# `amq.rabbitmq.reply-to.<token>`, an address that reaches only that caller's channel.
# https://www.rabbitmq.com/docs/direct-reply-to
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
_DIRECT_REPLY_TO_ADDRESS = f"{DIRECT_REPLY_TO}."
# The reason a request naming any other reply address is dead-lettered with.
INVALID_REPLY_TO = "invalid-reply-to"
# Errors that mean "the connection or channel went away": retry once it is back.
CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    RuntimeError,  # aio-pika raises RuntimeError when the underlay channel is closing
)


def persistent_message(
    body: bytes, message_id: str, ttl: float | None, headers: Mapping[str, str] | None = None
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        expiration=None if ttl is None else max(ttl, 0.001),
        headers=None if headers is None else dict(headers),
    )


def is_direct_reply_to(address: str) -> bool:
    """Whether `address` is a caller's direct reply-to address as the broker hands it to the
    server, the only kind a reply is sent to: a reply to an ordinary queue would let whoever
    may publish a request fill any queue with replies."""
    return address.startswith(_DIRECT_REPLY_TO_ADDRESS)


def dead_letter_reason(message: AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if isinstance(reason, str):
        return reason
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return str(deaths[0].get("reason", "unknown"))
    return "unknown"


def delivery_error(exc: aio_pika.exceptions.DeliveryError, host: str) -> TransportError:
    """A returned message is unroutable (no agent queue); a nack is the broker refusing it."""
    if isinstance(exc, aio_pika.exceptions.PublishError):
        return Unroutable(host=host)
    return TransportError(reason=f"the broker refused a message for host {host!r} (nack)")
