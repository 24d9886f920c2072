"""Agents and clients of neighbouring releases, as real processes over RabbitMQ, both ways:
host calls, a guest's whole life with every event read, and fanout across a mixed fleet."""

from __future__ import annotations

import uuid

import pytest

from tests.upgrade.conftest import BOTH_WAYS, ON_THE_BUS, Fleet
from tests.upgrade.processes import play
from tests.upgrade.releases import Release
from tests.upgrade.scenarios import (
    IMAGE,
    TEST_DOMAIN_UUID,
    host_steps,
    instance_steps,
    payloads,
    sample_instance,
    until,
    values,
)

pytestmark = ON_THE_BUS


@BOTH_WAYS
async def test_host_calls_are_answered_across_releases(
    fleet: Fleet, releases: dict[str, Release], agent_side: str, client_side: str
) -> None:
    host = fleet.agents[agent_side].host
    steps = host_steps(
        host,
        [
            ("get_available_nodes", {}),
            ("list_instances", {}),
            ("list_instance_uuids", {}),
            ("get_host_uptime", {}),
            ("get_host_ip_addr", {}),
            ("instance_exists", {"uuid": TEST_DOMAIN_UUID}),
            ("instance_exists", {"uuid": str(uuid.uuid4())}),
            ("get_info", {"uuid": TEST_DOMAIN_UUID}),
            ("get_object_manifest", {}),
        ],
    )
    answer = await play(releases[client_side], fleet.command(steps=steps))
    nodes, names, uuids, uptime, ip, exists, absent, info, manifest = (
        r.get("ok", r) for r in answer["results"]
    )
    assert len(nodes) == 1 and isinstance(nodes[0], str)
    assert "test" in names  # test:///default's own domain, in each agent's process
    assert TEST_DOMAIN_UUID in uuids
    assert uptime > 0
    assert (ip, exists, absent) == ("127.0.0.1", True, False)
    assert (info["$obj"], info["state"]) == ("InstanceInfo", "running")
    # The agent told the client what it understands, and the client remembered it.
    assert answer["manifests"][host] == manifest
    node = await play(
        releases[client_side],
        fleet.command(steps=host_steps(host, [("get_available_resource", {"nodename": nodes[0]})])),
    )
    assert values(node, "$obj", "hypervisor_type", "hypervisor_hostname") == [
        ("ComputeNode", "TEST", nodes[0])
    ]


@BOTH_WAYS
async def test_a_guest_lives_its_whole_life_across_releases_with_every_event_read(
    fleet: Fleet, releases: dict[str, Release], agent_side: str, client_side: str
) -> None:
    host = fleet.agents[agent_side].host
    guest = sample_instance(str(uuid.uuid4()))
    topic = f"instance.{guest['uuid']}"
    steps = instance_steps(
        host,
        guest,
        [
            ("spawn", {"image_meta": IMAGE}),
            ("pause", {}),
            ("unpause", {}),
            ("suspend", {}),
            ("resume", {}),
            ("power_off", {"timeout": 0}),
            ("power_on", {}),
            ("reboot", {"reboot_type": "HARD"}),
            ("destroy", {}),
        ],
    )
    command = fleet.command(
        steps=steps,
        subscribe=f"{topic}.*",
        # The last lifecycle event ("stopped") comes after the agents' reboot-flap hold
        # (0.5 s, processes.agent_config): settle for longer.
        events={
            "until": [until(f"{topic}.power_state", "state", "pending")],
            "timeout": 20,
            "settle": 1.5,
        },
    )
    answer = await play(releases[client_side], command)

    assert values(answer, "vm_state", "power_state", "task_state") == [
        ("active", "running", None),
        ("paused", "paused", None),
        ("active", "running", None),
        ("suspended", "shutdown", None),
        ("active", "running", None),
        ("stopped", "shutdown", None),
        ("active", "running", None),
        ("active", "running", None),
        ("deleted", "pending", None),
    ]
    assert answer["skipped"] == 0
    assert payloads(answer, f"{topic}.power_state", "state") == [
        "running",
        "paused",
        "running",
        "shutdown",
        "running",
        "shutdown",
        "running",
        "pending",
    ]
    assert [s for s in payloads(answer, f"{topic}.state", "vm_state")] == [
        "building",
        "active",
        "paused",
        "active",
        "suspended",
        "active",
        "stopped",
        "active",
        "deleted",
    ]
    # Which transitions libvirt's events show depends on timing (a stop followed within the
    # flap hold by a start is one "started"), but each kind of change is seen, and the last
    # one is the guest's end.
    transitions = payloads(answer, f"{topic}.lifecycle", "transition")
    assert {"started", "paused", "resumed", "stopped"} <= set(transitions)
    assert transitions[-1] == "stopped"
    assert {e["sender"] for e in answer["events"]} == {host}


@pytest.mark.parametrize("client_side", ["N", "N-1"], ids=["new-client", "old-client"])
async def test_a_fanout_reaches_every_agent_of_a_mixed_fleet(
    fleet: Fleet, releases: dict[str, Release], client_side: str
) -> None:
    hosts = [agent.host for agent in fleet.agents.values()]
    for enabled in (False, True):  # and back, for the module's other tests
        command = fleet.command(
            steps=[{"fanout": "set_host_enabled", "args": {"enabled": enabled}}],
            subscribe="host.*.status",
            events={
                "until": [until(f"host.{h}.status", "disabled", not enabled) for h in hosts],
                "timeout": 20,
            },
        )
        answer = await play(releases[client_side], command)
        assert answer["results"] == [{"ok": None}]
        assert answer["skipped"] == 0
        acted = {
            e["sender"]
            for e in answer["events"]
            if e["payload"]["$obj"] == "Service" and e["payload"]["disabled"] is not enabled
        }
        assert acted == set(hosts), f"enabled={enabled}: only {acted} acted on the fanout"
