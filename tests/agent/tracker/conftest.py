"""One deployment shared by the resource tracker's tests, on each database: an agent on
libvirt's test:///default over the real RabbitMQ, a conductor on SQLite or PostgreSQL on
the same bus, and a client of its own connection.

`[resources]` leaves exactly `FIT` guests of `Deployment.flavor` room on the host: the
flavor's memory is what is left after `RESERVED_MB`, divided by `FIT`, from the node's own
totals; its vCPUs never limit. Each test leaves the tracker as it found it (no claims) and
removes the domains it made from test:///default, which the whole pytest process shares.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import libvirt
import pytest
import pytest_asyncio
import sqlalchemy as sa

from agent.client import ComputeClient
from agent.conductor.service import Conductor, running_conductor
from agent.config import AmqpSection, ConductorSection, ResourcesSection
from agent.service import Agent, build_transport
from agent.transport import CONDUCTOR_QUEUE, Transport
from schemas import use_object_store
from schemas.objects import ComputeNode, Flavor, Instance
from tests.actors.instance.fakes import instance
from tests.agent.conductor.conftest import PG_URL, _admin_connection
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import TEST_URI, embedded_config, make_root_image, remove_test_domain

HOST = "cmp-tracker"
RESERVED_MB = 512
FIT = 10  # guests of the flavor the host holds
FLAVOR_VCPUS = 2  # 10 x 2 of 16 x 4.0: never the limit


@dataclass
class Deployment:
    url: str  # the broker's, and the agent's `prefix` on it
    prefix: str
    agent: Agent
    conductor: Conductor
    client: ComputeClient
    node: ComputeNode  # what the hypervisor reports (get_available_resource)
    flavor: Flavor  # FIT of it fill the host's memory exactly

    def guest(self) -> Instance:
        """A new instance of the flavor, named after its uuid (domain names are unique)."""
        uuid_ = str(uuid.uuid4())
        return instance(
            uuid_,
            name=f"trk-{uuid_[:8]}",
            flavor=self.flavor.obj_clone(),
            memory_mb=self.flavor.memory_mb,
            vcpus=self.flavor.vcpus,
            root_gb=self.flavor.root_gb,
        )


async def _postgresql_database() -> str:
    admin = sa.make_url(PG_URL)
    name = f"virtactor_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin_connection(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_postgresql_database(name: str) -> None:
    conn = await _admin_connection(sa.make_url(PG_URL))
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session", scope="package", params=["sqlite", "postgresql"])
async def tracker_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """An empty database of each kind, as a URL (SQLite: a file path)."""
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("tracker-db") / "conductor.sqlite")
        return
    name = await _postgresql_database()
    try:
        yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _drop_postgresql_database(name)


@pytest_asyncio.fixture(loop_scope="session", scope="package")
async def deployment(
    tracker_database: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """The agent, its conductor and a client (see the module docstring), on a prefix of
    their own; on exit the broker's topology is deleted and test:///default holds the
    domains it held before."""
    root = tmp_path_factory.mktemp("tracker")
    await make_root_image(root)
    prefix = f"vt-trk-{uuid.uuid4().hex[:8]}"
    base = embedded_config(root, HOST)
    config = dataclasses.replace(
        base,
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        conductor=ConductorSection(database_url=tracker_database),
        # No periodic audit while a test runs: the tests ask for it.
        resources=ResourcesSection(reserved_host_memory_mb=RESERVED_MB, audit_interval=3600),
    )
    found = await asyncio.to_thread(domains_on_test_uri)
    conductor_bus: Transport = build_transport(config)
    await conductor_bus.start()
    try:
        async with running_conductor(conductor_bus, config, upgrade=True) as conductor:
            agent = Agent(config)
            client: ComputeClient | None = None
            try:
                await agent.start()
                await agent.wait_ready(timeout=30)
                client = await ComputeClient.connect(
                    rabbitmq_url, prefix=prefix, default_timeout=30, is_admin=True
                )
                nodename = (await client.get_available_nodes(HOST))[0]
                node = await client.get_available_resource(HOST, nodename)
                yield Deployment(
                    rabbitmq_url, prefix, agent, conductor, client, node, _filling_flavor(node)
                )
            finally:
                if client is not None:
                    await client.aclose()
                await agent.aclose()  # before the conductor, which serves its last saves
    finally:
        await conductor_bus.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [HOST, CONDUCTOR_QUEUE])
    assert await asyncio.to_thread(domains_on_test_uri) == found


def _filling_flavor(node: ComputeNode) -> Flavor:
    memory_mb = (node.memory_mb - RESERVED_MB) // FIT
    assert (node.memory_mb - RESERVED_MB) // memory_mb == FIT, node.memory_mb
    assert node.vcpus * 4.0 > FIT * FLAVOR_VCPUS  # the default cpu_allocation_ratio
    return Flavor(
        flavorid="trk.fill",
        name="trk.fill",
        memory_mb=memory_mb,
        vcpus=FLAVOR_VCPUS,
        root_gb=1,
    )


def domains_on_test_uri() -> list[str]:
    """The uuids of the domains on test:///default (blocking)."""
    conn = libvirt.open(TEST_URI)
    try:
        return sorted(d.UUIDString() for d in conn.listAllDomains(0))
    finally:
        conn.close()


async def remove_domains(uuids: list[str]) -> None:
    """Remove the domains `uuids` from test:///default (those that are still there)."""
    for uuid_ in uuids:
        left = await asyncio.to_thread(remove_test_domain, uuid_)
        assert uuid_ not in left


async def saved_node(deployment: Deployment) -> ComputeNode:
    """The host's `ComputeNode` as the conductor's database holds it, read without the bus."""
    with use_object_store(deployment.conductor.store):
        return await ComputeNode.get_by_uuid(None, deployment.node.uuid)
