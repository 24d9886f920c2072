"""The instance actor's power state: re-read on every trigger, a reboot's "shut off" confirmed
before it is published.

The hypervisor here answers from a script: the answers are the test's explicit inputs (the
same actor runs over real libvirt in test_host_actor.py and the system tier).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from actors import ActorRef, ActorSystem, BlockingExecutor, instance_address
from actors.instance import InstanceActor, power_state_topic
from schemas.objects.enums import PowerState
from schemas.objects.virt import InstanceInfo
from tests.agent.virt.helpers import RecordingSink, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

UUID = "dddddddd-0000-0000-0000-000000000004"
DELAY = 0.05


class ScriptedHypervisor:
    """Answers `read_power_state` with the next scripted state, then the last one forever."""

    def __init__(self, *states: PowerState | None) -> None:
        self.states = list(states)
        self.reads = 0

    async def read_power_state(self, uuid: str) -> PowerState | None:
        self.reads += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest_asyncio.fixture(loop_scope="session")
async def system(executor: BlockingExecutor) -> AsyncIterator[ActorSystem]:
    async with ActorSystem(executor=executor, stop_timeout=2.0) as actor_system:
        yield actor_system


def spawn(
    system: ActorSystem, hypervisor: ScriptedHypervisor, delay: float = DELAY
) -> tuple[ActorRef, InstanceActor, RecordingSink]:
    sink = RecordingSink()
    actor = InstanceActor(UUID, hypervisor, sink, down_confirm_delay=delay)
    return system.spawn(instance_address(UUID), actor), actor, sink


def published(sink: RecordingSink) -> list[str]:
    return [o.state for o in sink.on(power_state_topic(UUID)) if isinstance(o, InstanceInfo)]


async def test_a_shut_off_read_during_a_reboot_is_never_published(system: ActorSystem) -> None:
    hypervisor = ScriptedHypervisor(PowerState.RUNNING, PowerState.SHUTDOWN, PowerState.RUNNING)
    ref, actor, sink = spawn(system, hypervisor)

    assert await ref.ask("sync_power_state") == PowerState.RUNNING
    assert await ref.ask("sync_power_state") == PowerState.SHUTDOWN
    await wait_for(lambda: hypervisor.reads == 3)
    await asyncio.sleep(0)

    assert published(sink) == [PowerState.RUNNING]
    assert actor.unconfirmed_downs == 1
    assert actor.power_state == PowerState.RUNNING


async def test_a_shut_off_that_lasts_is_published_after_the_confirmation_read(
    system: ActorSystem,
) -> None:
    hypervisor = ScriptedHypervisor(PowerState.PAUSED, PowerState.SHUTDOWN)
    ref, actor, sink = spawn(system, hypervisor)
    await ref.ask("sync_power_state")
    await ref.ask("domain_event", {"kind": "stopped", "detail": "shutdown", "sequence": 7})

    assert published(sink) == [PowerState.PAUSED]
    await sink.wait_until(lambda: len(published(sink)) == 2)
    assert published(sink) == [PowerState.PAUSED, PowerState.SHUTDOWN]
    assert actor.unconfirmed_downs == 0
    assert [(e.kind, e.detail, e.sequence) for e in actor.received] == [("stopped", "shutdown", 7)]


async def test_without_a_confirm_delay_a_shut_off_is_published_at_once(
    system: ActorSystem,
) -> None:
    hypervisor = ScriptedHypervisor(PowerState.RUNNING, PowerState.SHUTDOWN)
    ref, _actor, sink = spawn(system, hypervisor, delay=0.0)
    await ref.ask("sync_power_state")
    await ref.ask("sync_power_state")

    assert published(sink) == [PowerState.RUNNING, PowerState.SHUTDOWN]


async def test_a_state_that_cannot_be_read_is_published_as_unknown_not_shut_off(
    system: ActorSystem,
) -> None:
    hypervisor = ScriptedHypervisor(PowerState.RUNNING, None)
    ref, actor, sink = spawn(system, hypervisor)
    await ref.ask("sync_power_state")

    assert await ref.ask("sync_power_state") == PowerState.PENDING
    assert published(sink) == [PowerState.RUNNING, PowerState.PENDING]
    assert actor.power_state is None


async def test_events_that_cannot_change_the_state_are_recorded_without_a_read(
    system: ActorSystem,
) -> None:
    hypervisor = ScriptedHypervisor(PowerState.RUNNING)
    ref, actor, _sink = spawn(system, hypervisor)
    for kind in ("device-removed", "job-completed", "migration-iteration", "reboot"):
        await ref.ask("domain_event", {"kind": kind})

    assert hypervisor.reads == 0
    assert [e.kind for e in actor.received] == [
        "device-removed",
        "job-completed",
        "migration-iteration",
        "reboot",
    ]


async def test_stopping_the_actor_cancels_a_pending_confirmation(system: ActorSystem) -> None:
    hypervisor = ScriptedHypervisor(PowerState.RUNNING, PowerState.SHUTDOWN)
    ref, _actor, sink = spawn(system, hypervisor, delay=30.0)
    await ref.ask("sync_power_state")
    await ref.ask("sync_power_state")

    await system.stop(instance_address(UUID))

    assert published(sink) == [PowerState.RUNNING]
    leftover = [t for t in asyncio.all_tasks() if t.get_name().endswith(":confirm-down")]
    assert leftover == []
