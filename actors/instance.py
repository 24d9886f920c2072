"""The instance actor: one guest's mailbox, so that its operations never race each other.

For now it knows one thing, its power state, and keeps it true: on every domain event and on
every resync it re-reads the state from the hypervisor (events are triggers, not truth, so a
lost, duplicated or reordered event costs nothing) and publishes the power state when it
changed. The driver operations (spawn, reboot, migrate, ...) join it as handlers later.

A read that finds a running or paused guest shut off may land inside a reboot (a re-read
triggered by an older event, or a resync, while the domain is down for a moment). With a
`down_confirm_delay`, such a "shut off" is not published at once: the state is read again
after the delay, and published only if the guest is still down. The event-level hold of the
agent's reboot-flap filter covers the events themselves; this covers every other trigger.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from actors.actor import Actor
from actors.handlers import handler
from schemas.base import VersionedObject
from schemas.objects.enums import PowerState
from schemas.objects.virt import InstanceInfo

log = logging.getLogger(__name__)

# What is published for a domain whose state cannot be read: nova's NOSTATE ("pending"),
# never SHUTDOWN, as an unreadable guest may well be running.
UNKNOWN_POWER_STATE = PowerState.PENDING

# Domain events after which the power state may differ; the others are only recorded.
STATE_EVENTS = frozenset(
    {
        "defined",
        "undefined",
        "started",
        "suspended",
        "resumed",
        "stopped",
        "shutdown",
        "pmsuspended",
        "crashed",
        "io-error",
        "watchdog",
    }
)


class EventSink(Protocol):
    """Where the agent's actors publish what happened (the bus, in the agent)."""

    async def publish(self, topic: str, obj: VersionedObject) -> None: ...


class InstanceHypervisor(Protocol):
    """What an instance actor needs from the hypervisor."""

    async def read_power_state(self, uuid: str) -> PowerState | None:
        """The domain's power state now; `PowerState.PENDING` (no state) when the domain
        does not exist, None when its state cannot be read."""
        ...


def power_state_topic(uuid: str) -> str:
    return f"instance.{uuid}.power_state"


@dataclass(slots=True, frozen=True)
class ReceivedEvent:
    """A domain event as the instance actor received it."""

    kind: str
    detail: str
    sequence: int


class InstanceActor(Actor):
    """The actor of instance `uuid` (at `instance_address(uuid)`).

    `power_state` is the last state read (None: unknown, or never read); `received` the last
    `history` domain events, oldest first.
    """

    def __init__(
        self,
        uuid: str,
        hypervisor: InstanceHypervisor,
        sink: EventSink,
        *,
        down_confirm_delay: float = 0.0,
        history: int = 64,
    ) -> None:
        self.uuid = uuid
        self.power_state: PowerState | None = None
        self.received: deque[ReceivedEvent] = deque(maxlen=history)
        self.syncs = 0  # state reads so far
        self.unconfirmed_downs = 0  # "shut off" reads the confirmation read found up again
        self._hypervisor = hypervisor
        self._sink = sink
        self._down_confirm_delay = down_confirm_delay
        self._published: PowerState | None = None
        self._confirm: asyncio.Task[None] | None = None

    async def on_stop(self) -> None:
        if self._confirm is not None:
            self._confirm.cancel()
            await asyncio.wait([self._confirm])
            self._confirm = None

    @handler
    async def sync_power_state(self) -> str:
        """Re-read the power state from the hypervisor, publish it if it changed, return it.

        A state that cannot be read is published (and returned) as `UNKNOWN_POWER_STATE`. A
        running or paused guest read as shut off is published only once a second read,
        `down_confirm_delay` later, confirms it (see the module docstring).
        """
        shown = await self._read()
        if self._needs_confirmation(shown):
            if self._confirm is None:
                self._confirm = asyncio.create_task(
                    self._confirm_later(), name=f"{self.address}:confirm-down"
                )
            return shown.value
        await self._publish(shown)
        return shown.value

    @handler
    async def confirm_power_state(self) -> str:
        """The second read of a "shut off": publish whatever the state is now."""
        self._confirm = None
        shown = await self._read()
        if shown == self._published:
            self.unconfirmed_downs += 1
        await self._publish(shown)
        return shown.value

    @handler
    async def domain_event(self, kind: str, detail: str = "", sequence: int = 0) -> None:
        """A domain event for this instance: recorded, and a trigger to re-read the state."""
        self.received.append(ReceivedEvent(kind, detail, sequence))
        if kind in STATE_EVENTS:
            await self.sync_power_state()

    async def _read(self) -> PowerState:
        state = await self._hypervisor.read_power_state(self.uuid)
        self.syncs += 1
        self.power_state = state
        return UNKNOWN_POWER_STATE if state is None else state

    def _needs_confirmation(self, shown: PowerState) -> bool:
        return (
            self._down_confirm_delay > 0
            and shown == PowerState.SHUTDOWN
            and self._published in (PowerState.RUNNING, PowerState.PAUSED)
        )

    async def _confirm_later(self) -> None:
        await asyncio.sleep(self._down_confirm_delay)
        await self.system.lookup(self.address).tell("confirm_power_state")

    async def _publish(self, shown: PowerState) -> None:
        if shown != self._published:
            log.info(
                "instance %s power state %s -> %s",
                self.uuid,
                self._published,
                shown,
                extra={"instance_uuid": self.uuid},
            )
            await self._sink.publish(power_state_topic(self.uuid), InstanceInfo(state=shown))
            self._published = shown
