"""Calls over AMQP: requests published on one confirming channel, replies by direct reply-to.

A call waits for its publisher confirm, then for the reply: a return (no queue bound for the
host) or a nack fails the call at once. Requests go out on aiormq's channel directly and
replies are consumed there (`RawConsumer`): aio-pika's message objects cost more than the rest
of the publish.

A reply sent to the direct reply-to address of a channel that is gone is lost: whenever the
channel reopens (alone, or with the whole connection) replies are consumed again, then every
pending call is sent again with its id. The agent answers a duplicate from its reply cache.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from agent.errors import CallTimeout, TransportClosed
from agent.security import MessageSecurity, SignatureRefused
from agent.security.signing import Purpose
from agent.transport.amqp_consumer import RawConsumer, underlay_channel
from agent.transport.amqp_messages import CONNECTION_ERRORS, DIRECT_REPLY_TO, delivery_error
from agent.transport.topics import host_routing_key

log = logging.getLogger(__name__)

# The channel went away under a publish (its close fails the pending confirms with the broker's
# reason): publish again once it is back, within the caller's deadline.
CHANNEL_GONE = (*CONNECTION_ERRORS, aiormq.exceptions.AMQPChannelError)


@dataclass(slots=True)
class _PendingCall:
    reply: asyncio.Future[bytes]
    body: bytes
    properties: Basic.Properties
    routing_key: str
    host: str
    headers: dict[str, Any]  # as the caller gave them: each send adds its own signature
    expires: float  # unix time: the call's deadline


class AmqpCalls:
    """The calls of one transport: `channel` must confirm and raise on returns."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        exchange: str,
        *,
        check_open: Callable[[], None],
        retry_interval: float,
        security: MessageSecurity | None = None,
    ) -> None:
        self.channel = channel
        self.exchange = exchange
        self.check_open = check_open
        self.retry_interval = retry_interval
        # Signs each request sent, and lets in only the reply the host called signed.
        self.security = security if security is not None and security.enabled else None
        self._pending: dict[str, _PendingCall] = {}
        self._replies = RawConsumer(
            channel, DIRECT_REPLY_TO, self._on_reply, tag=f"replies.{id(self):x}", no_ack=True
        )

    async def start(self) -> None:
        await self._replies.start(follow_reopen=False)
        self.channel.reopen_callbacks.add(self._on_reopen)

    def fail_pending(self) -> None:
        for call in self._pending.values():
            if not call.reply.done():
                call.reply.set_exception(TransportClosed())

    async def call(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        properties = Basic.Properties(
            message_id=message_id,
            correlation_id=message_id,
            reply_to=DIRECT_REPLY_TO,
            expiration=str(max(1, math.ceil(timeout * 1000))),
            headers=None if headers is None else dict(headers),
        )
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        call = _PendingCall(
            reply,
            body,
            properties,
            host_routing_key(host),
            host,
            dict(headers or {}),
            time.time() + timeout,
        )
        self._pending[message_id] = call
        try:
            async with asyncio.timeout(timeout):
                # The confirm arrives about when the request reaches its queue, well before
                # the reply: waiting for it first costs no time and no task.
                await self._publish(call)
                return await reply
        except TimeoutError:
            raise CallTimeout(host=host, method=f"message {message_id}", timeout=timeout) from None
        finally:
            self._pending.pop(message_id, None)
            if reply.done() and not reply.cancelled():
                reply.exception()  # failed by a closing transport while publishing: seen

    async def _publish(self, call: _PendingCall) -> None:
        """Publish, waiting out a broker reconnect (the caller's timeout bounds it)."""
        while not call.reply.done():  # a re-send after a reopen may have been answered
            self.check_open()
            try:
                await self._send(call)
                return
            except aio_pika.exceptions.DeliveryError as exc:
                raise delivery_error(exc, call.host) from exc
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # the caller's own cancellation, or its timeout
                reason: object = "its channel closed and cancelled the confirm"
            except Exception as exc:
                if not isinstance(exc, CHANNEL_GONE) and not call.reply.done():
                    raise
                reason = exc
            if call.reply.done():
                # Answered by a re-send after a reopen, or failed by a closing transport, whose
                # connection fails the confirm with an error of its own.
                return
            log.info("publish of %s interrupted (%s); retrying", call.properties.message_id, reason)
            await asyncio.sleep(self.retry_interval)

    async def _send(self, call: _PendingCall) -> None:
        underlay = await underlay_channel(self.channel)
        if self._replies.tag not in underlay.consumers:
            # Reopened, and the reopen callback has not consumed replies yet: a request naming
            # direct reply-to on a channel not consuming it makes the broker close the channel.
            await self._replies.ensure()
        if self.security is not None:
            # Signed anew for every send: a re-send after a reopen is the same request sent
            # again (the agent answers it from its reply cache), not a replay to refuse.
            message_id = call.properties.message_id or ""
            signature = self.security.sign(
                Purpose.REQUEST, call.host, message_id, call.body, call.expires
            )
            call.properties.headers = {**call.headers, **signature}
        await underlay.basic_publish(
            call.body,
            exchange=self.exchange,
            routing_key=call.routing_key,
            properties=call.properties,
            mandatory=True,
        )

    async def _on_reply(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        message_id = properties.correlation_id or ""
        call = self._pending.get(message_id)
        if call is None or call.reply.done():
            return
        if self.security is not None:
            try:
                self.security.verify(
                    Purpose.REPLY,
                    ("",),
                    message_id,
                    message.body,
                    properties.headers,
                    sender=call.host,
                )
            except SignatureRefused as exc:
                # Not the host's answer: whoever else could publish to this channel's reply
                # address (a consumer of the host's queue that is not the host) is ignored,
                # and the call waits on for the real reply or its deadline.
                log.warning("reply ignored: %s", exc.message)
                return
        call.reply.set_result(message.body)

    async def _on_reopen(self, *_args: Any) -> None:
        await self._replies.ensure()
        for call in list(self._pending.values()):
            if call.reply.done():
                continue
            try:
                await self._send(call)
            except aio_pika.exceptions.DeliveryError as exc:
                if not call.reply.done():
                    call.reply.set_exception(delivery_error(exc, call.host))
            except Exception as exc:
                # Gone again (the next reopen re-sends) or refused: the caller's own publish
                # loop and deadline decide; the other calls are still re-sent.
                log.info("re-sending %s failed (%s)", call.properties.message_id, exc)
