"""Consuming a queue on the aiormq channel under an aio-pika robust channel.

aio-pika wraps every delivery in an `IncomingMessage` and runs its callback in a task of its
own on top of aiormq's: about 25 µs and one more task per message, paid twice per call (the
request, the reply). The transport's hot paths consume on the underlying aiormq channel and
get aiormq's `DeliveredMessage` instead. What aio-pika's robust queue would do for them is done
here: consume again, under the same tag, when the robust channel reopens (alone or with its
connection), and when the broker cancels the consumer (its queue was deleted, say), after
`prepare` (which declares the queue again) succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage

from agent.transport.amqp_messages import CONNECTION_ERRORS

log = logging.getLogger(__name__)

CANCEL_TIMEOUT = 5.0

DeliveryCallback = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


async def underlay_channel(channel: AbstractRobustChannel) -> aiormq.Channel:
    """The aiormq channel a robust channel currently runs on (waits while it reconnects)."""
    return cast(aiormq.Channel, await channel.get_underlay_channel())


class RawConsumer:
    """One consumer of `queue` on `channel`'s current aiormq channel, kept consuming."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: str,
        callback: DeliveryCallback,
        *,
        tag: str,
        no_ack: bool = False,
        prepare: Callable[[], Awaitable[Any]] | None = None,
        retry_interval: float = 1.0,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.callback = callback
        self.tag = tag
        self.no_ack = no_ack
        self.prepare = prepare
        self.retry_interval = retry_interval
        self._stopped = False
        self._recovery: asyncio.Task[None] | None = None

    async def start(self, *, follow_reopen: bool = True) -> None:
        """Consume now; with `follow_reopen` also whenever the channel reopens (else the
        owner calls `ensure()` from its own reopen callback, to order it with other work)."""
        await self.ensure()
        if follow_reopen:
            self.channel.reopen_callbacks.add(self._on_reopen)

    async def ensure(self) -> None:
        """Consume on the channel's current aiormq channel unless already consuming there."""
        if not self._stopped:
            await self._consume()

    async def cancel(self) -> None:
        """Stop consuming; deliveries already handed out are the caller's to settle."""
        self._stopped = True
        self.channel.reopen_callbacks.discard(self._on_reopen)
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        # While the connection is down there is no consumer to cancel: do not wait it out.
        with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
            async with asyncio.timeout(CANCEL_TIMEOUT):
                underlay = await underlay_channel(self.channel)
                if self.tag in underlay.consumers:
                    await underlay.basic_cancel(self.tag)

    async def _consume(self) -> None:
        underlay = await underlay_channel(self.channel)
        if self.tag in underlay.consumers:
            return
        if self._on_broker_cancel not in underlay.on_consumer_cancel_callbacks:
            underlay.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        # A reopen and a recovery may race to it: either way the queue is consumed.
        with contextlib.suppress(aiormq.exceptions.DuplicateConsumerTag):
            await underlay.basic_consume(
                self.queue, self.callback, no_ack=self.no_ack, consumer_tag=self.tag
            )

    async def _on_reopen(self, *_args: Any) -> None:
        await self.ensure()

    def _on_broker_cancel(self, frame: Any) -> None:
        if frame.consumer_tag != self.tag or self._stopped:
            return
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        while not self._stopped:
            try:
                if self.prepare is not None:
                    await self.prepare()
                await self._consume()
                log.info("consuming %s again after the broker cancelled it", self.queue)
                return
            except Exception as exc:
                log.warning("consuming %s again failed (%s); retrying", self.queue, exc)
                await asyncio.sleep(self.retry_interval)
