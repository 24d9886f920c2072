"""Mixed releases: the `ComputeNode` the tracker reports and saves at 1.3 (with its PCI pools)
reaches a peer of a release that knows only 1.0 back-levelled to it, from the agent (its
reply follows the caller's manifest) and from the conductor (the same), while the database
keeps the pools as the tracker wrote them."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from schemas import (
    ObjectRegistry,
    PersistentObject,
    default_registry,
    fields,
    remotable_classmethod,
    use_indirection,
)
from schemas.objects import ComputeNode, RequestContext
from tests.agent.conductor.over_the_bus import caller
from tests.agent.tracker.conftest import HOST, Deployment, saved_node
from tests.conftest import ON_SESSION_LOOP

pytestmark = [*ON_SESSION_LOOP, pytest.mark.rabbitmq]

CTX = RequestContext(request_id="req-node-1.0", is_admin=True)
# What 1.1 and 1.2 added, which a peer at 1.0 never receives.
NEWER_FIELDS = ("pci_device_pools", "supported_instances")

# The previous release: every object as now, but ComputeNode at 1.0.
OLD_RELEASE = ObjectRegistry()
for name in default_registry:
    if name != "ComputeNode":
        OLD_RELEASE.register(default_registry.lookup(name))


@OLD_RELEASE.register
class ComputeNodeOne(PersistentObject):
    """`ComputeNode` as its first release declared it."""

    OBJ_NAME = "ComputeNode"
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_KEY = "uuid"

    uuid: str = fields.UUID(read_only=True)
    host: str = fields.String()
    hypervisor_hostname: str = fields.String()
    hypervisor_type: str = fields.String()
    hypervisor_version: int = fields.Integer()
    host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = fields.IPAddress(
        nullable=True, default=None
    )
    cpu_info: str = fields.String(default="{}")
    vcpus: int = fields.Integer()
    memory_mb: int = fields.Integer()
    local_gb: int = fields.Integer()
    vcpus_used: int = fields.Integer(default=0)
    memory_mb_used: int = fields.Integer(default=0)
    local_gb_used: int = fields.Integer(default=0)
    free_ram_mb: int | None = fields.Integer(nullable=True, default=None)
    free_disk_gb: int | None = fields.Integer(nullable=True, default=None)
    disk_available_least: int | None = fields.Integer(nullable=True, default=None)
    current_workload: int | None = fields.Integer(nullable=True, default=None)
    running_vms: int | None = fields.Integer(nullable=True, default=None)
    cpu_allocation_ratio: float = fields.Float(default=4.0)
    ram_allocation_ratio: float = fields.Float(default=1.0)
    disk_allocation_ratio: float = fields.Float(default=1.0)
    stats: dict[str, str] = fields.Dict(fields.String(), default={})

    @remotable_classmethod
    async def get_by_uuid(cls, ctx: RequestContext | None, uuid: str) -> ComputeNodeOne:
        return await cls._obj_get(cls.OBJ_NAME, uuid)


@pytest_asyncio.fixture(loop_scope="session")
async def old_client(deployment: Deployment) -> AsyncIterator[ComputeClient]:
    """A client of the previous release, on a connection of its own."""
    client = await ComputeClient.connect(
        deployment.url,
        prefix=deployment.prefix,
        registry=OLD_RELEASE,
        default_timeout=30,
        is_admin=True,
    )
    try:
        yield client
    finally:
        await client.aclose()


def shared_values(node: ComputeNode | ComputeNodeOne) -> dict[str, object]:
    """Every field both releases know, as set on `node`."""
    return {
        name: getattr(node, name)
        for name in ComputeNodeOne.obj_fields()
        if node.obj_attr_is_set(name)
    }


async def test_the_agent_answers_a_peer_at_compute_node_1_0_without_the_newer_fields(
    deployment: Deployment, old_client: ComputeClient
) -> None:
    current = await deployment.client.get_compute_node(HOST)
    assert current.VERSION == "1.3"
    assert all(current.obj_attr_is_set(name) for name in NEWER_FIELDS)

    # Decoding is strict: a field 1.0 does not declare would be refused, not ignored. (The
    # typed call is annotated with this release's class; the peer's registry decodes it.)
    old: object = await old_client.get_compute_node(HOST)

    assert isinstance(old, ComputeNodeOne)
    assert old.VERSION == "1.0"
    assert shared_values(old) == shared_values(current)
    assert old_client.host_manifests[HOST]["ComputeNode"] == "1.3"


async def test_the_conductor_answers_a_peer_at_compute_node_1_0_and_keeps_the_pools(
    deployment: Deployment, old_client: ComputeClient
) -> None:
    # The tracker's own report, saved whole at 1.3.
    reported = await deployment.client.update_available_resource(HOST)
    stored = await saved_node(deployment)
    assert stored.pci_device_pools == reported.pci_device_pools
    assert stored.supported_instances == reported.supported_instances

    with use_indirection(caller(old_client.transport, registry=OLD_RELEASE)):
        old = await ComputeNodeOne.get_by_uuid(CTX, deployment.node.uuid)

    assert (type(old), old.VERSION) == (ComputeNodeOne, "1.0")
    assert shared_values(old) == shared_values(stored)
    # Reading at 1.0 takes nothing away from the record.
    again = await saved_node(deployment)
    assert (again.pci_device_pools, again.supported_instances) == (
        reported.pci_device_pools,
        reported.supported_instances,
    )
