"""Reboot flapping: hold a domain's stop events briefly, drop them if it starts again.

A hard reboot is a stop and a start. libvirt reports it as SHUTDOWN and STOPPED, then
(RESUMED and) STARTED; whoever re-reads the domain's state on the first of those sees it
shut off for a moment, and power-state listeners would be told a false "shut off". So a stop
event that a reboot can produce opens a hold for that domain: its events are buffered, in
order, for `delay` seconds. A STARTED before the deadline drops the held stop events and
releases the rest with it; at the deadline everything held is released as it came.

Which stop belongs to a reboot cannot be known when it arrives, so every stop a reboot can
produce is held: a real shutdown is reported `delay` late, never wrongly. Stops that no
reboot produces (migrated away, saved, from a snapshot) pass at once.

The filter is pure: time comes in as `now`, so it is tested without clocks or libvirt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.virt.events import DomainEvent, DomainEventKind

_STOPS = frozenset({DomainEventKind.STOPPED, DomainEventKind.SHUTDOWN})
# STOPPED details a reboot never produces: these stops are final the moment they arrive.
_NOT_A_REBOOT = frozenset({"migrated", "saved", "from-snapshot"})


def opens_hold(event: DomainEvent) -> bool:
    """Whether `event` may be the first half of a reboot."""
    return event.kind in _STOPS and event.detail not in _NOT_A_REBOOT


@dataclass(slots=True)
class _Hold:
    deadline: float
    events: list[DomainEvent] = field(default_factory=list)


class RebootFlapFilter:
    """Per-domain holds of stop events; see the module docstring. Not thread-safe."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError(f"reboot flap delay must be >= 0 seconds, got {delay}")
        self.delay = delay
        self._holds: dict[str, _Hold] = {}
        self.dropped = 0  # stop events dropped because the domain started again

    def feed(self, event: DomainEvent, now: float) -> list[DomainEvent]:
        """The events to deliver now, in order, after `event` arrived at time `now`.

        Holds that expired by `now` are released first, so order is kept whatever the
        caller's timer did.
        """
        released = self.due(now)
        hold = self._holds.get(event.uuid)
        if hold is None:
            if self.delay > 0 and opens_hold(event):
                self._holds[event.uuid] = _Hold(now + self.delay, [event])
                return released
            return [*released, event]
        if event.kind is DomainEventKind.STARTED:
            del self._holds[event.uuid]
            kept = [held for held in hold.events if held.kind not in _STOPS]
            self.dropped += len(hold.events) - len(kept)
            return [*released, *kept, event]
        hold.events.append(event)
        return released

    def due(self, now: float) -> list[DomainEvent]:
        """Release, in arrival order, every held event whose hold expired by `now`."""
        expired = [uuid for uuid, hold in self._holds.items() if hold.deadline <= now]
        released: list[DomainEvent] = []
        for uuid in expired:
            released.extend(self._holds.pop(uuid).events)
        released.sort(key=lambda event: event.sequence)
        return released

    def next_deadline(self) -> float | None:
        """When the earliest hold expires; None when nothing is held."""
        return min((hold.deadline for hold in self._holds.values()), default=None)

    def holding(self, uuid: str) -> bool:
        return uuid in self._holds

    def flush(self) -> list[DomainEvent]:
        """Release everything held, in arrival order (the listener is going away)."""
        released = [event for hold in self._holds.values() for event in hold.events]
        self._holds.clear()
        released.sort(key=lambda event: event.sequence)
        return released
