"""The AMQP transport: RabbitMQ through aio-pika.

Topology, under a configurable prefix (see `topics.Names`):
- `<p>.commands`   durable topic exchange; `compute.<host>` routes to the host's queue.
- `<p>.broadcast`  durable fanout exchange bound to every host queue.
- `<p>.compute.<host>` durable quorum queue (classic where asked), dead-lettering to
  `<p>.dead-letter` -> `<p>.dead-letters`, with a delivery limit so a message that keeps
  crashing its consumer ends there instead of looping.
- `<p>.events`     durable topic exchange; each subscription is an exclusive queue bound to it.
Replies use RabbitMQ direct reply-to (`amq.rabbitmq.reply-to`): no reply queue to declare.
A request naming any other reply address is dead-lettered (`invalid-reply-to`) unhandled.

Delivery rules: every request is published `mandatory` on a confirming channel, so an
unroutable request fails at once. A call waits for its confirm, then for its reply; casts,
fanouts and events return once confirmed.
Requests are acknowledged after the handler finished and the reply was published. Across a
broker reconnect, publishes are retried with the same message id and pending calls are re-sent:
the receiving side de-duplicates by id. Calls live in `amqp_calls`; requests and replies are
consumed on aiormq's channels (`amqp_consumer`), the slow paths use aio-pika's objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    ExchangeType,
)
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from agent.errors import TransportClosed, TransportError
from agent.security import MessageSecurity, SignatureRefused
from agent.security.signing import EVERY_HOST, SIGNATURE_HEADERS, Purpose
from agent.transport.amqp_calls import AmqpCalls
from agent.transport.amqp_cluster import connect_cluster
from agent.transport.amqp_consumer import RawConsumer
from agent.transport.amqp_messages import (
    BODY_BYTES_HEADER,
    CONNECTION_ERRORS,
    INVALID_REPLY_TO,
    REASON_HEADER,
    TRACE_HEADERS,
    dead_letter_reason,
    delivery_error,
    is_direct_reply_to,
    persistent_message,
)
from agent.transport.amqp_subscription import AmqpSubscription
from agent.transport.base import (
    DEAD_LETTER_BODY_BYTES,
    Delivery,
    Outcome,
    RequestHandler,
    Subscription,
    Transport,
    dead_letter_body,
)
from agent.transport.topics import Names, host_routing_key

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class AmqpSettings:
    """How to reach and shape the broker side. `url` may carry `?heartbeat=N`."""

    url: str
    prefix: str = "virtactor"
    prefetch: int = 64
    quorum: bool = True
    delivery_limit: int = 5
    publish_timeout: float = 30.0
    reconnect_interval: float = 1.0
    subscription_buffer: int = 10_000
    dead_letter_body_bytes: int = DEAD_LETTER_BODY_BYTES  # what a refused request's letter keeps
    # Signs what this transport publishes and checks what it receives (docs/security.md);
    # None: nothing is signed or checked.
    security: MessageSecurity | None = None
    # For amqps:// (amqp_tls.client_context); None: aiormq's default verifying context.
    ssl_context: ssl.SSLContext | None = None


@dataclass(slots=True)
class _Consumer:
    consumer: RawConsumer
    channel: AbstractRobustChannel
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)


class AmqpTransport(Transport):
    """A `Transport` over RabbitMQ. One robust connection; see the module docstring."""

    def __init__(self, settings: AmqpSettings) -> None:
        self.settings = settings
        self.names = Names(settings.prefix)
        self._connection: AbstractRobustConnection | None = None
        self._calls: AmqpCalls | None = None
        self._confirmed: AbstractRobustChannel | None = None  # casts, events, declarations
        self._commands: AbstractExchange | None = None
        self._broadcast: AbstractExchange | None = None
        self._events: AbstractExchange | None = None
        self._dead_letter: AbstractExchange | None = None
        self._consumers: dict[str, _Consumer] = {}
        self._subscriptions: set[AmqpSubscription] = set()
        self._closed = False

    async def start(self) -> None:
        if self._connection is not None:
            return
        if self.settings.security is not None:
            await self.settings.security.start()  # a bad key file fails before connecting
        try:
            # Several comma-separated URLs: the nodes of one cluster, failed over
            # (amqp_cluster).
            self._connection = await connect_cluster(
                self.settings.url,
                reconnect_interval=self.settings.reconnect_interval,
                client_properties={"connection_name": f"virtactor:{self.settings.prefix}"},
                ssl_context=self.settings.ssl_context,
            )
        except BaseException:
            if self.settings.security is not None:
                await self.settings.security.aclose()  # its key refresher, started above
            raise
        # aiormq reports a returned (unroutable) message only on a confirming channel.
        calls_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._confirmed = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        assert calls_channel is not None and self._confirmed is not None
        names = self.names
        self._commands = await self._confirmed.declare_exchange(
            names.commands, ExchangeType.TOPIC, durable=True
        )
        self._broadcast = await self._confirmed.declare_exchange(
            names.broadcast, ExchangeType.FANOUT, durable=True
        )
        self._events = await self._confirmed.declare_exchange(
            names.events, ExchangeType.TOPIC, durable=True
        )
        self._dead_letter = await self._confirmed.declare_exchange(
            names.dead_letter_exchange, ExchangeType.FANOUT, durable=True
        )
        # Declared once, not again at each reconnect (robust=False): a classic queue whose
        # node is down refuses a redeclare with NOT_FOUND, and aio-pika would then drop
        # every reconnect to the other nodes of a cluster until that node is back.
        dead_letters = await self._confirmed.declare_queue(
            names.dead_letter_queue, durable=True, robust=False
        )
        await dead_letters.bind(self._dead_letter, robust=False)
        self._calls = AmqpCalls(
            calls_channel,
            names.commands,
            check_open=self._check_open,
            retry_interval=self.settings.reconnect_interval,
            security=self.settings.security,
        )
        await self._calls.start()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop serving, let in-flight handlers finish (their events still go out), then
        fail what is still pending and disconnect."""
        if self._closed:
            return
        for host in list(self._consumers):
            await self.unserve(host, timeout)
        self._closed = True
        if self._calls is not None:
            self._calls.fail_pending()
        for sub in list(self._subscriptions):
            await sub.aclose()
        if self._connection is not None:
            await self._connection.close()
        if self.settings.security is not None:
            await self.settings.security.aclose()

    async def unserve(self, host: str, timeout: float = 10.0) -> None:
        """Stop consuming `host`'s queue; handlers under way finish (up to `timeout`, then
        they are cancelled and their requests are redelivered later). Queued requests stay."""
        consumer = self._consumers.pop(host, None)
        if consumer is None:
            return
        await consumer.consumer.cancel()
        if consumer.in_flight:
            _done, pending = await asyncio.wait(set(consumer.in_flight), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await consumer.channel.close()

    async def declare_host(
        self, host: str, channel: AbstractRobustChannel | None = None, *, fanout: bool = True
    ) -> AbstractQueue:
        """Declare `host`'s durable request queue and its bindings (serving does it too);
        with `fanout=False`, not bound to the broadcast exchange (a service queue)."""
        channel = channel or self._channel(self._confirmed)
        arguments: dict[str, Any] = {"x-dead-letter-exchange": self.names.dead_letter_exchange}
        if self.settings.quorum:
            arguments["x-queue-type"] = "quorum"
            arguments["x-delivery-limit"] = self.settings.delivery_limit
        queue = await channel.declare_queue(
            self.names.host_queue(host), durable=True, arguments=arguments
        )
        await queue.bind(self._exchange(self._commands), routing_key=host_routing_key(host))
        if fanout:
            await queue.bind(self._exchange(self._broadcast))
        return queue

    async def _declare_apart(self, host: str, fanout: bool) -> None:
        """`declare_host` on a channel of its own: a consumer's recovery, cancelled half-way
        by `unserve`, must not close the channel casts and events are confirmed on."""
        assert self._connection is not None, "start() the transport first"
        channel: AbstractRobustChannel = await self._connection.channel(publisher_confirms=False)
        try:
            await self.declare_host(host, channel, fanout=fanout)
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await channel.close()

    async def delete_host(self, host: str) -> None:
        """Remove `host`'s queue and whatever is in it (operators retiring a host; tests)."""
        channel = self._channel(self._confirmed)
        await channel.queue_delete(self.names.host_queue(host))

    async def serve(self, host: str, handler: RequestHandler, *, fanout: bool = True) -> None:
        assert self._connection is not None, "start() the transport first"
        if host in self._consumers:
            raise RuntimeError(f"host {host!r} is already being served by this transport")
        await self.declare_host(host, fanout=fanout)
        channel: AbstractRobustChannel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.settings.prefetch)
        in_flight: set[asyncio.Task[Any]] = set()

        async def on_request(message: DeliveredMessage) -> None:
            # aiormq cancels its consumer tasks when the channel drops; the handler must still
            # finish (its effect is done or under way, and the reply cache must learn of it)
            # so the redelivery is answered, not executed again: it runs in a task of ours.
            task = asyncio.create_task(self._handle(message, handler, host))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        consumer = RawConsumer(
            channel,
            self.names.host_queue(host),
            on_request,
            tag=f"{self.names.host_queue(host)}.{id(self):x}",
            prepare=lambda: self._declare_apart(host, fanout),
            retry_interval=self.settings.reconnect_interval,
        )
        await consumer.start()
        self._consumers[host] = _Consumer(consumer, channel, in_flight)

    async def call(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        self._check_open()
        if self._calls is None:
            raise RuntimeError("start() the transport first")
        return await self._calls.call(
            host, body, message_id=message_id, timeout=timeout, headers=headers
        )

    async def cast(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._check_open()
        message = persistent_message(body, message_id, ttl, headers)
        signing = _Signing(Purpose.REQUEST, host, _expiry(ttl), message_id)
        await self._confirmed_publish(
            self._commands, message, host_routing_key(host), host, signing
        )

    async def fanout(
        self,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._check_open()
        message = persistent_message(body, message_id, ttl, headers)
        signing = _Signing(Purpose.REQUEST, EVERY_HOST, _expiry(ttl), message_id)
        await self._confirmed_publish(self._broadcast, message, "", "*", signing)

    async def publish_event(
        self, routing_key: str, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self._check_open()
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=None if headers is None else dict(headers),
        )
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                await self._publish_retrying(
                    self._events,
                    message,
                    routing_key,
                    mandatory=False,
                    signing=_Signing(Purpose.EVENT, routing_key, None),
                )
        except TimeoutError:
            raise TransportError(
                reason=f"no publisher confirm for an event within {self.settings.publish_timeout}s"
            ) from None

    async def subscribe(self, pattern: str) -> Subscription:
        self._check_open()
        assert self._connection is not None, "start() the transport first"
        # Its own channel: a subscription's declare or bind failing must not reopen the
        # channel that in-flight calls expect their replies on.
        channel: AbstractRobustChannel = await self._connection.channel(publisher_confirms=False)
        queue = await channel.declare_queue(
            f"{self.settings.prefix}.events.{time.monotonic_ns():x}.{id(self):x}",
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(self._exchange(self._events), routing_key=pattern)
        subscription = AmqpSubscription(
            channel,
            queue,
            self._subscriptions.discard,
            self.settings.subscription_buffer,
            self.settings.security,
        )
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def dead_letters(self) -> list[tuple[bytes, str]]:
        channel = self._channel(self._confirmed)
        queue = await channel.get_queue(self.names.dead_letter_queue)
        drained: list[tuple[bytes, str]] = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            drained.append((message.body, dead_letter_reason(message)))
        return drained

    async def _handle(self, message: DeliveredMessage, handler: RequestHandler, host: str) -> None:
        properties = message.header.properties
        reply_to = properties.reply_to
        deliver = cast(Basic.Deliver, message.delivery)  # what a consumer is handed
        delivery = Delivery(
            body=message.body,
            message_id=properties.message_id or "",
            reply_expected=reply_to is not None,
            redelivered=bool(deliver.redelivered),
            headers=properties.headers,
        )
        security = self.settings.security
        refused: SignatureRefused | None = None
        if security is not None and security.enabled:
            # Before the handler and before anything else is read: who sent it is not known.
            try:
                # A fanout's signature names every host, a request's its one host: each is
                # taken only from the exchange it was signed for, so a captured fanout
                # published to one queue is refused.
                fanned = deliver.exchange == self.names.broadcast
                sender = security.verify(
                    Purpose.REQUEST,
                    (EVERY_HOST,) if fanned else (host,),
                    delivery.message_id,
                    delivery.body,
                    delivery.headers,
                    redelivered=delivery.redelivered,
                )
            except SignatureRefused as exc:
                refused = exc
            else:
                delivery = dataclasses.replace(delivery, sender=sender)
        if refused is not None:
            log.warning("refused %s: %s", delivery.message_id, refused.message)
            outcome = Outcome(dead_letter=f"signature-{refused.fields['reason']}")
        elif reply_to is not None and not is_direct_reply_to(reply_to):
            # Refused before the handler: no effect for a reply that must not be sent.
            log.warning(
                "refused %s: reply-to %r is not a direct reply-to address",
                delivery.message_id,
                reply_to,
            )
            outcome = Outcome(dead_letter=INVALID_REPLY_TO)
        else:
            try:
                outcome = await handler(delivery)
            except Exception:
                # The handler turns request errors into outcomes; reaching here is a bug in it.
                log.exception("request handler failed; dead-lettering %s", delivery.message_id)
                outcome = Outcome(dead_letter="handler-crashed")
        channel = cast(aiormq.Channel, message.channel)
        try:
            if outcome.dead_letter is not None:
                await self._to_dead_letter(message, outcome.dead_letter)
            elif reply_to and outcome.reply is not None:
                # On the channel the request came in on, so the reply leaves before the ack.
                # mandatory=False: with direct reply-to, a mandatory reply is both delivered and
                # returned on RabbitMQ 3.10.
                reply_headers: dict[str, Any] = dict(outcome.headers or {})
                if security is not None:
                    reply_headers.update(
                        security.sign(Purpose.REPLY, "", delivery.message_id, outcome.reply)
                    )
                await channel.basic_publish(
                    outcome.reply,
                    routing_key=reply_to,
                    properties=Basic.Properties(
                        message_id=delivery.message_id,
                        correlation_id=delivery.message_id,
                        headers=reply_headers or None,
                    ),
                    mandatory=False,
                    wait=False,  # the ack below is written after it and waited for
                )
            await channel.basic_ack(cast(int, deliver.delivery_tag))
        except CONNECTION_ERRORS as exc:
            # Unacked, so the broker redelivers it after reconnecting; receivers de-duplicate.
            log.warning("could not settle %s (%s): redelivery follows", delivery.message_id, exc)

    async def _to_dead_letter(self, message: DeliveredMessage, reason: str) -> None:
        original = message.header.properties.headers or {}
        # The trace, and the signature: who sent it stays known to whoever looks at the
        # letter (`virtactor dead-letters --requeue` signs again only what a trusted key did).
        kept = (*TRACE_HEADERS, *SIGNATURE_HEADERS)
        headers = {name: original[name] for name in kept if name in original}
        body = dead_letter_body(message.body, self.settings.dead_letter_body_bytes)
        if len(body) < len(message.body):
            headers[BODY_BYTES_HEADER] = len(message.body)
        copy = aio_pika.Message(
            body,
            message_id=message.header.properties.message_id,
            headers={
                **headers,
                REASON_HEADER: reason,
                "x-original-routing-key": message.routing_key or "",
            },
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._exchange(self._dead_letter).publish(copy, routing_key="", mandatory=False)

    async def _confirmed_publish(
        self,
        exchange: AbstractExchange | None,
        message: aio_pika.Message,
        key: str,
        host: str,
        signing: _Signing,
    ) -> None:
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                await self._publish_retrying(exchange, message, key, signing=signing)
        except aio_pika.exceptions.DeliveryError as exc:
            raise delivery_error(exc, host) from exc
        except TimeoutError:
            raise TransportError(
                reason=f"no publisher confirm within {self.settings.publish_timeout}s"
            ) from None

    async def _publish_retrying(
        self,
        exchange: AbstractExchange | None,
        message: aio_pika.Message,
        key: str,
        mandatory: bool = True,
        signing: _Signing | None = None,
    ) -> None:
        """Publish, waiting out a broker reconnect; the caller's timeout bounds the retries.
        Each attempt is signed anew: a receiver that got the first takes a second with the
        same signature for a replay, where it must see the same message sent again."""
        target = self._exchange(exchange)
        security = self.settings.security
        original = dict(message.headers or {})
        while True:
            self._check_open()
            if signing is not None and security is not None and security.enabled:
                message.headers = {
                    **original,
                    **security.sign(
                        signing.purpose,
                        signing.target,
                        signing.message_id,
                        message.body,
                        signing.expires,
                    ),
                }
            try:
                await target.publish(message, routing_key=key, mandatory=mandatory)
                return
            except CONNECTION_ERRORS as exc:
                log.info("publish of %s interrupted (%s); retrying", message.message_id, exc)
                await asyncio.sleep(self.settings.reconnect_interval)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed()

    @staticmethod
    def _channel(channel: AbstractRobustChannel | None) -> AbstractRobustChannel:
        if channel is None:
            raise RuntimeError("start() the transport first")
        return channel

    @staticmethod
    def _exchange(exchange: AbstractExchange | None) -> AbstractExchange:
        if exchange is None:
            raise RuntimeError("start() the transport first")
        return exchange


@dataclass(slots=True, frozen=True)
class _Signing:
    """What a published message's signature binds it to (agent/security/signing.py)."""

    purpose: Purpose
    target: str
    expires: float | None  # unix time; None: the signer's lifetime
    message_id: str = ""  # a request's; events have none (the broker client may add one)


def _expiry(ttl: float | None) -> float | None:
    return None if ttl is None else time.time() + ttl
