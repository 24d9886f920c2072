"""Mixed releases between agents and conductors, two registries in one process: a caller of
the previous release (Instance 1.0, before `hidden`) and conductors of this one (1.3), and
the other way round."""

from __future__ import annotations

import ipaddress
from datetime import datetime

import pytest

from agent.conductor.service import Conductor
from agent.transport import Transport
from schemas import (
    IncompatibleObjectVersion,
    ObjectRegistry,
    ObjectStore,
    PersistentObject,
    default_registry,
    fields,
    remotable,
    remotable_classmethod,
    use_indirection,
)
from schemas.memory_store import MemoryObjectStore
from schemas.objects import (
    BlockDeviceMappingList,
    Flavor,
    Instance,
    NetworkInfo,
    RequestContext,
)
from schemas.objects.enums import PowerState, TaskState, VMState

from .over_the_bus import UUID, caller, forget_conductor_queue, read_directly, stored_instance

CTX = RequestContext(request_id="req-mixed")

# The previous release: every object as now, but Instance at 1.0.
OLD_RELEASE = ObjectRegistry()
for name in default_registry:
    if name != "Instance":
        OLD_RELEASE.register(default_registry.lookup(name))


@OLD_RELEASE.register
class InstanceOne(PersistentObject):
    """`Instance` as its first release declared it."""

    OBJ_NAME = "Instance"
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_KEY = "uuid"

    uuid: str = fields.UUID(read_only=True)
    name: str = fields.String()
    hostname: str | None = fields.String(nullable=True, default=None)
    display_name: str | None = fields.String(nullable=True, default=None)
    user_id: str | None = fields.String(nullable=True, default=None)
    project_id: str | None = fields.String(nullable=True, default=None)
    host: str | None = fields.String(nullable=True, default=None)
    node: str | None = fields.String(nullable=True, default=None)
    launched_on: str | None = fields.String(nullable=True, default=None)
    availability_zone: str | None = fields.String(nullable=True, default=None)
    vm_state: str = fields.Enum(VMState)
    task_state: str | None = fields.Enum(TaskState, nullable=True, default=None)
    power_state: str = fields.Enum(PowerState, default=PowerState.PENDING)
    locked: bool = fields.Boolean(default=False)
    flavor: Flavor = fields.Object("Flavor")
    memory_mb: int = fields.Integer()
    vcpus: int = fields.Integer()
    root_gb: int = fields.Integer()
    ephemeral_gb: int = fields.Integer(default=0)
    image_ref: str | None = fields.String(nullable=True, default=None)
    root_device_name: str | None = fields.String(nullable=True, default=None)
    config_drive: bool = fields.Boolean(default=False)
    key_data: str | None = fields.String(nullable=True, default=None)
    user_data: str | None = fields.String(nullable=True, default=None)
    access_ip_v4: ipaddress.IPv4Address | None = fields.IPAddress(nullable=True, default=None)
    access_ip_v6: ipaddress.IPv6Address | None = fields.IPAddress(nullable=True, default=None)
    metadata: dict[str, str] = fields.Dict(fields.String(), default={})
    system_metadata: dict[str, str] = fields.Dict(fields.String(), default={})
    block_device_mappings: BlockDeviceMappingList | None = fields.Object(
        "BlockDeviceMappingList", nullable=True, default=None
    )
    network_info: NetworkInfo | None = fields.Object("NetworkInfo", nullable=True, default=None)
    created_at: datetime | None = fields.DateTime(nullable=True, default=None)
    updated_at: datetime | None = fields.DateTime(nullable=True, default=None)
    launched_at: datetime | None = fields.DateTime(nullable=True, default=None)
    terminated_at: datetime | None = fields.DateTime(nullable=True, default=None)

    @remotable_classmethod
    async def get_by_uuid(cls, ctx: RequestContext | None, uuid: str) -> InstanceOne:
        return await cls._obj_get(cls.OBJ_NAME, uuid)

    @remotable(changes_only=True)
    async def save(self) -> None:
        await self._obj_save_changes("save", None)


async def test_an_older_caller_saves_into_a_newer_conductor_and_reads_back_its_own_version(
    transport: Transport, sql_store: ObjectStore
) -> None:
    await stored_instance(sql_store, hidden=True)  # as this release wrote it
    async with Conductor(transport, sql_store):
        with use_indirection(caller(transport, registry=OLD_RELEASE)):
            old = await InstanceOne.get_by_uuid(CTX, UUID)
            old.host = "cmp-old"
            old.task_state = "pausing"
            await old.save()
            await old.refresh()  # every field comes back, at 1.0: no `hidden`
            back = await InstanceOne.get_by_uuid(CTX, UUID)
    await forget_conductor_queue(transport)
    assert (type(old), type(back)) == (InstanceOne, InstanceOne)
    assert (back.host, back.task_state, old.host) == ("cmp-old", "pausing", "cmp-old")
    stored = await read_directly(sql_store)
    # The field the old release does not know is kept as this release wrote it.
    assert (stored.host, stored.task_state, stored.hidden) == ("cmp-old", "pausing", True)


async def test_a_newer_caller_saves_into_an_older_conductor_back_levelled(
    transport: Transport,
) -> None:
    store = MemoryObjectStore()
    await stored_instance(store)
    instance = await read_directly(store)
    instance.host = "cmp-new"
    instance.hidden = True  # a field the older conductor does not know: not sent
    async with Conductor(transport, store, registry=OLD_RELEASE):
        objects = caller(transport)
        with use_indirection(objects):
            await instance.save()
            with pytest.raises(IncompatibleObjectVersion) as refused:
                await Instance.get_by_uuid(CTX, UUID)
    await forget_conductor_queue(transport)
    assert store.rows[("Instance", UUID)]["host"] == "cmp-new"
    assert store.rows[("Instance", UUID)]["hidden"] is False
    assert objects.client.host_manifests["conductor"]["Instance"] == "1.0"
    # Conductors are upgraded before their agents: a class call names our version.
    assert str(refused.value) == "Instance version 1.3 is newer than the supported 1.0"
