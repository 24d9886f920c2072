"""The instance actor keeps its `Instance` in the object backend: every change saved (only the
changed fields), a save that fails owed and made whole at the next resync, and an operation
never undone by a failed save."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ActorSystem
from actors.records import RecordSaver
from schemas.base import VersionedObject
from schemas.errors import VirtactorError
from tests.actors.instance.fakes import (
    UUID,
    FakeInstanceDriver,
    RecordingSink,
    image_meta,
    instance,
    make_actor,
)
from tests.schemas.conftest import MemoryStore, WireIndirection


class BackendDown(VirtactorError):
    msg_fmt = "no conductor answered"
    retryable = True


class SwitchableBackend(WireIndirection):
    """The object backend over the codec, which can be made not to answer."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self.down = False

    async def object_action(
        self, obj: VersionedObject, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        if self.down:
            raise BackendDown()
        return await super().object_action(obj, method, args, kwargs)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def backend(store: MemoryStore) -> SwitchableBackend:
    return SwitchableBackend(store)


def stored(store: MemoryStore, *names: str) -> tuple[Any, ...]:
    row = store.rows[("Instance", UUID)]
    return tuple(row.get(name) for name in names)


async def test_spawn_pause_and_destroy_are_saved_in_the_backend(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    store: MemoryStore,
    backend: SwitchableBackend,
) -> None:
    ref, _actor = make_actor(system, driver, sink, records=RecordSaver(backend))
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    assert stored(store, "vm_state", "task_state", "power_state") == ("active", None, "running")
    assert stored(store, "name", "memory_mb") == ("instance-00000001", 64)  # the whole record

    await ref.ask("pause", {"instance": instance(vm_state="active")})
    assert stored(store, "vm_state", "power_state") == ("paused", "paused")
    # After the spawn, each save sent only the changed fields (and the key).
    assert {"name", "flavor", "memory_mb"}.isdisjoint(backend.sent[-1].obj_what_changed())

    await ref.ask("destroy", {"instance": instance()})
    assert stored(store, "vm_state", "task_state", "power_state") == ("deleted", None, "pending")


async def test_a_failed_save_leaves_the_operation_done_and_is_made_whole_at_the_resync(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    store: MemoryStore,
    backend: SwitchableBackend,
) -> None:
    records = RecordSaver(backend)
    ref, actor = make_actor(system, driver, sink, records=records)
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})

    backend.down = True
    paused = await ref.ask("pause", {"instance": instance(vm_state="active")})
    assert paused.vm_state == "paused"  # done on the hypervisor and in the actor's record
    assert driver.domains[UUID].state == "paused"
    # The task_state's save waited and failed; the end state's was not even tried.
    assert records.failures == 1
    assert stored(store, "vm_state", "task_state") == ("active", None)

    backend.down = False
    await ref.ask("sync_power_state")
    assert stored(store, "vm_state", "task_state", "power_state") == ("paused", None, "paused")
    assert actor.record is not None


async def test_without_a_backend_nothing_is_saved_and_nothing_fails(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = make_actor(system, driver, sink)
    assert (await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})).vm_state


async def test_after_a_failed_save_none_is_tried_until_the_retry_interval_passed(
    store: MemoryStore, backend: SwitchableBackend
) -> None:
    now = [100.0]
    records = RecordSaver(backend, timeout=1.0, retry_interval=30.0, clock=lambda: now[0])
    record = instance(vm_state="active")
    backend.down = True
    assert await records.save(record, whole=True) is False
    backend.down = False
    assert await records.save(record, whole=True) is False  # not tried: quiet for 30 s
    assert ("Instance", UUID) not in store.rows
    assert await records.save(record, whole=True, force=True) is True  # a resync tries
    now[0] += 31.0
    record.host = "compute-2"
    assert await records.save(record) is True
    assert store.rows[("Instance", UUID)]["host"] == "compute-2"
