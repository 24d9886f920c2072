"""The embedded in-process bus: the default transport when no broker URL is configured.

It keeps the AMQP transport's semantics (per-host queues that exist once declared, expiry,
dead letters, prefetch-bounded concurrency, topic events) so a single process — the demo, the
fast tests, a laptop — needs nothing running beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from agent.errors import CallTimeout, TransportClosed, Unroutable
from agent.transport.base import (
    DEAD_LETTER_BODY_BYTES,
    Delivery,
    Outcome,
    RequestHandler,
    Subscription,
    Transport,
    dead_letter_body,
)
from agent.transport.topics import check_word, topic_matches

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
    body: bytes
    message_id: str
    expires_at: float | None
    reply: asyncio.Future[bytes] | None = None
    headers: Mapping[str, str] | None = None


@dataclass(slots=True)
class _HostQueue:
    items: deque[_Request] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    consumer: asyncio.Task[None] | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    fanout: bool = True


class _InProcessSubscription(Subscription):
    """Events wait in a bounded buffer: a subscriber that stops reading loses the oldest
    events (counted in `dropped`), never the process's memory."""

    def __init__(self, bus: InProcessBus, pattern: str, buffer: int) -> None:
        self.pattern = pattern
        self._bus = bus
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffer)
        self.dropped = 0

    def offer(self, body: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(body)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (body := await self._queue.get()) is not None:
            yield body

    async def aclose(self) -> None:
        self._bus._subscriptions.discard(self)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class InProcessBus(Transport):
    """A `Transport` inside one process. `prefetch` bounds concurrent handlers per host; the
    dead letters kept are bounded in number and each to its first `dead_letter_body_bytes`."""

    def __init__(
        self,
        prefetch: int = 64,
        subscription_buffer: int = 10_000,
        dead_letter_limit: int = 10_000,
        dead_letter_body_bytes: int = DEAD_LETTER_BODY_BYTES,
    ) -> None:
        self.prefetch = prefetch
        self.subscription_buffer = subscription_buffer
        self._queues: dict[str, _HostQueue] = {}
        self._subscriptions: set[_InProcessSubscription] = set()
        # Like a broker's dead-letter queue with a length limit: the oldest go first.
        self._dead: deque[tuple[bytes, str]] = deque(maxlen=dead_letter_limit)
        self._dead_letter_body_bytes = dead_letter_body_bytes
        self._closed = False

    async def start(self) -> None:
        self._check_open()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop serving, let in-flight handlers finish (their events still go out), then
        fail what is still queued."""
        for host in list(self._queues):
            await self.unserve(host, timeout)
        self._closed = True
        for queue in self._queues.values():
            for request in queue.items:
                if request.reply is not None and not request.reply.done():
                    request.reply.set_exception(TransportClosed())
        for sub in list(self._subscriptions):
            await sub.aclose()

    async def unserve(self, host: str, timeout: float = 10.0) -> None:
        queue = self._queues.get(host)
        if queue is None or queue.consumer is None:
            return
        consumer, queue.consumer = queue.consumer, None
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        if queue.in_flight:
            _done, pending = await asyncio.wait(set(queue.in_flight), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def declare_host(self, host: str, *, fanout: bool = True) -> None:
        """Create `host`'s queue (serving does it too); requests then queue until served.
        With `fanout=False` it takes no fanouts (a service queue)."""
        self._queues.setdefault(check_word(host), _HostQueue(fanout=fanout))

    async def serve(self, host: str, handler: RequestHandler, *, fanout: bool = True) -> None:
        self._check_open()
        self.declare_host(host, fanout=fanout)
        queue = self._queues[host]
        if queue.consumer is not None:
            raise RuntimeError(f"host {host!r} is already being served on this bus")
        queue.consumer = asyncio.create_task(self._consume(queue, handler), name=f"bus:{host}")

    async def call(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        expires_at = time.monotonic() + timeout
        self._enqueue(host, _Request(body, message_id, expires_at, reply, headers))
        try:
            async with asyncio.timeout(timeout):
                return await reply
        except TimeoutError:
            raise CallTimeout(host=host, method=f"message {message_id}", timeout=timeout) from None

    async def cast(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._enqueue(host, _Request(body, message_id, _expiry(ttl), None, headers))

    async def fanout(
        self,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._check_open()
        for host, queue in self._queues.items():
            if queue.fanout:
                request = _Request(body, message_id, _expiry(ttl), None, headers)
                self._enqueue(host, request)

    async def publish_event(
        self, routing_key: str, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self._check_open()
        for sub in list(self._subscriptions):
            if topic_matches(sub.pattern, routing_key):
                sub.offer(body)

    async def subscribe(self, pattern: str) -> Subscription:
        self._check_open()
        sub = _InProcessSubscription(self, pattern, self.subscription_buffer)
        self._subscriptions.add(sub)
        return sub

    async def dead_letters(self) -> list[tuple[bytes, str]]:
        drained = list(self._dead)
        self._dead.clear()
        return drained

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed()

    def _enqueue(self, host: str, request: _Request) -> None:
        self._check_open()
        queue = self._queues.get(check_word(host))
        if queue is None:
            raise Unroutable(host=host)
        queue.items.append(request)
        queue.ready.set()

    async def _consume(self, queue: _HostQueue, handler: RequestHandler) -> None:
        slots = asyncio.Semaphore(self.prefetch)
        while True:
            while not queue.items:
                queue.ready.clear()
                await queue.ready.wait()
            await slots.acquire()
            request = queue.items.popleft()
            if request.expires_at is not None and time.monotonic() >= request.expires_at:
                self._dead.append((request.body, "expired"))
                slots.release()
                continue
            task = asyncio.create_task(self._handle(request, handler, slots))
            queue.in_flight.add(task)
            task.add_done_callback(queue.in_flight.discard)

    async def _handle(
        self, request: _Request, handler: RequestHandler, slots: asyncio.Semaphore
    ) -> None:
        delivery = Delivery(
            request.body, request.message_id, request.reply is not None, headers=request.headers
        )
        try:
            outcome = await handler(delivery)
        except Exception:
            # A handler must turn every failure into an Outcome; this is a bug, not a request error.
            log.exception("request handler failed; dead-lettering message %s", request.message_id)
            outcome = Outcome(dead_letter="handler-crashed")
        finally:
            slots.release()
        if outcome.dead_letter is not None:
            self._dead.append(
                (dead_letter_body(request.body, self._dead_letter_body_bytes), outcome.dead_letter)
            )
        elif request.reply is not None and outcome.reply is not None:
            with contextlib.suppress(asyncio.InvalidStateError):  # the caller gave up
                request.reply.set_result(outcome.reply)


def _expiry(ttl: float | None) -> float | None:
    return None if ttl is None else time.monotonic() + ttl
