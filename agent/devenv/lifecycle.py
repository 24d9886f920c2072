"""`up`, `inspect` and `down` of a development environment (see `agent.devenv`).

`up` is idempotent: a piece that already runs (a libvirt host, the conductor, an agent whose
pid file names a live process started with its configuration) is left alone, and only what
is missing is started. `down` stops the processes, then the libvirt hosts `up` started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aio_pika
import aiormq
import asyncpg  # type: ignore[import-untyped]

from agent.client import ComputeClient
from agent.commands.parsers import HEALTH_METHOD
from agent.devenv import processes
from agent.devenv.state import (
    DevenvError,
    Environment,
    HostRecord,
    agent_toml,
    conductor_toml,
    write_if_changed,
)
from agent.rpc.server import GET_OBJECT_MANIFEST
from agent.transport import CONDUCTOR_QUEUE
from agent.transport.topics import Names
from schemas.errors import VirtactorError

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_SCRIPTS = REPO_ROOT / "deploy" / "local"
VIRTACTOR = Path(sys.executable).with_name("virtactor")
ANSWER_TIMEOUT = 5.0  # one health call, as `virtactor health`
STOP_TIMEOUT = 30.0  # an agent lets its requests under way finish before it exits

RUNNING = "running"
STOPPED = "stopped"
NOT_ANSWERING = "not answering"


@dataclass(slots=True)
class Started:
    """What `up` found running and what it started, for its progress lines."""

    libvirt_hosts: list[str]
    processes: list[str]


def _script(name: str, *args: str, out: TextIO) -> subprocess.CompletedProcess[str]:
    """Run deploy/local/`name`, its output to `out` (the progress stream, never a --json
    stdout); `DevenvError` when it fails."""
    out.flush()
    done = subprocess.run(
        [str(LOCAL_SCRIPTS / name), *args], stdout=out, stderr=out, text=True, check=False
    )
    if done.returncode != 0:
        raise DevenvError(reason=f"{name} {' '.join(args)} exited {done.returncode}")
    return done


def _host_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCAL_SCRIPTS / "libvirt-host.sh"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def libvirt_running(name: str) -> bool:
    """Whether local host `name`'s libvirtd answers (libvirt-host.sh status exits 0)."""
    return _host_script("status", name).returncode == 0


