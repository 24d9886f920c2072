"""The migration workflow against fakes of the other agent and of libvirt: a busy destination
is asked again, a post-copy job whose stream broke is resumed (or given up, never rolled
back), and the per-direction slots."""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import ActorSystem
from actors.actor import Actor
from actors.addresses import instance_address, migration_address
from actors.handlers import handler
from actors.migration.actor import MigrationActor
from actors.migration.errors import MigrationBusy, MigrationFailed
from actors.migration.monitor import JobProgress
from actors.migration.request import MigrationRequest
from actors.migration.settings import MigrationSettings
from actors.migration.slots import MigrationSlots
from actors.migration.target import MigrationTarget
from schemas.base import VersionedObject
from schemas.objects import Flavor, Instance, LiveMigrateData, Migration, MigrationPolicy
from schemas.objects.enums import MigrationPhase

UUID = "5d1b8f3e-7c2a-4e6b-9a0d-1f2e3c4b5a69"
FAST = MigrationSettings(
    poll_interval=0.01,
    busy_retry_interval=0.01,
    postcopy_retry_interval=0.01,
    postcopy_recovery_timeout=5.0,
)


@dataclass
class Peer:
    """The destination agent: answers each step; `busy` refusals of pre_live_migration first."""

    busy: int = 0
    calls: list[str] = field(default_factory=list)

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        self.calls.append(method)
        if method == "pre_live_migration" and self.busy:
            self.busy -= 1
            raise MigrationBusy(uuid=UUID, host=host, running=1)
        if method in ("check_can_live_migrate_destination", "pre_live_migration"):
            return LiveMigrateData(
                target_connect_addr="127.0.0.1",
                dest_libvirt_uri="qemu+tcp://dest/system",
                is_shared_instance_path=True,
                filename="_migration-probe-x",
            )
        return None


@dataclass
class Libvirt:
    """The source's libvirt: the job breaks in post-copy `breaks` times, and each resume
    fails `refusals` times before one completes (or never, with `refusals=-1`)."""

    breaks: int = 0
    refusals: int = 0
    resumes: int = 0
    failed: bool = False
    aborted: bool = False

    async def migrate(self, uuid: str, target: MigrationTarget, policy: MigrationPolicy) -> None:
        await asyncio.sleep(0.05)
        if self.breaks:
            self.failed = True
            raise MigrationFailed(uuid=uuid, reason="job 'migration in' failed in post-copy")

    async def resume_post_copy(
        self, uuid: str, target: MigrationTarget, policy: MigrationPolicy
    ) -> None:
        self.resumes += 1
        if self.refusals < 0 or self.resumes <= self.refusals:
            raise MigrationFailed(uuid=uuid, reason="unable to connect: Connection refused")
        await asyncio.sleep(0.05)
        self.failed = False

    async def postcopy_failed(self, uuid: str) -> bool:
        return self.failed

    async def progress(self, uuid: str) -> JobProgress | None:
        return JobProgress(memory_total=1, memory_processed=1, data_total=1, postcopy=True)

    async def set_max_downtime(self, uuid: str, downtime_ms: int) -> None: ...

    async def start_post_copy(self, uuid: str) -> None: ...

    async def suspend(self, uuid: str) -> None: ...

    async def abort(self, uuid: str) -> None:
        self.aborted = True

    def instance_dir(self, uuid: str) -> str:
        return f"/instances/{uuid}"

    @property
    def image_cache_dir(self) -> str:
        return "/instances/_base"


class SourceInstance(Actor):
    """The source's instance actor, as the workflow asks it."""

    def __init__(self) -> None:
        self.ended: list[bool] = []
        self.posted = False

    @handler
    async def check_can_live_migrate_source(
        self, instance: Instance, dest_check_data: LiveMigrateData
    ) -> LiveMigrateData:
        return dest_check_data

    @handler
    async def post_live_migration(self, **_: Any) -> None:
        self.posted = True

    @handler
    async def live_migration_ended(self, completed: bool) -> None:
        self.ended.append(completed)


@dataclass
class Events:
    published: list[VersionedObject] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        self.published.append(obj)
        if isinstance(obj, Migration) and obj.status in ("completed", "failed", "error"):
            self.ended.set()

    def statuses(self) -> list[str]:
        return [o.status for o in self.published if isinstance(o, Migration)]

    def phases(self) -> list[str]:
        return [o.phase for o in self.published if not isinstance(o, Migration)]


