"""`HostEventRelay`: the Host's news handed to the host actor in order, reboot flaps held.

The Host calls its listener synchronously on the event loop; the host actor takes messages
through an awaitable `tell`. The bridge queues what the Host says and one pump task delivers
it, in that order. Domain events pass the `RebootFlapFilter` first; a timer on the loop
releases held events when their hold expires. Each domain event carries the wall-clock time
it arrived at (`occurred_at`, seconds since the epoch), so one held for a while still says
when it happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agent.virt.events import DomainEvent
from agent.virt.reboot_filter import RebootFlapFilter
from schemas.errors import VirtactorError

log = logging.getLogger(__name__)

Deliver = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class HostEventRelay:
    """A `HostListener` that delivers to the host actor with `deliver(method, args)`.

    Messages: `route_domain_event(uuid, kind, detail, sequence, occurred_at)`,
    `hypervisor_connection_lost(reason)`, `hypervisor_connection_restored()`.
    """

    def __init__(
        self,
        deliver: Deliver,
        *,
        flap_delay: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.filter = RebootFlapFilter(flap_delay)
        self.delivered = 0
        self.failed = 0
        self._deliver = deliver
        self._wall_clock = wall_clock
        # sequence -> (uuid, arrival time) of each event not yet delivered nor dropped.
        self._arrived: dict[int, tuple[str, float]] = {}
        self._queue: deque[tuple[str, Mapping[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start delivering (from a coroutine on the loop the Host runs on)."""
        self._loop = asyncio.get_running_loop()
        self._pump = self._loop.create_task(self._run(), name="host-event-bridge")

    async def aclose(self) -> None:
        """Stop delivering; what is still queued or held is dropped (the actor is going)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            await asyncio.wait([pump])
        self._queue.clear()
        self._arrived.clear()

    @property
    def pending(self) -> int:
        return len(self._queue)

    # --- HostListener ----------------------------------------------------------------------

    def domain_event(self, event: DomainEvent) -> None:
        self._arrived[event.sequence] = (event.uuid, self._wall_clock())
        dropped = self.filter.dropped
        for ready in self.filter.feed(event, self._now()):
            self._enqueue_event(ready)
        if self.filter.dropped != dropped:
            # A start ended the domain's hold: what of it was not released was dropped.
            for sequence, (uuid, _at) in list(self._arrived.items()):
                if uuid == event.uuid:
                    del self._arrived[sequence]
        self._arm_timer()

    def connection_lost(self, reason: str) -> None:
        self._enqueue("hypervisor_connection_lost", {"reason": reason})

    def connection_restored(self) -> None:
        # Held events came before the outage: deliver them before the news of the restart.
        for held in self.filter.flush():
            self._enqueue_event(held)
        self._arm_timer()
        self._enqueue("hypervisor_connection_restored", {})

    # --- internals -------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time() if self._loop is None else self._loop.time()

    def _enqueue_event(self, event: DomainEvent) -> None:
        arrived = self._arrived.pop(event.sequence, None)
        args = {
            "uuid": event.uuid,
            "kind": event.kind.value,
            "detail": event.detail,
            "sequence": event.sequence,
            "occurred_at": self._wall_clock() if arrived is None else arrived[1],
        }
        self._enqueue("route_domain_event", args)

    def _enqueue(self, method: str, args: Mapping[str, Any]) -> None:
        self._queue.append((method, args))
        self._wake.set()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.filter.next_deadline()
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._release_due)

    def _release_due(self) -> None:
        self._timer = None
        for ready in self.filter.due(self._now()):
            self._enqueue_event(ready)
        self._arm_timer()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            method, args = self._queue.popleft()
            try:
                await self._deliver(method, args)
            except VirtactorError as exc:
                # The message is lost, not the ones behind it; the next resync repairs it.
                self.failed += 1
                log.error("host event %s%s not delivered: %s", method, dict(args), exc)
            else:
                self.delivered += 1