def child_environment() -> dict[str, str]:
    """Ours without VIRTACTOR_ settings: the files `up` writes are the whole configuration
    of the processes it starts (a VIRTACTOR_AMQP_URL in the shell would win over them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}


def up(env: Environment, names: list[str], timeout: float, out: TextIO) -> Started:
    """Bring `env` up with the hosts `names` added to those it has; returns once every
    agent and the conductor answer. `DevenvError` if a piece cannot be started, exits, or
    does not answer within `timeout` seconds; what was started keeps running (`down`)."""
    _script("services.sh", "start", out=out)
    if asyncio.run(_ensure_database(env.database_url)):
        env.database_created = True
    started = Started(_start_libvirt_hosts(env, names, out), [])
    # Saved before any process starts, so `down` finds whatever a failed `up` left.
    env.save()
    for path in (env.state_dir, env.images_dir):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
    write_if_changed(env.conductor_config, conductor_toml(env))
    for host in env.hosts:
        env.instances_dir(host.name).mkdir(parents=True, exist_ok=True)
        env.host_dir(host.name).chmod(0o755)
        env.instances_dir(host.name).chmod(0o755)
        write_if_changed(env.agent_config(host.name), agent_toml(env, host))
    if _conductor_pid(env) is None:
        _upgrade_database(env, out)
        _start(env, "conductor", env.conductor_config, env.conductor_pid, env.conductor_log)
        started.processes.append("conductor")
    for host in env.hosts:
        if _agent_pid(env, host.name) is None:
            config = env.agent_config(host.name)
            _start(env, "run", config, env.agent_pid(host.name), env.agent_log(host.name))
            started.processes.append(host.name)
    asyncio.run(_wait_answering(env, timeout))
    return started


def _start_libvirt_hosts(env: Environment, names: list[str], out: TextIO) -> list[str]:
    """Start the libvirt hosts of `names` not running, side by side (a first start probes
    QEMU for several seconds); add `names` to `env.hosts`. The names it started."""
    to_start: list[str] = []
    for name in names:
        if not libvirt_running(name):
            to_start.append(name)
        uri = _host_script("uri", name).stdout.strip()
        record = env.host(name)
        if record is None:
            env.hosts.append(HostRecord(name, uri, started_libvirt=name in to_start))
        elif name in to_start:
            record.started_libvirt = True
    env.hosts.sort(key=lambda host: int(host.name.removeprefix("host")))
    out.flush()
    starts = {
        name: subprocess.Popen(
            [str(LOCAL_SCRIPTS / "libvirt-host.sh"), "start", name], stdout=out, stderr=out
        )
        for name in to_start
    }
    failed = [name for name, proc in starts.items() if proc.wait(timeout=180) != 0]
    if failed:
        env.save()  # so `down` stops those that did start
        raise DevenvError(reason=f"libvirt-host.sh start failed for {', '.join(failed)}")
    return to_start


async def _ensure_database(url: str) -> bool:
    """Create the database `url` names if it does not exist; whether it was created."""
    server, _, name = url.rpartition("/")
    maintenance = server.replace("postgresql+asyncpg://", "postgresql://", 1) + "/postgres"
    try:
        connection = await asyncpg.connect(maintenance, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DevenvError(reason=f"cannot connect to PostgreSQL at {server}: {exc}") from exc
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await connection.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await connection.close()


async def _drop_database(url: str) -> None:
    server, _, name = url.rpartition("/")
    maintenance = server.replace("postgresql+asyncpg://", "postgresql://", 1) + "/postgres"
    connection = await asyncpg.connect(maintenance, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await connection.close()


def _upgrade_database(env: Environment, out: TextIO) -> None:
    out.flush()
    done = subprocess.run(
        [str(VIRTACTOR), "conductor", "--upgrade-db", "--config", str(env.conductor_config)],
        stdout=out,
        stderr=out,
        env=child_environment(),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise DevenvError(reason=f"virtactor conductor --upgrade-db exited {done.returncode}")


def _start(env: Environment, command: str, config: Path, pid_file: Path, log: Path) -> None:
    argv = [str(VIRTACTOR), "--log-level", "INFO", command, "--config", str(config)]
    processes.start(argv, pid_file, log, child_environment())


def _conductor_pid(env: Environment) -> int | None:
    return processes.running_pid(env.conductor_pid, str(env.conductor_config))


def _agent_pid(env: Environment, name: str) -> int | None:
    return processes.running_pid(env.agent_pid(name), str(env.agent_config(name)))


async def _wait_answering(env: Environment, timeout: float) -> None:
    """Until the conductor and every agent answer; `DevenvError` naming the first that
    exited (with its log's last lines) or those that did not answer within `timeout`."""
    pending = {
        CONDUCTOR_QUEUE: env.conductor_log,
        **{h.name: env.agent_log(h.name) for h in env.hosts},
    }
    client = await _client(env)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending:
            for target, log in list(pending.items()):
                pid = _conductor_pid(env) if target == CONDUCTOR_QUEUE else _agent_pid(env, target)
                if pid is None:
                    tail = processes.log_tail(log)
                    raise DevenvError(reason=f"the {_what(target)} exited; {log}:\n{tail}")
                if await _answers(client, target):
                    del pending[target]
            if not pending:
                return
            if loop.time() >= deadline:
                names = ", ".join(_what(target) for target in pending)
                raise DevenvError(reason=f"no answer within {timeout:g}s from {names}")
            await asyncio.sleep(1.0)
    finally:
        await client.aclose()


def _what(target: str) -> str:
    return "conductor" if target == CONDUCTOR_QUEUE else f"agent of {target}"


async def _client(env: Environment) -> ComputeClient:
    try:
        # An admin's, as the operator's: the health method is the host's (docs/security.md).
        return await ComputeClient.connect(
            env.amqp_url,
            prefix=env.prefix,
            default_timeout=ANSWER_TIMEOUT,
            announce_interval=None,
            is_admin=True,
        )
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        raise DevenvError(reason=f"cannot connect to the broker at {env.amqp_url}: {exc}") from exc


async def _answers(client: ComputeClient | None, target: str) -> bool:
    """Whether `target` (a host, or the conductors' queue) answers a cheap call in time."""
    if client is None:
        return False
    method = GET_OBJECT_MANIFEST if target == CONDUCTOR_QUEUE else HEALTH_METHOD
    try:
        await client.call(target, method, timeout=ANSWER_TIMEOUT)
    except (VirtactorError, OSError):
        return False
    return True


def inspect(env: Environment) -> dict[str, Any]:
    """The status document: each host's libvirt and agent state, the conductor's state,
    their files; `healthy` when every piece runs and answers."""
    return asyncio.run(_inspect(env))


async def _inspect(env: Environment) -> dict[str, Any]:
    try:
        client: ComputeClient | None = await _client(env)
    except DevenvError:
        client = None  # nothing answers without a broker: "not answering" for what runs
    try:
        pids = {h.name: _agent_pid(env, h.name) for h in env.hosts}
        pids[CONDUCTOR_QUEUE] = _conductor_pid(env)
        answering = await asyncio.gather(
            *(_answers(client, target) for target, pid in pids.items() if pid is not None)
        )
        answered = dict(
            zip([t for t, pid in pids.items() if pid is not None], answering, strict=True)
        )
        libvirt = await asyncio.gather(
            *(asyncio.to_thread(libvirt_running, h.name) for h in env.hosts)
        )
    finally:
        if client is not None:
            await client.aclose()

    def state(target: str) -> str:
        if pids[target] is None:
            return STOPPED
        return RUNNING if answered[target] else NOT_ANSWERING

    hosts = [
        {
            "name": host.name,
            "libvirt_uri": host.uri,
            "libvirt": RUNNING if up_ else STOPPED,
            "agent": state(host.name),
            "pid": pids[host.name],
            "config": str(env.agent_config(host.name)),
            "log": str(env.agent_log(host.name)),
        }
        for host, up_ in zip(env.hosts, libvirt, strict=True)
    ]
    conductor = {
        "state": state(CONDUCTOR_QUEUE),
        "pid": pids[CONDUCTOR_QUEUE],
        "database_url": env.database_url,
        "config": str(env.conductor_config),
        "log": str(env.conductor_log),
    }
    healthy = conductor["state"] == RUNNING and all(
        host["agent"] == RUNNING and host["libvirt"] == RUNNING for host in hosts
    )
    return {
        "state_dir": str(env.state_dir),
        "prefix": env.prefix,
        "amqp_url": env.amqp_url,
        "healthy": healthy,
        "conductor": conductor,
        "hosts": hosts,
    }


def down(env: Environment, keep: bool, out: TextIO) -> list[str]:
    """Stop the agents, then the conductor, then the libvirt hosts `up` started (one a test
    run still leases is left running); without `keep`, drop the database `up` created,
    delete the processes' queues and the state directory. What could not be stopped (a line
    each; nothing is removed then, so a second `down` can try again)."""
    agents = [pid for h in env.hosts if (pid := _agent_pid(env, h.name)) is not None]
    # Agents first: while stopping they still save their records through the conductor.
    left = processes.stop_all(agents, STOP_TIMEOUT)
    conductor = _conductor_pid(env)
    left += processes.stop_all([] if conductor is None else [conductor], STOP_TIMEOUT)
    problems = [f"pid {pid} survived SIGKILL" for pid in left]
    for host in env.hosts:
        if not host.started_libvirt:
            out.write(f"devenv: {host.name} was running before devenv up: left running\n")
            continue
        leases = _test_leases(host.name)
        if leases:
            out.write(f"devenv: {host.name} is leased by test runs {leases}: left running\n")
            continue
        done = _host_script("stop", host.name)
        out.write(done.stdout + done.stderr)
        if done.returncode != 0:
            problems.append(f"libvirt-host.sh stop {host.name} exited {done.returncode}")
    if problems:
        return problems
    for pid_file in [env.conductor_pid, *(env.agent_pid(h.name) for h in env.hosts)]:
        pid_file.unlink(missing_ok=True)
    if not keep:
        try:
            asyncio.run(_remove_shared_state(env))
        except (OSError, asyncpg.PostgresError, aiormq.exceptions.AMQPError) as exc:
            # The local files go anyway: what is left is named, and harmless to a next `up`.
            out.write(f"devenv: queues or database of {env.prefix!r} left in place: {exc}\n")
        shutil.rmtree(env.state_dir)
    return []


async def _remove_shared_state(env: Environment) -> None:
    if env.database_created:
        await _drop_database(env.database_url)
    await _delete_queues(env)


def _test_leases(name: str) -> list[int]:
    """The pids of live test runs holding a lease on local host `name` (tests/system)."""
    host_dir = Path(_host_script("dir", name).stdout.strip())
    leases = host_dir / "leases"
    found = [int(p.name) for p in leases.glob("*")] if leases.is_dir() else []
    return [pid for pid in found if processes.alive(pid)]


async def _delete_queues(env: Environment) -> None:
    """The request queues of the environment's agents and conductor (durable: they would
    outlive their consumers). The shared exchanges stay: every process declares them."""
    names = Names(env.prefix)
    queues = [names.host_queue(h.name) for h in env.hosts] + [names.host_queue(CONDUCTOR_QUEUE)]
    connection = await aio_pika.connect(env.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)


def reasons(document: Mapping[str, Any]) -> list[str]:
    """One line per piece of a status document that is not running and answering."""
    found = []
    if document["conductor"]["state"] != RUNNING:
        found.append(f"conductor: {document['conductor']['state']}")
    for host in document["hosts"]:
        if host["libvirt"] != RUNNING:
            found.append(f"{host['name']}: libvirt {host['libvirt']}")
        if host["agent"] != RUNNING:
            found.append(f"{host['name']}: agent {host['agent']}")
    return found
