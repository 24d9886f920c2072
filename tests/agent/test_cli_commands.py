"""The operator commands as a script runs them: `virtactor call/instances/host/events/health`
in their own processes against an agent on libvirt's test:///default over the real RabbitMQ,
with a conductor (SQLite) on the same bus. Exit statuses, one-line errors and `--json`
documents are what a script relies on, so those are what is checked.

The agent runs in this process, on the session loop; each command is a child process the
loop waits for without blocking (the agent has to answer it meanwhile).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.conductor.service import running_conductor
from agent.config import AmqpSection, ConductorSection, ResourcesSection
from agent.service import Agent, build_transport
from agent.transport import CONDUCTOR_QUEUE, Transport
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import TEST_URI, embedded_config, make_root_image
from tests.conftest import ON_SESSION_LOOP

pytestmark = ON_SESSION_LOOP

VIRTACTOR = Path(sys.executable).with_name("virtactor")
HOST = "cmp-cli"
NOBODY_HOST = "cmp-nobody"
TEST_DOMAIN = "test"  # the domain test:///default starts with


@dataclass
class Deployment:
    url: str
    prefix: str
    client: ComputeClient
    domain_uuid: str  # the uuid of TEST_DOMAIN

    @property
    def bus(self) -> list[str]:
        return ["--url", self.url, "--prefix", self.prefix]


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def environment() -> dict[str, str]:
    """Ours without VIRTACTOR_ settings, so only what a test passes configures a command."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}


# The commands run niced: on a small machine, children importing at full speed would starve
# the agent's loop in this process, which the tests check is never held up.
NICE = ["nice", "-n", "10"]


