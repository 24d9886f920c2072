"""The whole agent on a real libvirtd + QEMU host, driven over the real RabbitMQ.

An agent process-equivalent (`Agent`) serves local test host `host1` (a private libvirtd) on
the broker; a running QEMU guest on that host is adopted; a `ComputeClient` on its own
connection calls every host-scoped driver method and checks the answers against libvirt.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import AgentConfig, AgentSection, AmqpSection, ConductorSection, LibvirtSection
from agent.service import Agent
from schemas.objects import ComputeNode, InstanceInfo, Service
from tests.agent.conftest import delete_amqp_topology
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.domains import firmware_domain_xml

pytestmark = [pytest.mark.rabbitmq, *ON_REAL_QEMU]


@dataclass
class Running:
    agent: Agent
    client: ComputeClient
    host: LocalHost
    guest_uuid: str
    guest_name: str


def start_domain(uri: str, xml: str) -> None:
    conn = libvirt.open(uri)
    try:
        conn.defineXML(xml).create()
    finally:
        conn.close()


def libvirt_view(uri: str) -> tuple[int, int, str, set[str]]:
    """What libvirt itself says: memory (MiB), CPUs, hostname and domain uuids."""
    conn = libvirt.open(uri)
    try:
        _arch, memory_mb, cpus, *_ = conn.getInfo()
        return memory_mb, cpus, conn.getHostname(), {d.UUIDString() for d in conn.listAllDomains()}
    finally:
        conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def running(
    rabbitmq_url: str,
    test_hosts: tuple[LocalHost, ...],
    domain_janitor: DomainJanitor,
    tmp_path: Path,
) -> AsyncIterator[Running]:
    host = test_hosts[0]
    guest_uuid = domain_janitor.track(str(uuid.uuid4()))
    guest_name = f"virtactor-bus-{guest_uuid[:8]}"
    await asyncio.to_thread(start_domain, host.uri, firmware_domain_xml(guest_name, guest_uuid))
    prefix = f"vt-sys-{uuid.uuid4().hex[:8]}"
    config = AgentConfig(
        agent=AgentSection(
            host="sys-host",
            host_ip="127.0.0.1",
            instances_path=str(tmp_path),
            heartbeat_interval=0.5,
        ),
        libvirt=LibvirtSection(uri=host.uri),
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        # No conductor on this bus: the agent keeps no records (it would wait for one).
        conductor=ConductorSection(save_records=False),
    )
    agent = Agent(config)
    await agent.start()
    client = await ComputeClient.connect(
        rabbitmq_url, prefix=prefix, default_timeout=30, is_admin=True
    )
    try:
        await agent.wait_ready(timeout=60)
        yield Running(agent, client, host, guest_uuid, guest_name)
    finally:
        await client.aclose()
        await agent.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, ["sys-host"])


async def test_host_methods_over_the_bus_match_what_libvirt_reports(running: Running) -> None:
    client, host = running.client, "sys-host"
    memory_mb, cpus, hostname, active_uuids = await asyncio.to_thread(
        libvirt_view, running.host.uri
    )

    nodes = await client.get_available_nodes(host)
    assert nodes == [hostname]
    node = await client.get_available_resource(host, nodes[0])
    assert isinstance(node, ComputeNode)
    assert (node.vcpus, node.memory_mb, node.hypervisor_type) == (cpus, memory_mb, "QEMU")
    assert await client.get_host_uptime(host) > 0

    assert running.guest_name in await client.list_instances(host)
    assert set(await client.list_instance_uuids(host)) == active_uuids
    assert await client.instance_exists(host, running.guest_uuid) is True
    assert await client.instance_exists(host, str(uuid.uuid4())) is False
    info = await client.get_info(host, running.guest_uuid)
    assert isinstance(info, InstanceInfo)
    assert (info.state, info.num_cpu, info.max_mem_kb) == ("running", 1, 64 * 1024)
    usage = await client.get_per_instance_usage(host)
    assert usage[running.guest_uuid].state == "running"
    # The guest has neither NICs nor disks: libvirt has no counters to report.
    assert await client.get_all_bw_counters(host, [running.guest_uuid]) == []
    assert await client.get_all_volume_usage(host, [running.guest_uuid]) == []
    assert await client.get_host_ip_addr(host) == "127.0.0.1"


async def test_disabling_the_host_is_answered_and_published(running: Running) -> None:
    client, host = running.client, "sys-host"
    async with await client.subscribe(f"host.{host}.*") as events:
        assert await client.set_host_enabled(host, False) == "disabled"

        async def disabled_service() -> Service:
            async for event in events:
                if isinstance(event.payload, Service) and event.payload.disabled:
                    return event.payload
            raise AssertionError("event stream ended")

        service = await asyncio.wait_for(disabled_service(), 30)
        assert service.host == host
        assert await client.host_maintenance_mode(host, True) == "on_maintenance"
        assert await client.host_maintenance_mode(host, False) == "off_maintenance"
        assert await client.set_host_enabled(host, True) == "enabled"
