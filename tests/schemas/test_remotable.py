"""Remotable methods: local bodies against a store, or through an indirection over the codec."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from schemas import (
    NoObjectStore,
    NotRemotable,
    ObjectNotFound,
    ObjectRegistry,
    PersistentObject,
    current_indirection,
    dispatch_object_action,
    dispatch_object_class_action,
    fields,
    remotable,
    remotable_classmethod,
    use_indirection,
    use_object_store,
)
from schemas.objects import Instance, RequestContext
from tests.schemas import samples
from tests.schemas.conftest import MemoryStore, WireIndirection

CTX = RequestContext(request_id="req-42")

counters = ObjectRegistry()
counters.register(RequestContext)


@counters.register
class Counter(PersistentObject):
    __slots__ = ()
    OBJ_KEY = "name"

    name: str = fields.String()
    value: int = fields.Integer(default=0)
    note: str | None = fields.String(nullable=True, default=None)

    @remotable
    async def add(self, amount: int, *, note: str | None = None) -> int:
        self.value += amount
        if note is not None:
            self.note = note
        return self.value

    async def not_remote(self) -> None:
        """Plain methods cannot be called through the indirection."""

    @remotable_classmethod
    async def named(cls, ctx: RequestContext | None, name: str) -> Counter:
        return await cls._obj_get(cls.OBJ_NAME, name)


# -- without an indirection: the local bodies and the store -------------------------------------


async def test_create_then_get_by_uuid_reads_the_stored_instance(store: MemoryStore) -> None:
    inst = samples.instance()
    await inst.create()
    assert inst.obj_what_changed() == set()
    loaded = await Instance.get_by_uuid(CTX, samples.INSTANCE_UUID)
    assert loaded == inst
    assert loaded.obj_context is CTX
    assert loaded.obj_what_changed() == set()


async def test_save_stores_only_the_changed_fields(store: MemoryStore) -> None:
    inst = samples.instance()
    await inst.create()
    inst.host = "compute-7"
    inst.metadata["owner"] = "ops"
    await inst.save()
    objname, key, changes = store.puts[-1]
    assert (objname, key) == ("Instance", samples.INSTANCE_UUID)
    assert changes == {"host": "compute-7", "metadata": {"role": "web", "owner": "ops"}}
    assert inst.obj_what_changed() == set()
    loaded = await Instance.get_by_uuid(CTX, samples.INSTANCE_UUID)
    assert loaded.host == "compute-7"


async def test_save_sends_a_changed_nested_object_whole(store: MemoryStore) -> None:
    inst = samples.instance()
    await inst.create()
    inst.flavor.vcpus = 4
    await inst.save()
    changes = store.puts[-1][2]
    assert set(changes) == {"flavor"}
    assert changes["flavor"].data["vcpus"] == 4
    assert (await Instance.get_by_uuid(CTX, samples.INSTANCE_UUID)).flavor.vcpus == 4


async def test_refresh_drops_local_changes_for_the_stored_values(store: MemoryStore) -> None:
    inst = samples.instance()
    await inst.create()
    inst.host = "local-only"
    await inst.refresh()
    assert inst.host == "compute-1"
    assert inst.obj_what_changed() == set()


async def test_lookups_by_host_filter_the_stored_objects(store: MemoryStore) -> None:
    await samples.instance().create()
    other = samples.instance(uuid="00000000-0000-4000-8000-0000000000aa", host="compute-2")
    await other.create()
    found = await Instance.get_by_host(CTX, "compute-2")
    assert [i.uuid for i in found] == ["00000000-0000-4000-8000-0000000000aa"]
    assert all(i.obj_context is CTX for i in found)


async def test_a_missing_object_is_object_not_found(store: MemoryStore) -> None:
    with pytest.raises(ObjectNotFound) as exc:
        await Instance.get_by_uuid(CTX, "00000000-0000-4000-8000-000000000000")
    assert str(exc.value) == "Instance '00000000-0000-4000-8000-000000000000' could not be found"


async def test_a_local_body_without_a_store_says_what_is_missing() -> None:
    with pytest.raises(NoObjectStore) as exc:
        await samples.instance().save()
    assert str(exc.value) == (
        "Instance.save needs an object store or an indirection API; "
        "wrap the call in use_object_store(...) or use_indirection(...)"
    )


async def test_a_custom_remotable_method_runs_locally_without_an_indirection() -> None:
    counter = Counter(name="c")
    assert await counter.add(2, note="first") == 2
    assert counter.value == 2
    assert counter.obj_what_changed() == {"name", "value", "note"}


# -- through an indirection --------------------------------------------------------------------


async def test_save_through_an_indirection_sends_only_the_key_and_changed_fields(
    wire: WireIndirection,
) -> None:
    inst = samples.instance()
    await inst.create()
    inst.host = "compute-8"
    inst.task_state = "spawning"
    await inst.save()
    sent = wire.sent[-1]
    assert {n for n in Instance.obj_fields() if sent.obj_attr_is_set(n)} == {
        "uuid",
        "host",
        "task_state",
    }
    assert sent.obj_what_changed() == {"host", "task_state"}
    assert wire.store.puts[-1][2] == {"host": "compute-8", "task_state": "spawning"}
    assert inst.obj_what_changed() == set()


async def test_classmethods_go_through_object_class_action(wire: WireIndirection) -> None:
    await samples.instance().create()
    loaded = await Instance.get_by_uuid(CTX, samples.INSTANCE_UUID)
    assert wire.class_calls[-1] == ("Instance", "1.3", "get_by_uuid")
    assert loaded == samples.instance()
    assert loaded.obj_context is CTX


async def test_refresh_through_an_indirection_applies_the_remote_fields(
    wire: WireIndirection,
) -> None:
    inst = samples.instance()
    await inst.create()
    stale = samples.instance(host="stale", name="old-name")
    await stale.refresh()
    assert (stale.host, stale.name) == ("compute-1", "instance-00000001")
    assert stale.obj_what_changed() == set()


async def test_a_remote_method_returns_its_result_and_the_fields_it_changed() -> None:
    api = WireIndirection(MemoryStore(), registry=counters)
    counter = Counter(name="c", value=5)
    counter.obj_reset_changes()
    with use_indirection(api):
        assert await counter.add(3, note="via bus") == 8
    assert (counter.value, counter.note) == (8, "via bus")
    assert counter.obj_what_changed() == set()


async def test_a_remote_classmethod_of_another_registry_runs_there() -> None:
    api = WireIndirection(MemoryStore(), registry=counters)
    with use_object_store(api.store, counters):
        await Counter(name="n", value=1).create()
    with use_indirection(api):
        found = await Counter.named(CTX, "n")
    assert found.value == 1
    assert api.class_calls == [("Counter", "1.0", "named")]


async def test_only_remotable_methods_can_be_dispatched() -> None:
    with pytest.raises(NotRemotable) as exc:
        await dispatch_object_action(Counter(name="c"), "not_remote", (), {})
    assert str(exc.value) == "Counter.not_remote is not a remotable method"
    with pytest.raises(NotRemotable):
        await dispatch_object_action(Counter(name="c"), "named", (), {})
    with pytest.raises(NotRemotable):
        await dispatch_object_class_action(counters, "Counter", "1.0", "add", (1,), {})


async def test_dispatch_reports_the_fields_the_body_changed() -> None:
    counter = Counter(name="c", value=1)
    updates, result = await dispatch_object_action(counter, "add", (4,), {})
    assert (updates, result) == ({"value": 5}, 5)


async def test_each_task_sees_the_indirection_of_its_own_context() -> None:
    first, second = WireIndirection(MemoryStore()), WireIndirection(MemoryStore())
    seen: dict[str, Any] = {}

    async def agent(name: str, api: WireIndirection) -> None:
        with use_indirection(api):
            await asyncio.sleep(0)
            seen[name] = current_indirection()

    async with asyncio.TaskGroup() as group:
        group.create_task(agent("first", first))
        group.create_task(agent("second", second))
    assert seen == {"first": first, "second": second}
    assert current_indirection() is None


async def test_cancelling_a_remote_call_propagates_to_the_caller() -> None:
    class Stuck:
        async def object_action(self, *args: Any) -> tuple[dict[str, Any], Any]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def object_class_action(self, *args: Any) -> Any:
            await asyncio.Event().wait()

    counter = Counter(name="c")
    with use_indirection(Stuck()), pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await counter.add(1)
    assert counter.value == 0