async def virtactor(*args: str, timeout: float = 30.0) -> Result:
    """Run `virtactor args...` to its end; its exit status and output."""
    process = await asyncio.create_subprocess_exec(
        *NICE,
        str(VIRTACTOR),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def _domain_uuid(name: str) -> str:
    conn = libvirt.open(TEST_URI)
    try:
        return str(conn.lookupByName(name).UUIDString())
    finally:
        conn.close()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def deployment(
    rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """An agent HOST and a conductor on a prefix of their own, and a client; the broker's
    topology is deleted on exit."""
    root = tmp_path_factory.mktemp("cli")
    await make_root_image(root)
    prefix = f"vt-cli-{uuid.uuid4().hex[:8]}"
    base = embedded_config(root, HOST)
    config = dataclasses.replace(
        base,
        agent=dataclasses.replace(base.agent, heartbeat_interval=1.0),
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        conductor=ConductorSection(database_url=str(root / "conductor.sqlite")),
        resources=ResourcesSection(audit_interval=3600),
    )
    conductor_bus: Transport = build_transport(config)
    await conductor_bus.start()
    try:
        async with running_conductor(conductor_bus, config, upgrade=True):
            agent = Agent(config)
            client: ComputeClient | None = None
            try:
                await agent.start()
                await agent.wait_ready(timeout=30)
                client = await ComputeClient.connect(
                    rabbitmq_url, prefix=prefix, default_timeout=30, is_admin=True
                )
                domain = await asyncio.to_thread(_domain_uuid, TEST_DOMAIN)
                yield Deployment(rabbitmq_url, prefix, client, domain)
            finally:
                if client is not None:
                    await client.aclose()
                await agent.aclose()
    finally:
        await conductor_bus.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [HOST, CONDUCTOR_QUEUE])


# --- call --------------------------------------------------------------------------------


async def test_call_prints_the_result_as_json(deployment: Deployment) -> None:
    result = await virtactor("call", HOST, "get_available_nodes", "--json", *deployment.bus)
    assert result.status == 0, result.stderr
    nodes = result.json()
    assert isinstance(nodes, list) and len(nodes) == 1


async def test_call_takes_its_options_before_and_after_the_arguments(
    deployment: Deployment,
) -> None:
    result = await virtactor(
        "--log-level", "ERROR", "call", "--json", HOST, *deployment.bus, "get_info",
        "--timeout", "20", f"uuid={deployment.domain_uuid}", "--log-level", "WARNING",
    )  # fmt: skip
    assert result.status == 0, result.stderr
    info = result.json()
    assert isinstance(info, dict)
    assert info["state"] == "running"
    assert info["num_cpu"] >= 1


async def test_call_with_instance_asks_the_instance_actor(deployment: Deployment) -> None:
    result = await virtactor(
        "call", HOST, "get_info", "--instance", deployment.domain_uuid, "--json", *deployment.bus
    )
    assert result.status == 0, result.stderr
    info = result.json()
    assert isinstance(info, dict) and info["state"] == "running"


async def test_call_builds_an_object_argument_from_its_fields(deployment: Deployment) -> None:
    instance = json.dumps({"uuid": deployment.domain_uuid})
    result = await virtactor("call", HOST, "get_info", f"instance={instance}", *deployment.bus)
    assert result.status == 0, result.stderr
    assert "state" in result.stdout and "running" in result.stdout  # a table for people


async def test_call_reads_a_value_from_a_json_file(deployment: Deployment, tmp_path: Path) -> None:
    (tmp_path / "uuids.json").write_text(json.dumps([deployment.domain_uuid]))
    result = await virtactor(
        "call", HOST, "get_all_bw_counters", f"instance_uuids=@{tmp_path / 'uuids.json'}",
        "--json", *deployment.bus,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert isinstance(result.json(), list)


async def test_call_an_error_of_the_agent_is_one_line_with_its_class_and_exit_1(
    deployment: Deployment,
) -> None:
    missing = str(uuid.uuid4())
    result = await virtactor("call", HOST, "get_info", f"uuid={missing}", *deployment.bus)
    assert result.status == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("InstanceNotFound: ")
    assert missing in lines[0]


async def test_call_an_argument_the_method_does_not_take_is_refused_by_the_agent(
    deployment: Deployment,
) -> None:
    result = await virtactor("call", HOST, "get_available_nodes", "colour=red", *deployment.bus)
    assert result.status == 1
    assert result.stderr.startswith("InvalidArguments: "), result.stderr
    assert "colour" in result.stderr


async def test_call_bad_object_fields_are_listed_each_and_nothing_is_sent(
    deployment: Deployment,
) -> None:
    bad = json.dumps({"uuid": "not-a-uuid", "vcpus": "two", "colour": "red"})
    result = await virtactor("call", HOST, "pause", f"instance={bad}", *deployment.bus)
    assert result.status == 2
    assert result.stderr.splitlines() == [
        "instance: ObjectFieldError: Instance.uuid: expected a UUID, got 'not-a-uuid'",
        "instance: ObjectFieldError: Instance.vcpus: expected an integer, got 'two'",
        "instance: UnknownFieldError: Instance has no field 'colour'",
    ]


async def test_call_to_a_host_nobody_serves_is_unroutable(deployment: Deployment) -> None:
    result = await virtactor("call", NOBODY_HOST, "get_available_nodes", *deployment.bus)
    assert result.status == 1
    assert result.stderr.startswith("Unroutable: "), result.stderr


# --- a configuration file ------------------------------------------------------------------


async def test_the_broker_and_prefix_come_from_the_configuration_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = tmp_path / "virtactor.toml"
    config.write_text(
        f'[amqp]\nurl = "{deployment.url}"\nprefix = "{deployment.prefix}"\n'
        "[rpc]\ncall_timeout = 20.0\n"
    )
    result = await virtactor("call", HOST, "get_available_nodes", "--config", str(config))
    assert result.status == 0, result.stderr


# --- instances, host -----------------------------------------------------------------------


async def test_instances_lists_the_hosts_domains(deployment: Deployment) -> None:
    result = await virtactor("instances", HOST, "--json", *deployment.bus)
    assert result.status == 0, result.stderr
    rows = result.json()
    assert isinstance(rows, list)
    (test,) = [row for row in rows if row["uuid"] == deployment.domain_uuid]
    assert test["state"] == "running"
    # The name comes from the conductor's Instance record, which an adopted guest that no
    # operation changed does not have yet.
    assert test["name"] in (TEST_DOMAIN, None)
    assert test["vcpus"] >= 1 and test["memory_mb"] > 0
    assert set(test) == {"uuid", "name", "state", "vcpus", "memory_mb"}

    table = await virtactor("instances", HOST, *deployment.bus)
    assert table.status == 0, table.stderr
    assert deployment.domain_uuid in table.stdout


async def test_host_shows_the_trackers_node_and_the_service(deployment: Deployment) -> None:
    node = await deployment.client.get_compute_node(HOST)
    result = await virtactor("host", HOST, "--json", *deployment.bus)
    assert result.status == 0, result.stderr
    document = result.json()
    assert isinstance(document, dict)
    assert document["compute_node"]["vcpus"] == node.vcpus
    assert document["compute_node"]["memory_mb"] == node.memory_mb
    assert document["service"]["host"] == HOST
    assert document["service_source"] == "conductor"
    assert document["service_state"] == "up"

    table = await virtactor("host", HOST, *deployment.bus)
    assert table.status == 0, table.stderr
    assert "memory used" in table.stdout and "service" in table.stdout


# --- events --------------------------------------------------------------------------------


async def _listening(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    line = await asyncio.wait_for(process.stderr.readline(), 20)
    assert line.startswith(b"listening for "), line


async def test_events_prints_the_next_event_and_stops_after_count(
    deployment: Deployment,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *NICE, str(VIRTACTOR), "events", f"host.{HOST}.status", "--count", "1", "--json",
        *deployment.bus,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment(),
    )  # fmt: skip
    await _listening(process)
    assert await deployment.client.set_host_enabled(HOST, True) == "enabled"
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    (line,) = out.decode().splitlines()
    event = json.loads(line)
    assert event["topic"] == f"host.{HOST}.status"
    assert event["type"] == "Service"
    assert event["sender"] == HOST
    assert event["payload"]["host"] == HOST


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_events_runs_until_a_signal_and_exits_0(
    deployment: Deployment, signum: signal.Signals
) -> None:
    process = await asyncio.create_subprocess_exec(
        *NICE, str(VIRTACTOR), "events", f"host.{HOST}.*", *deployment.bus,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment(),
    )  # fmt: skip
    await _listening(process)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 20)  # a heartbeat, every 1 s
    assert line.startswith(f"host.{HOST}.".encode()), line
    assert b"Service  from cmp-cli" in line
    process.send_signal(signum)
    await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0


# --- health --------------------------------------------------------------------------------


async def test_health_is_0_for_an_agent_that_answers(deployment: Deployment) -> None:
    result = await virtactor("health", HOST, *deployment.bus)
    assert result.status == 0, result.stderr
    assert result.stdout.startswith(f"healthy: {HOST}: get_available_nodes answered")

    document = (await virtactor("health", HOST, "--json", *deployment.bus)).json()
    assert isinstance(document, dict) and document["healthy"] is True


async def test_health_is_1_with_the_reason_for_a_host_nobody_serves(
    deployment: Deployment,
) -> None:
    result = await virtactor("health", NOBODY_HOST, "--timeout", "1", *deployment.bus)
    assert result.status == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"unhealthy: {NOBODY_HOST}: Unroutable: "), line


# --- migrate -----------------------------------------------------------------------------


async def test_migrate_watch_follows_the_migration_to_its_end_and_exits_by_its_outcome(
    deployment: Deployment,
) -> None:
    uuid_ = str(uuid.uuid4())
    me = instance(uuid_, name=f"cli-mig-{uuid_[:8]}")
    await deployment.client.spawn(HOST, me, image_meta())
    try:
        # Nobody serves the destination: the first step is unroutable, the workflow rolls
        # back and the migration ends failed, the guest where it was.
        result = await virtactor(
            "migrate", uuid_, "--from", HOST, "--to", NOBODY_HOST, "--watch", "--json",
            *deployment.bus,
        )  # fmt: skip
        assert result.status == 1, result
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert lines[0]["migration"]["status"] == "queued"
        statuses = [
            payload["status"]
            for line in lines[1:]
            for topic, payload in line.items()
            if topic.endswith(".status")
        ]
        assert statuses == ["preparing", "failed"]
        assert (await deployment.client.get_info(HOST, me)).state == "running"
    finally:
        await deployment.client.destroy(HOST, me)


async def test_migrate_without_a_source_uses_the_host_the_record_names(
    deployment: Deployment,
) -> None:
    uuid_ = str(uuid.uuid4())
    me = instance(uuid_, name=f"cli-mig-{uuid_[:8]}")
    await deployment.client.spawn(HOST, me, image_meta())
    try:
        result = await virtactor("migrate", uuid_, "--to", HOST, *deployment.bus)
        # Found on HOST from its record, then refused there: the destination is the source.
        assert result.status == 1, result
        assert "MigrationPreCheckError" in result.stderr and "is this host" in result.stderr
        unknown = await virtactor("migrate", str(uuid.uuid4()), "--to", HOST, *deployment.bus)
        assert unknown.status == 2 and "give --from HOST" in unknown.stderr
    finally:
        await deployment.client.destroy(HOST, me)
