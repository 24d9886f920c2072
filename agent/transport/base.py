"""The transport contract: moving opaque message bodies between clients and agents.

A transport knows nothing of envelopes or objects; it carries bytes with a message id, an
expiry and a few text headers (the W3C `traceparent` and `tracestate`: AMQP message headers on
RabbitMQ, where a receiver that does not know a header ignores it). Two implementations share
these semantics: `AmqpTransport` (RabbitMQ through aio-pika) and `InProcessBus` (the embedded
default). What both guarantee:

- `call` delivers one request to the host's queue and returns the reply body, or raises
  `CallTimeout` when no reply came before the timeout; `Unroutable` when no agent queue exists.
- `cast` and `fanout` return once the message is safely queued (publisher confirms on AMQP).
- A request is acknowledged only after its handler finished and its reply was published; a
  handler outcome may instead dead-letter the request.
- A request whose expiry passed while it waited in the queue is not delivered to the handler.
- `publish_event` / `subscribe` follow AMQP topic semantics (`*` one word, `#` zero or more).
- `headers` given to `call`, `cast`, `fanout` reach the handler as `Delivery.headers`; an
  `Outcome`'s headers go with its reply (on AMQP; the in-process caller gets the body only).
  Events are published with theirs; subscriptions yield bodies only.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, frozen=True)
class Delivery:
    """One request as it reaches the serving side."""

    body: bytes
    message_id: str
    reply_expected: bool
    redelivered: bool = False
    # As the sender set them (None: none); on AMQP a value may arrive as bytes.
    headers: Mapping[str, Any] | None = None
    # The identity whose signature the transport verified (docs/security.md); None when the
    # bus does not sign (the in-process bus, or [security] signing = "off").
    sender: str | None = None


@dataclass(slots=True, frozen=True)
class Outcome:
    """What the serving side did with a delivery.

    `reply` is sent to the caller when the delivery expects one; `dead_letter` (a reason) routes
    the request to the dead-letter queue instead of acknowledging it. `headers` go with
    the reply.
    """

    reply: bytes | None = None
    dead_letter: str | None = None
    headers: Mapping[str, str] | None = None


RequestHandler = Callable[[Delivery], Awaitable[Outcome]]


class Subscription(abc.ABC):
    """An event stream bound to one topic pattern; iterate it, then `aclose()` it."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Transport(abc.ABC):
    """The bus between control plane and agents. See the module docstring for the contract."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and declare what the transport needs; idempotent."""

    @abc.abstractmethod
    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight handlers finish up to `timeout`, and may still publish
        events meanwhile), then disconnect; anything still waiting gets `TransportClosed`."""

    @abc.abstractmethod
    async def serve(self, host: str, handler: RequestHandler, *, fanout: bool = True) -> None:
        """Start consuming `host`'s request queue, calling `handler` once per delivery.

        With `fanout=False` the queue takes no fanouts: a service queue (the conductors'),
        not an agent's, which host-scoped broadcasts must not reach."""

    @abc.abstractmethod
    async def unserve(self, host: str, timeout: float = 10.0) -> None:
        """Stop consuming `host`'s queue; handlers under way finish (up to `timeout`).
        Requests still queued stay queued for the next server of `host`."""

    @abc.abstractmethod
    async def call(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """Send a request (with `headers`) and wait for its reply body."""

    @abc.abstractmethod
    async def cast(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue a request that expects no reply; returns once it is safely queued."""

    @abc.abstractmethod
    async def fanout(
        self,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue a request for every serving host."""

    @abc.abstractmethod
    async def publish_event(
        self, routing_key: str, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish an event to subscribers whose pattern matches `routing_key`."""

    @abc.abstractmethod
    async def subscribe(self, pattern: str) -> Subscription:
        """Subscribe to events matching the topic `pattern`; the subscription is live on return."""

    @abc.abstractmethod
    async def dead_letters(self) -> list[tuple[bytes, str]]:
        """Drain and return the dead-lettered requests as (body, reason) pairs."""


DEAD_LETTER_BODY_BYTES = 64 * 1024


def dead_letter_body(body: bytes, keep: int) -> bytes:
    """What a dead letter keeps of `body`: at most its first `keep` bytes. A refused request
    may be as large as the transport carries; the dead letters wait for an operator, who
    needs to see what it was, not all of it."""
    return body if len(body) <= keep else body[:keep]
