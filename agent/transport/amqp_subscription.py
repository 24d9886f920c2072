"""An event subscription on RabbitMQ: one exclusive queue on its own channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from agent.security import MessageSecurity, SignatureRefused
from agent.security.signing import Purpose
from agent.transport.amqp_messages import CONNECTION_ERRORS
from agent.transport.base import Subscription

log = logging.getLogger(__name__)


class AmqpSubscription(Subscription):
    """One exclusive queue on its own channel. Events wait in a bounded buffer: a subscriber
    that stops reading loses the oldest events (counted in `dropped`), never the process's
    memory. With message security, an event not signed as it must be is dropped (counted in
    the security's refusals): a host's events (`host.<host>.*`) must be signed by that host,
    the others by any trusted identity."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: AbstractQueue,
        on_close: Callable[[AmqpSubscription], None],
        buffer: int,
        security: MessageSecurity | None = None,
    ) -> None:
        self._channel = channel
        self._queue = queue
        self._on_close = on_close
        self._items: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffer)
        self._tag: str | None = None
        self._closed = False
        self._security = security if security is not None and security.enabled else None
        # This subscription's own: the broker hands each bound queue its copy of an event.
        self._replays = None if self._security is None else self._security.replay_memory()
        self.dropped = 0

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._security is not None and not self._verified(message):
            return
        if self._items.full():
            self._items.get_nowait()
            self.dropped += 1
        self._items.put_nowait(message.body)

    def _verified(self, message: AbstractIncomingMessage) -> bool:
        assert self._security is not None
        key = message.routing_key or ""
        scope, _, rest = key.partition(".")
        try:
            self._security.verify(
                Purpose.EVENT,
                (key,),
                "",  # events are signed without one: aio-pika gives each a random id
                message.body,
                message.headers,
                sender=rest.partition(".")[0] if scope == "host" else None,
                replays=self._replays,
            )
        except SignatureRefused as exc:
            log.warning("event %s dropped: %s", key, exc.message)
            return False
        return True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (body := await self._items.get()) is not None:
            yield body

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        if self._items.full():
            self._items.get_nowait()
        self._items.put_nowait(None)
        with contextlib.suppress(*CONNECTION_ERRORS):
            if self._tag is not None:
                await self._queue.cancel(self._tag)
            await self._queue.delete(if_unused=False, if_empty=False)
            await self._channel.close()
