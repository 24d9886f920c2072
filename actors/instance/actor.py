"""The instance actor: one guest's mailbox, so that its operations never race each other.

Its handlers are the per-instance methods of the ComputeDriver contract, named as the
contract names them (`instance_lifecycle`, `instance_power`, `instance_devices`,
`instance_queries`), over an `InstanceDriver`; its state and events live in
`instance_core`. This module adds the power state kept true between operations.

On every domain event and on every resync the actor re-reads the power state from the
hypervisor (events are triggers, not truth, so a lost, duplicated or reordered event costs
nothing), records it (with the vm_state it implies, `vm_state_for_power`) and publishes it
when it changed. A read that finds a running or paused guest shut off may land inside a
reboot (a re-read triggered by an older event, or a resync, while the domain is down for a
moment). With a `down_confirm_delay`, such a "shut off" is not published at once: the state
is read again after the delay, and published only if the guest is still down. The
event-level hold of the agent's reboot-flap filter covers the events themselves; this
covers every other trigger.
"""

from __future__ import annotations

import asyncio

from actors.handlers import handler
from actors.instance.contract import ContractHandlers
from actors.instance.core import ReceivedEvent
from actors.instance.devices import DeviceHandlers
from actors.instance.lifecycle import LifecycleHandlers
from actors.instance.migration import MigrationHandlers
from actors.instance.network import NetworkHandlers
from actors.instance.power import PowerHandlers
from actors.instance.queries import QueryHandlers
from actors.instance.resize import ResizeHandlers
from schemas.objects.enums import PowerState

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


class InstanceActor(
    LifecycleHandlers,
    PowerHandlers,
    DeviceHandlers,
    QueryHandlers,
    MigrationHandlers,
    ResizeHandlers,
    NetworkHandlers,
    ContractHandlers,
):
    """The actor of instance `uuid` (at `instance_address(uuid)`).

    Constructed as `InstanceActor(uuid, hypervisor, sink, driver=..., settings=...,
    down_confirm_delay=...)`; without a driver it only keeps the power state (the
    operations answer `NotSupported`). `power_state` is the last state read (None: unknown,
    or never read); `received` the last `history` domain events, oldest first; `record` the
    instance, when the actor knows one.
    """

    @handler
    async def sync_power_state(self) -> str:
        """Re-read the power state from the hypervisor, record and publish it if it changed,
        return it.

        A state that cannot be read is published (and returned) as `UNKNOWN_POWER_STATE`. A
        running or paused guest read as shut off is published only once a second read,
        `down_confirm_delay` later, confirms it (see the module docstring).
        """
        await self._try_load()
        if self._unsaved:
            await self._save_record(None, force=True)  # the resync after a backend outage
        shown = await self._read()
        if self._needs_confirmation(shown):
            if self._confirm is None:
                self._confirm = asyncio.create_task(
                    self._confirm_later(), name=f"{self.address}:confirm-down"
                )
            return shown.value
        await self._apply_power(shown)
        return shown.value

    @handler
    async def confirm_power_state(self) -> str:
        """The second read of a "shut off": record and publish whatever the state is now."""
        self._confirm = None
        shown = await self._read()
        if shown == self._published:
            self.unconfirmed_downs += 1
        await self._apply_power(shown)
        return shown.value

    @handler
    async def domain_event(self, kind: str, detail: str = "", sequence: int = 0) -> None:
        """A domain event for this instance: recorded, and a trigger to re-read the state."""
        self.received.append(ReceivedEvent(kind, detail, sequence))
        if kind in STATE_EVENTS:
            await self.sync_power_state()

    def _needs_confirmation(self, shown: PowerState) -> bool:
        return (
            self._down_confirm_delay > 0
            and shown == PowerState.SHUTDOWN
            and self._published in (PowerState.RUNNING, PowerState.PAUSED)
        )

    async def _confirm_later(self) -> None:
        await asyncio.sleep(self._down_confirm_delay)
        await self.system.lookup(self.address).tell("confirm_power_state")
