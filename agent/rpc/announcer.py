"""A subscriber's side of `agent.rpc.subscribers`: announcing the manifest it reads.

While a client has event streams open, its `Announcer` publishes the client's object
manifest on `subscribers.announce.<subscriber id>` every `interval` seconds, and at once
whenever an agent starting asks (`subscribers.solicit.<host>`). Each announcement carries a
lease of `LEASE_INTERVALS` intervals: an agent forgets a subscriber it has not heard from
for that long. There is no farewell: a subscriber that stops (closed, crashed, cut off)
is forgotten when its lease runs out, and until then agents only publish older versions
than needed, which every newer subscriber still reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from agent.errors import TransportClosed, TransportError
from agent.rpc.manifest import Manifest
from agent.rpc.subscribers import (
    LEASE_INTERVALS,
    MAX_LEASE,
    SOLICIT_PATTERN,
    announce_topic,
    announcement,
)
from agent.transport import Subscription, Transport

log = logging.getLogger(__name__)

ANNOUNCE_INTERVAL = 10.0


class Announcer:
    """Announces one subscriber's `manifest` on `transport` while anyone `acquire`d it.

    `acquire()` returns once the first announcement was accepted by the bus (confirmed on
    AMQP); agents act on it as soon as it reaches them. The announcing task stops when the
    last user `release`s it, or by itself when the transport closes. Announcing never raises
    into a stream: a failed periodic announcement is logged and the next one follows.
    """

    def __init__(
        self, transport: Transport, manifest: Manifest, interval: float = ANNOUNCE_INTERVAL
    ) -> None:
        if not 0 < interval * LEASE_INTERVALS <= MAX_LEASE:
            raise ValueError(
                f"announce interval {interval!r} must be above 0 and at most "
                f"{MAX_LEASE / LEASE_INTERVALS:.0f} seconds"
            )
        self.transport = transport
        self.manifest = manifest
        self.interval = interval
        self.lease = interval * LEASE_INTERVALS
        self.subscriber = uuid.uuid4().hex
        self.announced = 0
        self._users = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._solicits: Subscription | None = None

    async def acquire(self) -> None:
        """Count one more user; the first starts announcing (see the class docstring).
        Raises the transport's error if the first announcement could not be published."""
        async with self._lock:
            if self._users == 0 or self._task is None or self._task.done():
                await self._stop()
                await self._start()
            self._users += 1

    async def release(self) -> None:
        """Count one user less; the last stops announcing."""
        async with self._lock:
            self._users = max(self._users - 1, 0)
            if self._users == 0:
                await self._stop()

    async def _start(self) -> None:
        self._solicits = await self.transport.subscribe(SOLICIT_PATTERN)
        try:
            await self._announce()
        except BaseException:
            await self._stop()
            raise
        self._task = asyncio.create_task(
            self._run(self._solicits), name=f"announcer:{self.subscriber}"
        )

    async def _stop(self) -> None:
        task, self._task = self._task, None
        solicits, self._solicits = self._solicits, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if solicits is not None:
            await solicits.aclose()

    async def _announce(self) -> None:
        body = announcement(self.subscriber, self.manifest, self.lease)
        await self.transport.publish_event(announce_topic(self.subscriber), body)
        self.announced += 1

    async def _run(self, solicits: Subscription) -> None:
        """Announce every interval and when solicited, until the solicitations end (the
        transport closed) or the task is cancelled."""
        prompt = asyncio.Event()
        beat = asyncio.create_task(self._beat(prompt), name=f"announce:{self.subscriber}")
        try:
            # Any message there asks for an announcement; nothing else is read from it, and
            # solicitations arriving together are answered once.
            async for _ in solicits:
                prompt.set()
        finally:
            beat.cancel()
            await asyncio.wait([beat])

    async def _beat(self, prompt: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await prompt.wait()
            prompt.clear()
            try:
                await self._announce()
            except TransportClosed:
                return
            except TransportError as exc:
                log.warning(
                    "subscriber %s: announcement failed (%s); next in %.1fs",
                    self.subscriber,
                    exc,
                    self.interval,
                )
