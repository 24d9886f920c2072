"""Waiting for a device to leave a guest: DEVICE_REMOVED events matched to waiters.

A detach request returns before the guest lets go; libvirt reports the end with a
DEVICE_REMOVED (or DEVICE_REMOVAL_FAILED) event naming the device's alias. The instance actor
that asked is busy waiting, so the event cannot travel through its mailbox: `DeviceEvents`
sees the Host's events first (`TeeListener` hands every event to it as well as to the usual
listener) and resolves the waits registered with `expect`.

    wait = events.expect(uuid, "virtio-disk1")     # before asking, so no event is missed
    guest.detach_device(xml, live=True)
    outcome = await wait.result(timeout)           # "removed", "failed" or None (timed out)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from agent.virt.events import DomainEvent, DomainEventKind
from agent.virt.host import HostListener

REMOVED = "removed"
FAILED = "failed"


class DeviceWait:
    """One registered wait for device `alias` of domain `uuid`."""

    def __init__(self, owner: DeviceEvents, uuid: str, alias: str) -> None:
        self.uuid = uuid
        self.alias = alias
        self._owner = owner
        self._outcomes: asyncio.Queue[str] = asyncio.Queue()

    def deliver(self, outcome: str) -> None:
        self._outcomes.put_nowait(outcome)

    async def result(self, timeout: float) -> str | None:
        """The next outcome (`REMOVED` or `FAILED`), or None if none came within `timeout`."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await self._outcomes.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._owner.forget(self)

    def __enter__(self) -> DeviceWait:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DeviceEvents:
    """Device-removal waits by (uuid, alias); `feed` it every domain event, on the loop."""

    def __init__(self) -> None:
        self._waits: dict[tuple[str, str], list[DeviceWait]] = defaultdict(list)
        self.seen = 0  # device events fed so far

    def expect(self, uuid: str, alias: str) -> DeviceWait:
        wait = DeviceWait(self, uuid, alias)
        self._waits[(uuid, alias)].append(wait)
        return wait

    def forget(self, wait: DeviceWait) -> None:
        waits = self._waits.get((wait.uuid, wait.alias))
        if waits is not None and wait in waits:
            waits.remove(wait)
            if not waits:
                del self._waits[(wait.uuid, wait.alias)]

    def feed(self, event: DomainEvent) -> None:
        if event.kind == DomainEventKind.DEVICE_REMOVED:
            outcome = REMOVED
        elif event.kind == DomainEventKind.DEVICE_REMOVAL_FAILED:
            outcome = FAILED
        else:
            return
        self.seen += 1
        for wait in self._waits.get((event.uuid, event.device), []):
            wait.deliver(outcome)


class TeeListener:
    """A `HostListener` that feeds `DeviceEvents` and then passes everything to `listener`."""

    def __init__(self, listener: HostListener, events: DeviceEvents) -> None:
        self._listener = listener
        self._events = events

    def domain_event(self, event: DomainEvent) -> None:
        self._events.feed(event)
        self._listener.domain_event(event)

    def connection_lost(self, reason: str) -> None:
        self._listener.connection_lost(reason)

    def connection_restored(self) -> None:
        self._listener.connection_restored()
