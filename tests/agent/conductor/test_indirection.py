"""An agent's object calls while no conductor answers: sent again within the deadline (the
object's request context's, else the indirection's), run once when a conductor comes, else
`ConductorUnavailable`, retryable."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.conductor.service import Conductor
from agent.errors import ConductorUnavailable
from agent.transport import Transport
from schemas import ObjectNotFound, ObjectStore, use_indirection
from schemas.memory_store import MemoryObjectStore
from schemas.objects import Instance, RequestContext

from .over_the_bus import (
    UUID,
    CountingStore,
    caller,
    forget_conductor_queue,
    read_directly,
    stored_instance,
)

CTX = RequestContext(request_id="req-down")


async def test_a_save_while_no_conductor_ever_ran_is_run_once_when_one_starts(
    transport: Transport, sql_store: ObjectStore
) -> None:
    store = CountingStore(sql_store)
    await stored_instance(store)
    instance = await read_directly(store)
    instance.host = "cmp-late"
    objects = caller(transport, timeout=30)
    with use_indirection(objects):
        saving = asyncio.create_task(instance.save())
        await asyncio.sleep(1.0)
        assert not saving.done()
        writes = store.puts
        async with Conductor(transport, store):
            await asyncio.wait_for(saving, 20)
    await forget_conductor_queue(transport)
    assert objects.retries > 0  # refused as unroutable until the conductor declared its queue
    assert store.puts == writes + 1
    assert (await read_directly(store)).host == "cmp-late"
    assert not instance.obj_what_changed()


async def test_a_save_queued_while_the_conductor_is_stopped_is_run_once_when_it_returns(
    transport: Transport, sql_store: ObjectStore
) -> None:
    store = CountingStore(sql_store)
    await stored_instance(store)
    objects = caller(transport, timeout=30, attempt_timeout=0.3)
    with use_indirection(objects):
        async with Conductor(transport, store):
            instance = await Instance.get_by_uuid(CTX, UUID)
        instance.node = "node-7"
        saving = asyncio.create_task(instance.save())
        await asyncio.sleep(1.0)  # several attempts, each expired unserved, then sent again
        assert not saving.done()
        writes = store.puts
        async with Conductor(transport, store):
            await asyncio.wait_for(saving, 20)
    await forget_conductor_queue(transport)
    assert objects.retries >= 2
    assert store.puts == writes + 1
    assert (await read_directly(store)).node == "node-7"


async def test_a_save_no_conductor_answers_in_time_fails_retryable(transport: Transport) -> None:
    instance = Instance(uuid=UUID)
    instance.obj_reset_changes()
    instance.host = "cmp-nowhere"
    started = time.monotonic()
    with (
        use_indirection(caller(transport, timeout=0.5)),
        pytest.raises(ConductorUnavailable) as unavailable,
    ):
        await instance.save()
    assert time.monotonic() - started < 3
    assert str(unavailable.value) == (
        "no conductor answered Instance.save within 0.500s: no conductor is serving its queue"
    )
    assert unavailable.value.retryable is True
    assert instance.obj_what_changed() == {"host"}  # nothing applied: still to be saved


async def test_the_deadline_of_the_objects_request_context_bounds_its_save(
    transport: Transport,
) -> None:
    store = MemoryObjectStore()
    await stored_instance(store)
    context = RequestContext(request_id="req-short", deadline=time.time() + 1.0)
    with use_indirection(caller(transport, timeout=60, attempt_timeout=0.2)):
        async with Conductor(transport, store):
            instance = await Instance.get_by_uuid(context, UUID)
        instance.host = "cmp-too-late"
        with pytest.raises(ConductorUnavailable) as unavailable:
            await instance.save()
    await forget_conductor_queue(transport)
    assert time.time() - context.deadline < 1.0
    assert 0 < unavailable.value.timeout < 1.0
    assert str(unavailable.value) == (
        f"no conductor answered Instance.save within {unavailable.value.timeout:.3f}s: "
        "no conductor answered"
    )


async def test_cancelling_a_save_stops_its_retries_at_once(transport: Transport) -> None:
    instance = Instance(uuid=UUID)
    instance.host = "cmp-cancelled"
    objects = caller(transport, timeout=30)
    with use_indirection(objects):
        saving = asyncio.create_task(instance.save())
        await asyncio.sleep(0.3)
        saving.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await saving
    assert time.monotonic() - started < 1
    retries = objects.retries
    await asyncio.sleep(0.3)
    assert objects.retries == retries


async def test_an_answer_with_an_error_is_not_sent_again(transport: Transport) -> None:
    objects = caller(transport)
    async with Conductor(transport, MemoryObjectStore()):
        with use_indirection(objects), pytest.raises(ObjectNotFound):
            await Instance.get_by_uuid(CTX, UUID)
    await forget_conductor_queue(transport)
    assert objects.retries == 0
