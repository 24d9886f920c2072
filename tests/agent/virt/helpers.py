"""Recording doubles for the Host layer's tests: a HostListener-free sink and waiters.

They record what the code under test published, so tests assert on real outputs; nothing
here stands in for libvirt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from actors.instance import EventSink, InstanceActor, InstanceHypervisor
from schemas.base import VersionedObject


@dataclass(slots=True)
class RecordingSink:
    """An EventSink that keeps every (topic, object) published, in order."""

    published: list[tuple[str, VersionedObject]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        self.published.append((topic, obj))
        self._changed.set()

    def on(self, topic: str) -> list[VersionedObject]:
        return [obj for t, obj in self.published if t == topic]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@dataclass(slots=True)
class InstanceActors:
    """An instance factory for HostRuntime that remembers the actors it made, by uuid."""

    made: dict[str, InstanceActor] = field(default_factory=dict)

    def __call__(self, uuid: str, hypervisor: InstanceHypervisor, sink: EventSink) -> InstanceActor:
        actor = InstanceActor(uuid, hypervisor, sink)
        self.made[uuid] = actor
        return actor

    def kinds(self, uuid: str) -> list[str]:
        actor = self.made.get(uuid)
        return [] if actor is None else [event.kind for event in actor.received]


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` (for state kept by actors, which signal nothing) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - actors' state signals nothing to wait on
            await asyncio.sleep(0.01)
