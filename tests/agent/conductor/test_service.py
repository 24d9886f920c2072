"""The conductor over each transport: remotable calls served once per message id, refused
with typed errors when they cannot run, concurrently up to the prefetch, and out of reach of
fanouts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.client import ComputeClient
from agent.conductor.service import Conductor
from agent.errors import InvalidArguments, UnknownMethod
from agent.transport import (
    CONDUCTOR_QUEUE,
    AmqpSettings,
    AmqpTransport,
    Delivery,
    InProcessBus,
    Outcome,
    Transport,
)
from schemas import (
    NotRemotable,
    ObjectNotFound,
    ObjectStore,
    UnexpectedTaskStateError,
    use_indirection,
)
from schemas.memory_store import MemoryObjectStore
from schemas.objects import Instance, RequestContext
from tests.agent.conftest import delete_amqp_topology
from tests.schemas.conftest import MemoryStore

from .over_the_bus import UUID, CountingStore, caller, forget_conductor_queue, stored_instance

CTX = RequestContext(request_id="req-conductor")
MISSING = "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e"


@pytest.fixture
async def recorded(transport: Transport) -> AsyncIterator[tuple[Conductor, MemoryStore]]:
    """A conductor on `transport` over a store that records every write."""
    store = MemoryStore()
    conductor = Conductor(transport, store)
    await conductor.start()
    yield conductor, store
    await conductor.aclose()
    await forget_conductor_queue(transport)


@pytest.fixture
async def on_database(
    transport: Transport, sql_store: ObjectStore
) -> AsyncIterator[tuple[Conductor, CountingStore]]:
    """A conductor on `transport` over each database."""
    store = CountingStore(sql_store)
    conductor = Conductor(transport, store)
    await conductor.start()
    yield conductor, store
    await conductor.aclose()
    await forget_conductor_queue(transport)


def save_request(host: str) -> dict[str, Any]:
    """The arguments of `save` for the sample instance with `host` changed, as sent."""
    instance = Instance(uuid=UUID)
    instance.host = host
    return {"objinst": instance, "objmethod": "save", "args": [], "kwargs": {}}


async def test_a_save_sends_only_the_changed_fields_and_the_store_keeps_them(
    transport: Transport, recorded: tuple[Conductor, MemoryStore]
) -> None:
    _conductor, store = recorded
    await stored_instance(store)
    with use_indirection(caller(transport)):
        instance = await Instance.get_by_uuid(CTX, UUID)
        instance.host = "cmp-2"
        instance.task_state = "pausing"
        await instance.save()
        again = await Instance.get_by_uuid(CTX, UUID)
    assert store.puts[-1] == ("Instance", UUID, {"host": "cmp-2", "task_state": "pausing"})
    assert (again.host, again.task_state, again.vm_state) == ("cmp-2", "pausing", "active")
    assert not instance.obj_what_changed()
    assert again.obj_context is CTX


async def test_a_request_sent_twice_under_one_message_id_runs_once(
    transport: Transport, recorded: tuple[Conductor, MemoryStore]
) -> None:
    conductor, store = recorded
    await stored_instance(store)
    writes = len(store.puts)
    client = ComputeClient(transport, default_timeout=10, announce_interval=None)
    first = await client.call(
        CONDUCTOR_QUEUE, "object_action", save_request("cmp-3"), message_id="save-once"
    )
    second = await client.call(
        CONDUCTOR_QUEUE, "object_action", save_request("cmp-3"), message_id="save-once"
    )
    assert first == second
    assert len(store.puts) == writes + 1
    assert conductor.server.stats.duplicates == 1


async def test_store_errors_arrive_as_their_classes(
    transport: Transport, on_database: tuple[Conductor, CountingStore]
) -> None:
    _conductor, store = on_database
    await stored_instance(store, task_state="deleting")
    with use_indirection(caller(transport)):
        with pytest.raises(ObjectNotFound) as missing:
            await Instance.get_by_uuid(CTX, MISSING)
        instance = await Instance.get_by_uuid(CTX, UUID)
        instance.task_state = None
        with pytest.raises(UnexpectedTaskStateError) as unexpected:
            await instance.save(expected_task_state=["pausing", None])
        assert (await Instance.get_by_uuid(CTX, UUID)).task_state == "deleting"
    assert str(missing.value) == f"Instance '{MISSING}' could not be found"
    assert str(unexpected.value) == (
        f"Instance {UUID}: task_state is 'deleting', expected one of ['pausing', None]; "
        "nothing saved"
    )
    assert unexpected.value.actual == "deleting"


async def test_a_method_that_is_not_remotable_is_refused_as_not_remotable(
    transport: Transport, recorded: tuple[Conductor, MemoryStore]
) -> None:
    client = ComputeClient(transport, default_timeout=10, announce_interval=None)
    request = save_request("cmp-4") | {"objmethod": "obj_reset_changes"}
    with pytest.raises(NotRemotable) as on_object:
        await client.call(CONDUCTOR_QUEUE, "object_action", request)
    class_request = {
        "objname": "Instance",
        "objver": Instance.VERSION,
        "objmethod": "_obj_get",
        "args": ["Instance", UUID],
        "kwargs": {},
    }
    with pytest.raises(NotRemotable) as on_class:
        await client.call(CONDUCTOR_QUEUE, "object_class_action", class_request)
    assert str(on_object.value) == "Instance.obj_reset_changes is not a remotable method"
    assert str(on_class.value) == "Instance._obj_get is not a remotable method"
    assert recorded[1].puts == []


async def test_arguments_the_remotable_body_would_not_take_never_reach_the_store(
    transport: Transport,
) -> None:
    store = CountingStore(MemoryObjectStore())
    async with Conductor(transport, store):
        with use_indirection(caller(transport)):
            with pytest.raises(InvalidArguments) as mistyped:
                await Instance.get_by_uuid(CTX, 5)  # type: ignore[arg-type]
            with pytest.raises(InvalidArguments) as missing:
                await Instance.get_by_uuid(CTX)  # type: ignore[call-arg]
            instance = Instance(uuid=UUID)
            with pytest.raises(InvalidArguments) as unknown:
                await instance.save(expected_power_state="running")  # type: ignore[call-arg]
    await forget_conductor_queue(transport)
    assert str(mistyped.value) == (
        "invalid arguments for 'Instance.get_by_uuid': argument 'uuid' must be str, not int"
    )
    assert str(missing.value) == (
        "invalid arguments for 'Instance.get_by_uuid': missing a required argument: 'uuid'"
    )
    assert str(unknown.value) == (
        "invalid arguments for 'Instance.save': "
        "got an unexpected keyword argument 'expected_power_state'"
    )
    assert (store.gets, store.puts) == (0, 0)


async def test_a_request_missing_an_argument_or_naming_no_method_of_ours_is_refused(
    transport: Transport, recorded: tuple[Conductor, MemoryStore]
) -> None:
    client = ComputeClient(transport, default_timeout=10, announce_interval=None)
    with pytest.raises(InvalidArguments) as missing:
        await client.call(CONDUCTOR_QUEUE, "object_class_action", {"objname": "Instance"})
    with pytest.raises(UnknownMethod) as unknown:
        await client.call(CONDUCTOR_QUEUE, "spawn", {})
    assert str(missing.value) == (
        "invalid arguments for 'object_class_action': missing argument 'objver'"
    )
    assert str(unknown.value) == "unknown method 'spawn'"


async def test_backport_versions_answers_the_object_at_the_versions_asked(
    transport: Transport, recorded: tuple[Conductor, MemoryStore]
) -> None:
    instance = Instance(uuid=UUID, name="instance-9", hidden=True)
    backported = await caller(transport).object_backport_versions(instance, {"Instance": "1.0"})
    assert isinstance(backported, Instance)
    assert (backported.uuid, backported.name) == (UUID, "instance-9")
    assert not backported.obj_attr_is_set("hidden")  # Instance 1.0 had no `hidden`


async def test_a_fanout_does_not_reach_the_conductors_queue(
    transport: Transport, recorded: tuple[Conductor, MemoryStore]
) -> None:
    conductor, _store = recorded
    seen: list[Delivery] = []
    arrived = asyncio.Event()

    async def agent(delivery: Delivery) -> Outcome:
        seen.append(delivery)
        arrived.set()
        return Outcome()

    await transport.serve("h1", agent)
    await transport.fanout(b"to-every-agent", message_id="fanout-1", ttl=10)
    await asyncio.wait_for(arrived.wait(), 10)
    await asyncio.sleep(0.2)  # as long again as the agent's copy took, and more
    assert [d.body for d in seen] == [b"to-every-agent"]
    assert conductor.server.stats.requests == 0


@pytest.fixture(params=["inproc", "amqp"])
async def narrow_transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """A transport whose consumers take at most two requests at a time."""
    if request.param == "inproc":
        bus = InProcessBus(prefetch=2)
        await bus.start()
        yield bus
        await bus.aclose()
        return
    url = request.getfixturevalue("rabbitmq_url")
    prefix = f"vt-test-{uuid.uuid4().hex[:8]}"
    amqp = AmqpTransport(AmqpSettings(url=url, prefix=prefix, prefetch=2))
    await amqp.start()
    yield amqp
    await amqp.aclose()
    await delete_amqp_topology(url, prefix, [CONDUCTOR_QUEUE])


class HeldStore(MemoryObjectStore):
    """Reads wait until released, so a test sees how many are under way at once."""

    def __init__(self, awaited: int) -> None:
        super().__init__()
        self.reading = 0
        self.awaited = awaited
        self.arrived = asyncio.Event()  # set when `awaited` reads are under way
        self.release = asyncio.Event()

    async def get(self, objname: str, key: str) -> dict[str, Any] | None:
        self.reading += 1
        if self.reading == self.awaited:
            self.arrived.set()
        await self.release.wait()
        return await super().get(objname, key)


async def test_requests_run_at_once_as_many_as_the_prefetch_allows(
    narrow_transport: Transport,
) -> None:
    store = HeldStore(awaited=2)
    await stored_instance(store)
    async with Conductor(narrow_transport, store):
        with use_indirection(caller(narrow_transport)):
            reads = [asyncio.create_task(Instance.get_by_uuid(CTX, UUID)) for _ in range(3)]
            await asyncio.wait_for(store.arrived.wait(), 10)
            await asyncio.sleep(0.2)
            assert store.reading == 2  # two at once; the third waits for a slot
            store.release.set()
            found = await asyncio.gather(*reads)
    assert [i.uuid for i in found] == [UUID] * 3
    assert store.reading == 3
