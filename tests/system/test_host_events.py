"""The Host and host actor on real libvirtd + QEMU (qemu:///system): events, reboot flapping,
and the host's resources as libvirt reports them.

libvirt binds its events to one asyncio loop per process: these tests run on the session
loop, like every test that opens a Host (see docs/host.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors import BlockingExecutor
from agent.virt.host_facts import MIB
from schemas.objects.compute_node import ComputeNode
from schemas.objects.enums import PowerState
from tests.agent.virt.helpers import Agent, remove_domain, start_agent, stop_agent, wait_for
from tests.system.conftest import ON_REAL_QEMU
from tests.system.domains import firmware_domain_xml

pytestmark = ON_REAL_QEMU

FLAP_DELAY = 1.0
EVENT_TIMEOUT = 30.0


@pytest_asyncio.fixture(loop_scope="session")
async def agent(qemu_uri: str, executor: BlockingExecutor, tmp_path: Path) -> AsyncIterator[Agent]:
    started = await start_agent(executor, qemu_uri, str(tmp_path), flap_delay=FLAP_DELAY)
    await started.ref.ask("init_host", timeout=60)
    yield started
    await stop_agent(started)


@pytest.fixture
def domain_uuid(qemu_uri: str) -> Iterator[str]:
    """A fresh uuid; whatever domain the test made with it is removed afterwards."""
    made = str(uuid.uuid4())
    yield made
    remove_domain(qemu_uri, made)


def subsequence(wanted: list[str], seen: list[str]) -> bool:
    remaining = iter(seen)
    return all(kind in remaining for kind in wanted)


async def test_events_of_a_real_qemu_domain_reach_its_instance_actor_in_order(
    agent: Agent, domain_uuid: str
) -> None:
    xml = firmware_domain_xml(f"virtactor-host-{domain_uuid[:8]}", domain_uuid)

    def published(state: PowerState) -> bool:
        return bool(agent.states(domain_uuid)) and agent.states(domain_uuid)[-1] == state

    def act(verb: str) -> Awaitable[None]:
        return agent.run(lambda conn: getattr(conn.lookupByUUIDString(domain_uuid), verb)())

    await agent.run(lambda conn: conn.defineXML(xml))
    await act("create")
    await wait_for(lambda: published(PowerState.RUNNING), EVENT_TIMEOUT)
    await act("suspend")
    await wait_for(lambda: published(PowerState.PAUSED), EVENT_TIMEOUT)
    await act("resume")
    await wait_for(lambda: published(PowerState.RUNNING), EVENT_TIMEOUT)
    await act("destroy")
    await act("undefine")
    await wait_for(lambda: "undefined" in agent.actors.kinds(domain_uuid), EVENT_TIMEOUT)

    actor = agent.actors.made[domain_uuid]
    kinds = agent.actors.kinds(domain_uuid)
    assert subsequence(
        ["defined", "started", "suspended", "resumed", "stopped", "undefined"], kinds
    ), kinds
    sequences = [event.sequence for event in actor.received]
    assert sequences == sorted(set(sequences))
    assert ("stopped", "destroyed") in [(e.kind, e.detail) for e in actor.received]
    # Gone from libvirt: no state ("pending", nova's NOSTATE), never a crash.
    await wait_for(lambda: published(PowerState.PENDING), EVENT_TIMEOUT)
    assert actor.power_state == PowerState.PENDING
    assert PowerState.CRASHED not in agent.states(domain_uuid)


async def test_a_hard_reboot_of_a_real_domain_is_not_reported_as_shut_off(
    agent: Agent, domain_uuid: str
) -> None:
    xml = firmware_domain_xml(f"virtactor-flap-{domain_uuid[:8]}", domain_uuid)
    await agent.run(lambda conn: conn.defineXML(xml).create())
    await wait_for(lambda: PowerState.RUNNING in agent.states(domain_uuid), EVENT_TIMEOUT)
    actor = agent.actors.made[domain_uuid]
    received_before = len(actor.received)
    published_before = len(agent.states(domain_uuid))

    def hard_reboot(conn: libvirt.virConnect) -> None:
        dom = conn.lookupByUUIDString(domain_uuid)
        dom.destroy()
        dom.create()

    await agent.run(hard_reboot)
    await wait_for(lambda: "started" in agent.actors.kinds(domain_uuid)[received_before:])
    await asyncio.sleep(FLAP_DELAY * 1.5)  # past the hold: a released stop would be here now

    after = agent.actors.kinds(domain_uuid)[received_before:]
    assert "stopped" not in after
    assert "shutdown" not in after
    assert agent.runtime.bridge is not None
    assert agent.runtime.bridge.filter.dropped >= 1
    assert agent.states(domain_uuid)[published_before:] == []
    assert agent.states(domain_uuid)[-1] == PowerState.RUNNING
    assert actor.power_state == PowerState.RUNNING


def libvirt_view(uri: str) -> tuple[list[int], int, int, int, str, int]:
    conn = libvirt.open(uri)
    try:
        running = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        return (
            conn.getInfo(),
            conn.getFreeMemory() // MIB,
            sum(dom.info()[3] for dom in running),
            len(running),
            conn.getHostname(),
            conn.getVersion(),
        )
    finally:
        conn.close()


async def test_get_available_resource_matches_what_libvirt_reports(
    agent: Agent, qemu_uri: str
) -> None:
    # Other tests may start or stop domains meanwhile: compare with libvirt's view read just
    # before and just after, and retry until both reads agree.
    for _attempt in range(5):
        before = await asyncio.to_thread(libvirt_view, qemu_uri)
        node = await agent.ref.ask("get_available_resource", {"nodename": before[4]}, timeout=60)
        after = await asyncio.to_thread(libvirt_view, qemu_uri)
        if before[2:] == after[2:]:
            break
    assert isinstance(node, ComputeNode)
    info, free_mb, vcpus_used, running, hostname, version = after

    assert (node.hypervisor_type, node.hypervisor_version, node.hypervisor_hostname) == (
        "QEMU",
        version,
        hostname,
    )
    assert (node.vcpus, node.memory_mb) == (info[2], info[1])
    assert (node.vcpus_used, node.running_vms) == (vcpus_used, running)
    # Free memory moves all the time: the agent's read lies between the two of the test.
    assert min(info[1] - before[1], info[1] - free_mb) - 64 <= node.memory_mb_used
    assert node.memory_mb_used <= max(info[1] - before[1], info[1] - free_mb) + 64
    pci_devices = await agent.run(
        lambda conn: len(conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV))
    )
    assert node.pci_device_pools is not None
    assert sum(pool.count for pool in node.pci_device_pools.objects) == pci_devices
    capabilities = await agent.run(lambda conn: conn.getCapabilities())
    assert node.uuid in capabilities
    assert ["x86_64", "qemu", "hvm"] in node.supported_instances
