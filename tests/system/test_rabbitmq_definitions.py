"""deploy/rabbitmq/apply.sh against the real broker: each user it creates can do what its
process does (the real agent and conductor run under theirs) and is refused the rest."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import aio_pika
import aiormq
import pytest

from agent.client import ComputeClient
from agent.transport import AmqpSettings, AmqpTransport, Names
from agent.transport.base import Delivery, Outcome
from tests.conftest import missing_component

pytestmark = pytest.mark.rabbitmq

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APPLY = DEPLOY / "rabbitmq" / "apply.sh"
DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
PREFIX = "virtactor"  # the default, as definitions.json has it; the vhost keeps tests apart
HOST_A, HOST_B = "agent-a", "agent-b"
ONLY = ("--no-conductor", "--no-control-plane")  # the agents' users only


@dataclass(slots=True, frozen=True)
class Applied:
    vhost: str
    user_prefix: str
    broker: str  # host:port
    passwords: dict[str, str]  # user name without the prefix -> password
    printed: str  # apply.sh's stdout

    def url(self, name: str) -> str:
        user = quote(self.user_prefix + name, safe="")
        return f"amqp://{user}:{self.passwords[name]}@{self.broker}/{quote(self.vhost, safe='')}"


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )


def require_rabbitmqctl() -> None:
    if shutil.which("rabbitmqctl") is None or rabbitmqctl("list_vhosts").returncode != 0:
        missing_component(
            "rabbitmqctl on the broker's node (as root)", "run the tests as root (make test)"
        )


def apply(applied_vhost: str, user_prefix: str, *hosts: str, **env: str) -> str:
    result = subprocess.run(
        ["sh", str(APPLY), "--vhost", applied_vhost, "--user-prefix", user_prefix, *hosts],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def applied(rabbitmq_url: str) -> Iterator[Applied]:
    """apply.sh run on a vhost and users of this test's own, deleted afterwards."""
    require_rabbitmqctl()
    unique = uuid.uuid4().hex[:8]
    vhost, user_prefix = f"vt-defs-{unique}", f"vt-defs-{unique}-"
    chosen = {HOST_A: f"a-{unique}", "control-plane": f"cp-{unique}"}
    try:
        printed = apply(
            vhost,
            user_prefix,
            HOST_A,
            HOST_B,
            VIRTACTOR_RABBITMQ_PASSWORD_AGENT_A=chosen[HOST_A],
            VIRTACTOR_RABBITMQ_PASSWORD_CONTROL_PLANE=chosen["control-plane"],
        )
        generated = dict(line.split(" ") for line in printed.splitlines())
        passwords = {
            **chosen,
            **{user.removeprefix(user_prefix): pw for user, pw in generated.items()},
        }
        parsed = urlparse(rabbitmq_url)
        broker = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5672}"
        yield Applied(vhost, user_prefix, broker, passwords, printed)
    finally:
        for name in (HOST_A, HOST_B, "conductor", "control-plane"):
            rabbitmqctl("delete_user", user_prefix + name)
        rabbitmqctl("delete_vhost", vhost)


def test_apply_prints_generated_passwords_once_and_only_those(applied: Applied) -> None:
    users = sorted(line.split(" ")[0] for line in applied.printed.splitlines())
    assert users == [applied.user_prefix + name for name in ("agent-b", "conductor")]
    assert apply(applied.vhost, applied.user_prefix, HOST_A, HOST_B) == ""
    check = rabbitmqctl("authenticate_user", applied.user_prefix + "conductor", "nope")
    assert check.returncode != 0
    conductor_pw = applied.passwords["conductor"]
    check = rabbitmqctl("authenticate_user", applied.user_prefix + "conductor", conductor_pw)
    assert check.returncode == 0


def test_a_password_variable_sets_an_existing_users_password(applied: Applied) -> None:
    new = f"b2-{uuid.uuid4().hex[:6]}"
    apply(
        applied.vhost, applied.user_prefix, *ONLY, HOST_B, VIRTACTOR_RABBITMQ_PASSWORD_AGENT_B=new
    )
    user = applied.user_prefix + HOST_B
    assert rabbitmqctl("authenticate_user", user, new).returncode == 0
    # Back as the other tests know it.
    old = applied.passwords[HOST_B]
    apply(
        applied.vhost, applied.user_prefix, *ONLY, HOST_B, VIRTACTOR_RABBITMQ_PASSWORD_AGENT_B=old
    )
    assert rabbitmqctl("authenticate_user", user, old).returncode == 0