async def run_workflow(
    system: ActorSystem,
    peer: Peer,
    driver: Libvirt,
    settings: MigrationSettings = FAST,
    slots: MigrationSlots | None = None,
) -> tuple[Events, SourceInstance]:
    instance = Instance(uuid=UUID, memory_mb=256, flavor=Flavor(memory_mb=256, vcpus=1))
    migration = Migration(uuid=str(uuidlib.uuid4()), instance_uuid=UUID, status="queued")
    request = MigrationRequest(instance, "dest", migration, MigrationPolicy(post_copy=True))
    events = Events()
    source = SourceInstance()
    system.spawn(instance_address(UUID), lambda: source)
    address = migration_address(migration.uuid)
    actor = MigrationActor("src", request, settings, peer, driver, events, slots=slots)
    ref = system.spawn(address, lambda: actor)
    await ref.ask("start")
    async with asyncio.timeout(10):
        await events.ended.wait()
    return events, source


async def test_a_busy_destination_is_asked_again_until_it_takes_the_guest(
    system: ActorSystem,
) -> None:
    peer = Peer(busy=3)
    events, source = await run_workflow(system, peer, Libvirt())
    assert peer.calls.count("pre_live_migration") == 4
    assert events.statuses()[-1] == "completed" and source.posted


async def test_a_destination_busy_for_too_long_fails_the_migration_and_rolls_back(
    system: ActorSystem,
) -> None:
    peer = Peer(busy=10_000)
    settings = MigrationSettings(
        poll_interval=0.01, busy_retry_interval=0.01, busy_wait_timeout=0.1
    )
    events, source = await run_workflow(system, peer, Libvirt(), settings)
    assert events.statuses()[-1] == "failed"
    assert "rollback_live_migration_at_destination" in peer.calls
    assert source.ended == [False]


async def test_a_broken_post_copy_job_is_resumed_and_completes(system: ActorSystem) -> None:
    driver = Libvirt(breaks=1, refusals=2)
    events, source = await run_workflow(system, Peer(), driver)
    assert driver.resumes == 3
    assert events.statuses()[-1] == "completed" and source.posted
    phases = events.phases()
    paused, recovering = MigrationPhase.POST_COPY_PAUSED, MigrationPhase.POST_COPY_RECOVERING
    assert phases.count(paused) == 3 and phases.count(recovering) == 3
    assert not driver.aborted  # a post-copy job is never aborted


async def test_a_post_copy_job_that_cannot_be_resumed_ends_in_error_and_is_not_rolled_back(
    system: ActorSystem,
) -> None:
    driver = Libvirt(breaks=1, refusals=-1)
    peer = Peer()
    settings = MigrationSettings(
        poll_interval=0.01, postcopy_retry_interval=0.01, postcopy_recovery_timeout=0.1
    )
    events, source = await run_workflow(system, peer, driver, settings)
    assert events.statuses()[-1] == "error"
    # The guest runs on the destination: destroying it there would lose it.
    assert "rollback_live_migration_at_destination" not in peer.calls
    assert source.ended == [] and not source.posted


async def test_outgoing_migrations_beyond_the_bound_wait_queued(system: ActorSystem) -> None:
    slots = MigrationSlots("src", max_outgoing=1, max_incoming=1, incoming_timeout=60)
    async with slots.outgoing():
        waiting = asyncio.create_task(run_workflow(system, Peer(), Libvirt(), slots=slots))
        await asyncio.sleep(0.2)
        assert not waiting.done()
    events, _ = await waiting
    assert events.statuses() == ["preparing", "running", "post-migrating", "completed"]


def test_incoming_slots_are_bounded_kept_per_migration_and_expire() -> None:
    now = [0.0]
    slots = MigrationSlots("dest", 1, 2, incoming_timeout=100, clock=lambda: now[0])
    slots.take_incoming("m1", UUID)
    slots.take_incoming("m2", UUID)
    slots.take_incoming("m1", UUID)  # the same migration again: its slot
    with pytest.raises(MigrationBusy) as refused:
        slots.take_incoming("m3", UUID)
    assert refused.value.retryable and refused.value.running == 2
    slots.give_back_incoming("m1")
    slots.take_incoming("m3", UUID)
    now[0] = 101.0  # a source that never came back frees its slot
    assert slots.incoming == 0
