"""Stored objects: compare-and-set saves (nova's expected_task_state), queries by field,
destroy; locally against a store and through an indirection over the codec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas import (
    ObjectNotFound,
    UnexpectedTaskStateError,
    UnexpectedVMStateError,
    use_indirection,
    use_object_store,
)
from schemas.objects import Instance, RequestContext
from tests.schemas import samples
from tests.schemas.conftest import MemoryStore, WireIndirection

CTX = RequestContext(request_id="req-7")


@pytest.fixture(params=["local", "wire"])
def store(request: pytest.FixtureRequest) -> Iterator[MemoryStore]:
    """A store used directly, or behind an indirection that crosses the codec both ways."""
    memory = MemoryStore()
    if request.param == "local":
        with use_object_store(memory):
            yield memory
    else:
        with use_indirection(WireIndirection(memory)):
            yield memory


async def stored_instance(task_state: str | None = None) -> Instance:
    instance = samples.instance()
    instance.task_state = task_state
    instance.vm_state = "active"
    await instance.create()
    return await Instance.get_by_uuid(CTX, instance.uuid)


async def test_a_save_expecting_the_stored_task_state_is_applied(store: MemoryStore) -> None:
    instance = await stored_instance(task_state="pausing")
    instance.task_state = None
    instance.vm_state = "paused"
    await instance.save(expected_task_state="pausing")
    again = await Instance.get_by_uuid(CTX, instance.uuid)
    assert (again.vm_state, again.task_state) == ("paused", None)
    assert not instance.obj_what_changed()


async def test_a_save_expecting_another_task_state_changes_nothing(store: MemoryStore) -> None:
    instance = await stored_instance(task_state="deleting")
    puts = len(store.puts)
    instance.task_state = None
    instance.host = "elsewhere"
    with pytest.raises(UnexpectedTaskStateError) as caught:
        await instance.save(expected_task_state=["pausing", None])
    assert str(caught.value) == (
        f"Instance {instance.uuid}: task_state is 'deleting', expected one of "
        "['pausing', None]; nothing saved"
    )
    assert len(store.puts) == puts
    again = await Instance.get_by_uuid(CTX, instance.uuid)
    assert (again.task_state, again.host) == ("deleting", samples.instance().host)


async def test_expecting_none_matches_an_instance_with_no_task(store: MemoryStore) -> None:
    instance = await stored_instance(task_state=None)
    instance.task_state = "rebooting"
    await instance.save(expected_task_state=[None])
    assert (await Instance.get_by_uuid(CTX, instance.uuid)).task_state == "rebooting"


async def test_a_save_expecting_another_vm_state_is_refused(store: MemoryStore) -> None:
    instance = await stored_instance()
    instance.task_state = "pausing"
    with pytest.raises(UnexpectedVMStateError):
        await instance.save(expected_vm_state="stopped")
    assert (await Instance.get_by_uuid(CTX, instance.uuid)).task_state is None


async def test_get_by_host_asks_the_store_for_that_host_only(store: MemoryStore) -> None:
    here = await stored_instance()
    there = samples.instance(uuid="22222222-2222-4222-8222-222222222222", host="compute-9")
    await there.create()
    assert [i.uuid for i in await Instance.get_by_host(CTX, here.host)] == [here.uuid]
    assert [i.uuid for i in await Instance.get_by_host(CTX, "compute-9")] == [there.uuid]


async def test_destroy_removes_the_stored_object_once(store: MemoryStore) -> None:
    instance = await stored_instance()
    await instance.destroy()
    with pytest.raises(ObjectNotFound):
        await Instance.get_by_uuid(CTX, instance.uuid)
    with pytest.raises(ObjectNotFound):
        await instance.destroy()
