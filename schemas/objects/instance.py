"""`Instance`: one guest, as the compute agent and the control plane both see it."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, ClassVar

from schemas import fields
from schemas.base import Relationships
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.context import RequestContext
from schemas.objects.enums import PowerState, TaskState, VMState
from schemas.objects.flavor import Flavor
from schemas.objects.network import NetworkInfo
from schemas.registry import default_registry
from schemas.remotable import remotable, remotable_classmethod
from schemas.store import PersistentObject
from schemas.versions import Version


@default_registry.register
class Instance(PersistentObject):
    """A guest: identity, placement, state, sizes, and what it is built from."""

    # 1.0: Initial version
    # 1.1: Added hidden
    # 1.2: Flavor 1.1
    # 1.3: save takes expected_task_state and expected_vm_state; added the remotable destroy
    VERSION = "1.3"
    __slots__ = ()
    OBJ_KEY = "uuid"
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {
        "flavor": [("1.0", "1.0"), ("1.2", "1.1")],
        "block_device_mappings": [("1.0", "1.0")],
        "network_info": [("1.0", "1.0")],
    }

    uuid: str = fields.UUID(read_only=True)
    name: str = fields.String()  # the libvirt domain name
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

    hidden: bool = fields.Boolean(default=False)

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 1):
            primitive.pop("hidden", None)

    @remotable_classmethod
    async def get_by_uuid(cls, ctx: RequestContext | None, uuid: str) -> Instance:
        """The stored instance `uuid`, or ObjectNotFound."""
        return await cls._obj_get(cls.OBJ_NAME, uuid)

    @remotable_classmethod
    async def get_by_host(cls, ctx: RequestContext | None, host: str) -> list[Instance]:
        """Every stored instance whose `host` is `host`."""
        return await cls._obj_find("get_by_host", {"host": host})

    @remotable(changes_only=True)
    async def save(
        self,
        expected_task_state: str | list[str | None] | None = None,
        expected_vm_state: str | list[str] | None = None,
    ) -> None:
        """Store the changed fields, as nova's `Instance.save`: with `expected_task_state`
        (one state, or a list that may hold None) or `expected_vm_state`, only if the stored
        instance is in one of those states, atomically; otherwise `UnexpectedTaskStateError`
        / `UnexpectedVMStateError` and nothing is saved."""
        expected: dict[str, list[Any]] = {}
        for name, states in (("task_state", expected_task_state), ("vm_state", expected_vm_state)):
            if states is not None:
                expected[name] = list(states) if isinstance(states, list) else [states]
        await self._obj_save_changes("save", expected or None)
