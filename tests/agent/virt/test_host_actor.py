"""The host actor and its instance actors over the Host on libvirt's test driver.

Everything runs for real (actor system, Host, bridge, libvirt's test driver); the sink
records what was published.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors import HOST_ADDRESS, ActorSystem, BlockingExecutor, instance_address
from actors.host import AUTO_DISABLED_PREFIX, HostActorSettings, host_topic, service_uuid
from actors.instance import InstanceActor, power_state_topic
from actors.lifecycle_events import lifecycle_topic
from agent.errors import InstanceNotFound
from agent.virt.host import Host
from agent.virt.hypervisor import LibvirtHypervisor
from schemas.objects.compute_node import ComputeNode
from schemas.objects.enums import PowerState
from schemas.objects.service import Service
from schemas.objects.virt import InstanceInfo, LifecycleEvent
from tests.agent.virt.conftest import TEST_URI, domain_xml
from tests.agent.virt.helpers import Agent, RecordingSink, start_agent, stop_agent, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEFAULT_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"  # the test driver's domain "test"
HOST = "compute-1"
FLAP_DELAY = 0.2


async def start_test_agent(
    executor: BlockingExecutor, path: Path, *, resync_interval: float = 3600.0
) -> Agent:
    return await start_agent(
        executor,
        TEST_URI,
        str(path),
        host=HOST,
        flap_delay=FLAP_DELAY,
        resync_interval=resync_interval,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def agent(executor: BlockingExecutor, tmp_path: Path) -> AsyncIterator[Agent]:
    started = await start_test_agent(executor, tmp_path)
    yield started
    await stop_agent(started)


@pytest_asyncio.fixture(loop_scope="session")
async def ready(agent: Agent) -> Agent:
    await agent.ref.ask("init_host", timeout=10)
    return agent


async def test_init_host_adopts_every_domain_with_its_state_read_from_the_hypervisor(
    agent: Agent,
) -> None:
    assert not agent.runtime.readiness()

    adopted = await agent.ref.ask("init_host", timeout=10)

    assert adopted == [DEFAULT_UUID]
    assert agent.runtime.readiness()
    assert instance_address(DEFAULT_UUID) in agent.system
    assert agent.actors.made[DEFAULT_UUID].power_state == PowerState.RUNNING
    assert agent.states(DEFAULT_UUID) == [PowerState.RUNNING]


async def test_events_reach_the_owning_instance_actor_in_order(ready: Agent) -> None:
    dom_uuid = "11111111-2222-3333-4444-000000000001"

    def lifecycle(conn: libvirt.virConnect) -> None:
        dom = conn.defineXML(domain_xml("routed", dom_uuid))
        dom.create()
        dom.suspend()
        dom.resume()
        dom.destroy()

    await ready.run(lifecycle)
    await wait_for(lambda: len(ready.actors.kinds(dom_uuid)) == 5)

    actor = ready.actors.made[dom_uuid]
    assert [(e.kind, e.detail) for e in actor.received] == [
        ("defined", "added"),
        ("started", "booted"),
        ("suspended", "paused"),
        ("resumed", "unpaused"),
        ("stopped", "destroyed"),
    ]
    sequences = [e.sequence for e in actor.received]
    assert sequences == sorted(sequences)
    # The actor reads the new state before it publishes it: wait for the publication.
    await wait_for(lambda: ready.states(dom_uuid)[-1:] == [PowerState.SHUTDOWN])
    assert actor.power_state == PowerState.SHUTDOWN


async def test_a_hard_reboot_never_shows_power_state_listeners_a_shut_off(ready: Agent) -> None:
    def hard_reboot(conn: libvirt.virConnect) -> None:
        dom = conn.lookupByUUIDString(DEFAULT_UUID)
        dom.destroy()
        dom.create()

    await ready.run(hard_reboot)
    actor = ready.actors.made[DEFAULT_UUID]
    await wait_for(lambda: "started" in ready.actors.kinds(DEFAULT_UUID))
    await asyncio.sleep(FLAP_DELAY * 2)  # past any hold: nothing more may arrive

    assert ready.actors.kinds(DEFAULT_UUID) == ["started"]
    assert ready.runtime.bridge is not None
    assert ready.runtime.bridge.filter.dropped == 1
    assert ready.states(DEFAULT_UUID) == [PowerState.RUNNING]
    assert actor.power_state == PowerState.RUNNING


async def test_a_real_stop_is_published_once_its_hold_expires(ready: Agent) -> None:
    await ready.run(lambda conn: conn.lookupByUUIDString(DEFAULT_UUID).destroy())

    await ready.sink.wait_until(lambda: len(ready.states(DEFAULT_UUID)) == 2)
    assert ready.states(DEFAULT_UUID) == [PowerState.RUNNING, PowerState.SHUTDOWN]
    assert ready.actors.kinds(DEFAULT_UUID) == ["stopped"]


def lifecycle(agent: Agent, uuid: str) -> list[LifecycleEvent]:
    """The lifecycle events published for `uuid`, in order."""
    published = agent.sink.on(lifecycle_topic(uuid))
    return [obj for obj in published if isinstance(obj, LifecycleEvent)]


def transitions(agent: Agent, uuid: str) -> list[tuple[str, str]]:
    return [(str(e.instance_uuid), e.transition) for e in lifecycle(agent, uuid)]


async def test_a_pause_and_a_resume_are_published_as_lifecycle_events_in_order(
    ready: Agent,
) -> None:
    before = datetime.now(UTC)
    await ready.run(lambda conn: conn.lookupByUUIDString(DEFAULT_UUID).suspend())
    await ready.sink.wait_until(lambda: len(lifecycle(ready, DEFAULT_UUID)) == 1)
    await ready.run(lambda conn: conn.lookupByUUIDString(DEFAULT_UUID).resume())
    await ready.sink.wait_until(lambda: len(lifecycle(ready, DEFAULT_UUID)) == 2)

    assert transitions(ready, DEFAULT_UUID) == [(DEFAULT_UUID, "paused"), (DEFAULT_UUID, "resumed")]
    paused, resumed = lifecycle(ready, DEFAULT_UUID)
    assert before <= paused.timestamp <= resumed.timestamp <= datetime.now(UTC)
    # Besides the power states, which are published as before.
    await ready.sink.wait_until(lambda: len(ready.states(DEFAULT_UUID)) == 3)
    assert ready.states(DEFAULT_UUID) == [PowerState.RUNNING, PowerState.PAUSED, PowerState.RUNNING]


async def test_a_hard_reboot_is_published_as_a_start_without_its_stop(ready: Agent) -> None:
    def hard_reboot(conn: libvirt.virConnect) -> None:
        dom = conn.lookupByUUIDString(DEFAULT_UUID)
        dom.destroy()
        dom.create()

    await ready.run(hard_reboot)
    await ready.sink.wait_until(lambda: bool(lifecycle(ready, DEFAULT_UUID)))
    await asyncio.sleep(FLAP_DELAY * 2)  # past any hold: nothing more may arrive

    assert transitions(ready, DEFAULT_UUID) == [(DEFAULT_UUID, "started")]


async def test_a_held_stop_is_published_with_the_time_it_happened(ready: Agent) -> None:
    await ready.run(lambda conn: conn.lookupByUUIDString(DEFAULT_UUID).destroy())
    await ready.sink.wait_until(lambda: bool(lifecycle(ready, DEFAULT_UUID)))
    seen_at = datetime.now(UTC)

    [stopped] = lifecycle(ready, DEFAULT_UUID)
    assert stopped.transition == "stopped"
    # Published once its reboot-flap hold expired, stamped with when libvirt reported it.
    assert stopped.timestamp <= seen_at - timedelta(seconds=FLAP_DELAY / 2)


async def test_events_before_init_host_are_dropped_and_init_reads_the_truth(
    agent: Agent,
) -> None:
    async with asyncio.timeout(10):
        await agent.runtime.host.wait_connected()
    await agent.run(lambda conn: conn.lookupByUUIDString(DEFAULT_UUID).suspend())
    await wait_for(lambda: agent.runtime.bridge is not None and agent.runtime.bridge.delivered == 1)

    assert agent.actors.made == {}
    await agent.ref.ask("init_host", timeout=10)
    assert agent.states(DEFAULT_UUID) == [PowerState.PAUSED]


async def test_a_domain_first_seen_in_an_event_is_adopted(ready: Agent) -> None:
    dom_uuid = "11111111-2222-3333-4444-000000000002"
    await ready.run(lambda conn: conn.defineXML(domain_xml("newcomer", dom_uuid)))

    await ready.sink.wait_until(lambda: bool(ready.states(dom_uuid)))
    assert ready.states(dom_uuid) == [PowerState.SHUTDOWN]
    assert ready.actors.kinds(dom_uuid) == ["defined"]


async def test_get_available_resource_returns_the_compute_node_of_the_host_facts(
    ready: Agent,
) -> None:
    node = await ready.ref.ask("get_available_resource", {"nodename": "test"}, timeout=10)
    facts = await ready.runtime.host.get_host_facts()

    assert isinstance(node, ComputeNode)
    assert (node.host, node.hypervisor_hostname, node.hypervisor_type) == (HOST, "vm", "TEST")
    assert (node.vcpus, node.memory_mb, node.vcpus_used) == (
        facts.vcpus,
        facts.memory_mb,
        facts.vcpus_used,
    )
    assert str(node.host_ip) == "192.0.2.10"


async def test_the_host_lists_its_instances_by_name_and_uuid(ready: Agent) -> None:
    assert await ready.ref.ask("list_instances") == ["test"]
    assert await ready.ref.ask("list_instance_uuids") == [DEFAULT_UUID]
    assert await ready.ref.ask("instance_exists", {"uuid": DEFAULT_UUID})
    assert not await ready.ref.ask("instance_exists", {"uuid": "no-such-uuid"})
    assert await ready.ref.ask("get_available_nodes") == ["vm"]
    assert await ready.ref.ask("get_host_ip_addr") == "192.0.2.10"
    assert await ready.ref.ask("get_host_uptime") > 0


async def test_get_info_answers_for_any_domain_of_the_host(ready: Agent) -> None:
    info = await ready.ref.ask("get_info", {"uuid": DEFAULT_UUID})

    assert isinstance(info, InstanceInfo)
    assert (info.state, info.num_cpu, info.max_mem_kb) == (PowerState.RUNNING, 2, 8388608)
    missing = "11111111-2222-3333-4444-00000000dead"
    with pytest.raises(InstanceNotFound) as caught:
        await ready.ref.ask("get_info", {"uuid": missing})
    assert str(caught.value) == f"instance {missing} could not be found"


async def test_usage_reports_cover_every_domain(ready: Agent) -> None:
    usage = await ready.ref.ask("get_per_instance_usage")

    assert list(usage) == [DEFAULT_UUID]
    assert usage[DEFAULT_UUID].state == PowerState.RUNNING
    # The test driver has no interface or block statistics.
    assert await ready.ref.ask("get_all_bw_counters") == []
    assert await ready.ref.ask("get_all_volume_usage", {"instance_uuids": [DEFAULT_UUID]}) == []


def services(agent: Agent, event: str) -> list[Service]:
    return [obj for obj in agent.sink.on(host_topic(HOST, event)) if isinstance(obj, Service)]


async def test_set_host_enabled_publishes_the_service_status(ready: Agent) -> None:
    assert await ready.ref.ask("set_host_enabled", {"enabled": False}) == "disabled"
    assert await ready.ref.ask("set_host_enabled", {"enabled": True}) == "enabled"
    assert await ready.ref.ask("host_maintenance_mode", {"host": HOST, "mode": True}) == (
        "on_maintenance"
    )

    assert [(s.disabled, s.disabled_reason) for s in services(ready, "status")] == [
        (True, "disabled by an operator"),
        (False, None),
        (True, "maintenance"),
    ]
    assert {s.uuid for s in services(ready, "status")} == {service_uuid(HOST)}


async def test_a_lost_connection_disables_the_service_until_it_is_restored(
    ready: Agent,
) -> None:
    await ready.ref.ask("hypervisor_connection_lost", {"reason": "end of file from libvirtd"})
    await ready.ref.ask("hypervisor_connection_restored")

    assert [(s.disabled, s.disabled_reason) for s in services(ready, "connection")] == [
        (True, f"{AUTO_DISABLED_PREFIX}Connection to libvirt lost: end of file from libvirtd"),
        (False, None),
    ]


async def test_an_operator_disabled_host_stays_disabled_after_a_reconnect(ready: Agent) -> None:
    await ready.ref.ask("set_host_enabled", {"enabled": False})
    await ready.ref.ask("hypervisor_connection_lost", {"reason": "keepalive"})
    await ready.ref.ask("hypervisor_connection_restored")

    assert [(s.disabled, s.disabled_reason) for s in services(ready, "connection")] == [
        (True, "disabled by an operator"),
        (True, "disabled by an operator"),
    ]


async def test_a_reconnect_resynchronises_every_instance(ready: Agent) -> None:
    actor = ready.actors.made[DEFAULT_UUID]
    syncs = actor.syncs

    await ready.ref.ask("hypervisor_connection_restored")

    await wait_for(lambda: actor.syncs == syncs + 1)
    assert ready.ref.address == HOST_ADDRESS


async def test_the_heartbeat_publishes_the_service_with_a_growing_report_count(
    ready: Agent,
) -> None:
    await ready.ref.ask("report_heartbeat")
    await ready.ref.ask("report_heartbeat")

    beats = services(ready, "heartbeat")
    assert [s.report_count for s in beats] == [1, 2]
    assert all(s.last_seen_up is not None for s in beats)


async def test_the_periodic_resync_rereads_every_instance(
    executor: BlockingExecutor, tmp_path: Path
) -> None:
    agent = await start_test_agent(executor, tmp_path, resync_interval=0.05)
    try:
        await agent.ref.ask("init_host", timeout=10)
        actor = agent.actors.made[DEFAULT_UUID]
        await wait_for(lambda: actor.syncs >= 3)
        assert agent.states(DEFAULT_UUID) == [PowerState.RUNNING]  # unchanged: once
    finally:
        await stop_agent(agent)


async def test_an_instance_whose_state_cannot_be_read_is_reported_unknown(
    executor: BlockingExecutor,
) -> None:
    unreachable = Host("qemu+tcp://127.0.0.1:1/system", executor, instances_path="/")
    sink = RecordingSink()
    async with ActorSystem(executor=executor, stop_timeout=2.0) as system:
        uuid = "11111111-2222-3333-4444-000000000003"
        ref = system.spawn(
            instance_address(uuid),
            InstanceActor(uuid, LibvirtHypervisor(unreachable, service_host=HOST), sink),
        )
        assert await ref.ask("sync_power_state") == PowerState.PENDING

    assert [(t, o.state) for t, o in sink.published if isinstance(o, InstanceInfo)] == [
        (power_state_topic(uuid), PowerState.PENDING)
    ]
    assert len(sink.published) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resync_interval", 0.0, "resync_interval must be > 0 seconds, got 0.0"),
        ("heartbeat_interval", -1.0, "heartbeat_interval must be > 0 seconds, got -1.0"),
        ("adopt_concurrency", 0, "adopt_concurrency must be >= 1, got 0"),
        (
            "image_cache_interval",
            -1.0,
            "image_cache_interval must be >= 0 seconds, got -1.0",
        ),
    ],
)
async def test_host_actor_settings_refuse_values_that_would_spin_or_stall(
    field: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        HostActorSettings(host=HOST, **{field: value})
    assert str(caught.value) == message
