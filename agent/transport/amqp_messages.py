"""AMQP message details shared by the transport: building requests, reading dead letters,
mapping broker refusals to typed errors, and what counts as "the connection went away"."""

from __future__ import annotations

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from agent.errors import TransportError, Unroutable

REASON_HEADER = "x-virtactor-reason"
# Errors that mean "the connection or channel went away": retry once it is back.
CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    RuntimeError,  # aio-pika raises RuntimeError when the underlay channel is closing
)


def persistent_message(body: bytes, message_id: str, ttl: float | None) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        expiration=None if ttl is None else max(ttl, 0.001),
    )


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