def test_apply_refuses_a_host_that_is_no_routing_key_word() -> None:
    for host in ("cmp.001", "conductor", "a*"):
        result = subprocess.run(
            ["sh", str(APPLY), "--vhost", "unused", host],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (result.returncode, result.stdout) == (2, ""), host
        assert f"host '{host}'" in result.stderr


def test_the_policies_applied_are_those_of_definitions_json(applied: Applied) -> None:
    listed = rabbitmqctl("list_policies", "-p", applied.vhost, "--formatter", "json")
    applied_policies = {
        p["name"]: (p["pattern"], p["apply-to"], json.loads(p["definition"]), p["priority"])
        for p in json.loads(listed.stdout)
    }
    defined = {
        p["name"]: (p["pattern"], p["apply-to"], p["definition"], p["priority"])
        for p in json.loads(DEFINITIONS.read_text())["policies"]
    }
    assert applied_policies == defined


async def ignore(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
    pass


async def transport_of(applied: Applied, name: str) -> AmqpTransport:
    transport = AmqpTransport(AmqpSettings(url=applied.url(name), prefix=PREFIX))
    await transport.start()
    return transport


async def pong(delivery: Delivery) -> Outcome:
    return Outcome(reply=b"pong:" + delivery.body)


@pytest.fixture
async def agents(applied: Applied) -> AsyncIterator[tuple[AmqpTransport, AmqpTransport]]:
    """Agents A and B serving their own queues, each as its own user."""
    started: list[AmqpTransport] = []
    try:
        for host in (HOST_A, HOST_B):
            transport = await transport_of(applied, host)
            started.append(transport)
            await transport.serve(host, pong)
        yield started[0], started[1]
    finally:
        for transport in started:
            await transport.aclose()


async def test_an_agent_serves_its_queue_and_publishes_its_events_as_its_user(
    applied: Applied, agents: tuple[AmqpTransport, AmqpTransport]
) -> None:
    agent_a, _agent_b = agents
    control = await transport_of(applied, "control-plane")
    try:
        assert await control.call(HOST_A, b"1", message_id="m1", timeout=10) == b"pong:1"
        assert await control.call(HOST_B, b"2", message_id="m2", timeout=10) == b"pong:2"
        events = await control.subscribe("host.#")
        try:
            await agent_a.publish_event(f"host.{HOST_A}.heartbeat", b"beat")
            async with asyncio.timeout(10):
                assert await anext(aiter(events)) == b"beat"
        finally:
            await events.aclose()
        # An agent may call itself (a health check run with its configuration).
        assert await agent_a.call(HOST_A, b"3", message_id="m3", timeout=10) == b"pong:3"
    finally:
        await control.aclose()


async def refused(
    applied: Applied, name: str, action: Callable[[aio_pika.abc.AbstractChannel], Awaitable[object]]
) -> str:
    """The broker's ACCESS_REFUSED text for `action` done as user `name` on a fresh channel."""
    connection = await aio_pika.connect(applied.url(name))
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as caught:
            await action(channel)
        return str(caught.value)
    finally:
        await connection.close()


async def test_agent_a_is_refused_agent_b_queue_events_and_requests(
    applied: Applied, agents: tuple[AmqpTransport, AmqpTransport]
) -> None:
    names = Names(PREFIX)
    queue_b = names.host_queue(HOST_B)

    async def consume_b(channel: aio_pika.abc.AbstractChannel) -> None:
        queue = await channel.get_queue(queue_b, ensure=False)
        await queue.consume(ignore)

    async def publish_b_event(channel: aio_pika.abc.AbstractChannel) -> None:
        events = await channel.get_exchange(names.events, ensure=False)
        await events.publish(aio_pika.Message(b"x"), routing_key=f"host.{HOST_B}.heartbeat")

    async def bind_to_b_requests(channel: aio_pika.abc.AbstractChannel) -> None:
        queue = await channel.get_queue(names.host_queue(HOST_A), ensure=False)
        await queue.bind(names.commands, routing_key=f"compute.{HOST_B}")

    async def command_b(channel: aio_pika.abc.AbstractChannel) -> None:
        commands = await channel.get_exchange(names.commands, ensure=False)
        await commands.publish(aio_pika.Message(b"x"), routing_key=f"compute.{HOST_B}")

    async def declare_b(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(queue_b, durable=True, passive=False)

    async def hear_all_events(channel: aio_pika.abc.AbstractChannel) -> None:
        queue = await channel.declare_queue(f"{PREFIX}.events.1a.2b", exclusive=True)
        await queue.bind(names.events, routing_key="host.#")

    async def broadcast(channel: aio_pika.abc.AbstractChannel) -> None:
        exchange = await channel.get_exchange(names.broadcast, ensure=False)
        await exchange.publish(aio_pika.Message(b"x"), routing_key="")

    vhost = applied.vhost
    assert f"access to queue '{queue_b}' in vhost '{vhost}' refused" in await refused(
        applied, HOST_A, consume_b
    )
    assert f"access to topic 'host.{HOST_B}.heartbeat'" in await refused(
        applied, HOST_A, publish_b_event
    )
    assert f"access to topic 'compute.{HOST_B}'" in await refused(
        applied, HOST_A, bind_to_b_requests
    )
    assert f"access to topic 'compute.{HOST_B}'" in await refused(applied, HOST_A, command_b)
    assert f"access to queue '{queue_b}'" in await refused(applied, HOST_A, declare_b)
    assert "access to topic 'host.#'" in await refused(applied, HOST_A, hear_all_events)
    assert f"access to exchange '{names.broadcast}'" in await refused(applied, HOST_A, broadcast)
    # B still serves: nothing A tried took its requests.
    control = await transport_of(applied, "control-plane")
    try:
        assert await control.call(HOST_B, b"4", message_id="m4", timeout=10) == b"pong:4"
    finally:
        await control.aclose()


async def test_the_control_plane_may_not_serve_or_consume_an_agents_queue(
    applied: Applied, agents: tuple[AmqpTransport, AmqpTransport]
) -> None:
    queue_a = Names(PREFIX).host_queue(HOST_A)

    async def consume_a(channel: aio_pika.abc.AbstractChannel) -> None:
        queue = await channel.get_queue(queue_a, ensure=False)
        await queue.consume(ignore)

    assert f"access to queue '{queue_a}'" in await refused(applied, "control-plane", consume_a)


async def test_the_real_agent_and_conductor_run_under_their_users(
    applied: Applied, tmp_path: Path
) -> None:
    """`virtactor conductor` and `virtactor run` as their users: the agent answers the
    control plane, publishes heartbeats, and its Service record reaches the database."""
    database = tmp_path / "conductor.sqlite"
    base = {
        **os.environ,
        "VIRTACTOR_AMQP_PREFIX": PREFIX,
        "VIRTACTOR_CONDUCTOR_DATABASE_URL": str(database),
    }
    conductor_env = {**base, "VIRTACTOR_AMQP_URL": applied.url("conductor")}
    agent_env = {
        **base,
        "VIRTACTOR_AMQP_URL": applied.url(HOST_A),
        "VIRTACTOR_AGENT_HOST": HOST_A,
        "VIRTACTOR_AGENT_INSTANCES_PATH": str(tmp_path),
        "VIRTACTOR_AGENT_HEARTBEAT_INTERVAL": "0.5",
        "VIRTACTOR_LIBVIRT_URI": "test:///default",
    }
    cli = [sys.executable, "-m", "agent.cli", "--log-level", "INFO"]
    upgraded = await asyncio.create_subprocess_exec(
        *cli, "conductor", "--upgrade-db", env=conductor_env
    )
    assert await asyncio.wait_for(upgraded.wait(), 60) == 0
    log_paths = [tmp_path / "conductor.log", tmp_path / "agent.log"]
    processes = []
    for command, env, log_path in zip(
        ("conductor", "run"), (conductor_env, agent_env), log_paths, strict=True
    ):
        with log_path.open("wb") as log_file:
            processes.append(
                await asyncio.create_subprocess_exec(*cli, command, env=env, stderr=log_file)
            )
    client = await ComputeClient.connect(
        applied.url("control-plane"), prefix=PREFIX, default_timeout=20, is_admin=True
    )
    try:
        heartbeats = await client.subscribe(f"host.{HOST_A}.heartbeat")
        event = await asyncio.wait_for(anext(aiter(heartbeats)), 60)
        assert event.sender_host == HOST_A
        await heartbeats.aclose()
        assert await client.get_available_nodes(HOST_A) != []
        # The DaemonSet's liveness probe runs as the agent's own user: its host answers;
        # another (here unserved, and refused to it besides) is unhealthy.
        assert await health(applied.url(HOST_A), HOST_A) == 0
        assert await health(applied.url(HOST_A), HOST_B) == 1
        async with asyncio.timeout(30):
            while not service_saved(database, HOST_A):  # noqa: ASYNC110 - a database
                await asyncio.sleep(0.2)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        statuses = [await asyncio.wait_for(p.wait(), 30) for p in processes]
        logs = [path.read_text() for path in log_paths]
        assert statuses == [0, 0], logs
        assert not [log for log in logs if "ACCESS_REFUSED" in log], logs
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await client.aclose()


async def health(url: str, host: str) -> int:
    """`virtactor health HOST`'s exit status, run with `url`."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "agent.cli", "health", "--url", url, "--prefix", PREFIX),
        *("--timeout", "10", host),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 60)


def service_saved(database: Path, host: str) -> bool:
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT count(*) FROM services WHERE host = ?", (host,))
        return bool(row.fetchone()[0])


def definitions_for(vhost: str) -> dict[str, Any]:
    """definitions.json with its vhost renamed."""
    definitions = json.loads(DEFINITIONS.read_text())
    definitions["vhosts"] = [{"name": vhost}]
    for kind in ("policies", "exchanges", "queues", "bindings"):
        for item in definitions[kind]:
            item["vhost"] = vhost
    return definitions


@pytest.fixture
def imported(rabbitmq_url: str) -> Iterator[str]:
    """definitions.json imported under a vhost of this test's own: its URL (as the test's
    broker user, given every permission there)."""
    require_rabbitmqctl()
    vhost = f"vt-import-{uuid.uuid4().hex[:8]}"
    # rabbitmqctl reads the file as the rabbitmq user (Debian's wrapper drops root): not
    # from pytest's 0700 tmp_path.
    readable = Path(tempfile.mkdtemp(prefix="vt-import-"))
    readable.chmod(0o755)
    path = readable / "definitions.json"
    path.write_text(json.dumps(definitions_for(vhost)))
    path.chmod(0o644)
    parsed = urlparse(rabbitmq_url)
    try:
        assert rabbitmqctl("import_definitions", str(path)).returncode == 0
        deadline = time.monotonic() + 30  # the import runs asynchronously
        while Names(PREFIX).events not in rabbitmqctl("list_exchanges", "-p", vhost).stdout:
            assert time.monotonic() < deadline, f"{vhost}: definitions not imported in 30 s"
            time.sleep(0.2)
        user = parsed.username or "guest"
        assert rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*").returncode == 0
        yield parsed._replace(path="/" + quote(vhost, safe="")).geturl()
    finally:
        shutil.rmtree(readable)
        rabbitmqctl("delete_vhost", vhost)


async def test_definitions_json_imports_and_agrees_with_the_transports_declarations(
    imported: str,
) -> None:
    """Imported, the topology is what the transport declares itself: an agent starts and
    serves on it without PRECONDITION_FAILED."""
    transport = AmqpTransport(AmqpSettings(url=imported, prefix=PREFIX))
    await transport.start()
    try:
        await transport.serve(HOST_A, pong)
        assert await transport.call(HOST_A, b"5", message_id="m5", timeout=10) == b"pong:5"
    finally:
        await transport.aclose()
