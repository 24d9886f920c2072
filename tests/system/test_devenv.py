"""`deploy/devenv` as a developer runs it: `up --hosts 2` on hosts of its own (host7 and host8,
never the host1/host2 the other system tests lease), each agent answering `virtactor health`,
`status --json`, operator commands against an agent, `up` again leaving what runs alone, a
killed agent reported and restarted alone, and `down` leaving no process, no libvirtd of its
hosts and no state behind.

One up/down cycle for the module: the module-scoped `devenv` brings it up, the tests run in
file order and the last takes it down (the fixture's finalizer does, if a test failed first).
Under CI=true a missing component fails the tests; elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.transport import CONDUCTOR_QUEUE
from tests.agent.conftest import delete_amqp_topology
from tests.conftest import missing_component
from tests.system.conftest import HOST_SCRIPT, REPO_ROOT

pytestmark = [pytest.mark.libvirt_qemu, pytest.mark.rabbitmq]

DEVENV = REPO_ROOT / "deploy" / "devenv"
VIRTACTOR = Path(sys.executable).with_name("virtactor")
FIRST_INDEX = 7
HOSTS = ("host7", "host8")
PG_PORT = 5432


@dataclass
class Devenv:
    state_dir: Path
    prefix: str
    up: dict[str, Any]  # the document `up --json` printed

    def host(self, name: str) -> dict[str, Any]:
        return next(host for host in self.up["hosts"] if host["name"] == name)


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(*argv: str | Path, timeout: float = 60.0) -> Result:
    done = subprocess.run(
        [str(part) for part in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


def devenv(command: str, state_dir: Path, *args: str, timeout: float = 120.0) -> Result:
    return run(DEVENV, command, "--state-dir", state_dir, *args, timeout=timeout)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def libvirt_host_status(name: str) -> int:
    return run(HOST_SCRIPT, "status", name).status


def libvirtd_pid(name: str) -> int:
    state = Path(run(HOST_SCRIPT, "dir", name).stdout.strip())
    return int((state / "libvirtd.pid").read_text())


def _check_components(rabbitmq_url: str) -> None:
    if os.geteuid() != 0 or shutil.which("libvirtd") is None:
        missing_component(
            "root and libvirtd (deploy/local/libvirt-host.sh runs a private libvirtd per host)",
            "deploy/local/system-packages.sh test, then run the tests as root",
        )
    try:
        socket.create_connection(("127.0.0.1", PG_PORT), timeout=3).close()
    except OSError as exc:
        missing_component(f"PostgreSQL at 127.0.0.1:{PG_PORT} ({exc})", "deploy/local/services.sh")
    running = [name for name in HOSTS if libvirt_host_status(name) == 0]
    if running:
        # `down` stops only the hosts `up` started: these would stay, and prove nothing.
        pytest.fail(f"{', '.join(running)} already running: {HOST_SCRIPT} stop {running[0]}")


@pytest.fixture(scope="module")
def devenv_up(rabbitmq_url: str) -> Iterator[Devenv]:
    _check_components(rabbitmq_url)
    suffix = uuid.uuid4().hex[:8]
    state_dir = Path(f"/var/tmp/virtactor-devenv-test-{suffix}")
    prefix = f"vt-devenv-{suffix}"
    try:
        up = devenv(
            "up", state_dir, "--hosts", "2", "--first-index", str(FIRST_INDEX),
            "--prefix", prefix, "--amqp-url", rabbitmq_url, "--json", timeout=300,
        )  # fmt: skip
        assert up.status == 0, f"devenv up exited {up.status}:\n{up.stderr}\n{up.stdout}"
        yield Devenv(state_dir, prefix, up.json())
    finally:
        if state_dir.exists():
            devenv("down", state_dir)
        asyncio.run(delete_amqp_topology(rabbitmq_url, prefix, [*HOSTS, CONDUCTOR_QUEUE]))


def test_up_starts_a_conductor_and_an_agent_per_host_that_answer(devenv_up: Devenv) -> None:
    document = devenv_up.up
    assert document["healthy"] is True
    assert document["prefix"] == devenv_up.prefix
    assert [host["name"] for host in document["hosts"]] == list(HOSTS)
    for index, host in enumerate(document["hosts"], start=FIRST_INDEX):
        assert host["libvirt_uri"] == f"qemu+tcp://127.0.0.1:{16600 + index}/system"
        assert (host["libvirt"], host["agent"]) == ("running", "running")
        assert alive(host["pid"])
        config = Path(host["config"]).read_text()
        assert f'host = "{host["name"]}"' in config
        assert f'uri = "{host["libvirt_uri"]}"' in config
    assert document["conductor"]["state"] == "running"
    assert alive(document["conductor"]["pid"])


@pytest.mark.parametrize("name", HOSTS)
def test_each_agent_answers_health_with_its_configuration(devenv_up: Devenv, name: str) -> None:
    result = run(VIRTACTOR, "health", name, "--config", devenv_up.host(name)["config"], "--json")
    assert result.status == 0, result.stderr
    assert result.json()["healthy"] is True


def test_status_json_says_every_piece_runs(devenv_up: Devenv) -> None:
    result = devenv("status", devenv_up.state_dir, "--json")
    assert result.status == 0, result.stdout + result.stderr
    document = result.json()
    assert document["healthy"] is True
    assert [(h["name"], h["libvirt"], h["agent"]) for h in document["hosts"]] == [
        (name, "running", "running") for name in HOSTS
    ]
    assert document["conductor"]["state"] == "running"


def test_status_prints_a_table_for_people(devenv_up: Devenv) -> None:
    result = devenv("status", devenv_up.state_dir)
    assert result.status == 0, result.stdout + result.stderr
    for name in HOSTS:
        assert name in result.stdout
    assert "conductor" in result.stdout and "running" in result.stdout


def test_operator_commands_reach_the_agents_on_their_libvirt_hosts(devenv_up: Devenv) -> None:
    config = devenv_up.host("host7")["config"]
    instances = run(VIRTACTOR, "instances", "host7", "--config", config, "--json")
    assert instances.status == 0, instances.stderr
    assert instances.json() == []  # a fresh libvirt host
    node = run(VIRTACTOR, "call", "host8", "get_compute_node", "--config", config, "--json")
    assert node.status == 0, node.stderr
    assert node.json()["hypervisor_type"] == "QEMU"


DEVENV_USER_TEST = """
from schemas import use_indirection
from schemas.objects import Instance


async def test_the_fixtures_reach_the_devenvs_agents(
    virtactor_hosts, virtactor_host, virtactor_client, virtactor_new_instance, virtactor_image,
    virtactor_objects,
):
    assert virtactor_hosts == ["host7", "host8"] and virtactor_host == "host7"
    guest = virtactor_new_instance()
    spawned = await virtactor_client.spawn(virtactor_host, guest, virtactor_image)
    assert spawned.host == "host7"
    with use_indirection(virtactor_objects):
        recorded = await Instance.get_by_uuid(None, guest.uuid)
    assert recorded.vm_state == "active"
    await virtactor_client.destroy(virtactor_host, guest)
"""


def test_the_pytest_plugin_serves_its_fixtures_from_the_devenvs_agents(
    devenv_up: Devenv, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nasyncio_mode = "auto"\n')
    (tmp_path / "test_on_devenv.py").write_text(DEVENV_USER_TEST)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
         f"--virtactor-devenv={devenv_up.state_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "1 passed" in done.stdout
    assert f"the agents of the devenv in {devenv_up.state_dir}" in done.stdout


def test_up_again_leaves_what_runs_alone(devenv_up: Devenv) -> None:
    before = devenv("status", devenv_up.state_dir, "--json").json()
    again = devenv("up", devenv_up.state_dir, "--hosts", "2", "--first-index", str(FIRST_INDEX))
    assert again.status == 0, again.stderr
    assert "started nothing" in again.stderr
    after = devenv("status", devenv_up.state_dir, "--json").json()
    assert [h["pid"] for h in after["hosts"]] == [h["pid"] for h in before["hosts"]]
    assert after["conductor"]["pid"] == before["conductor"]["pid"]


def test_a_killed_agent_is_reported_and_up_restarts_only_it(devenv_up: Devenv) -> None:
    before = devenv("status", devenv_up.state_dir, "--json").json()
    killed = devenv_up.host("host8")["pid"]
    os.kill(killed, signal.SIGKILL)
    status = devenv("status", devenv_up.state_dir, "--json")
    assert status.status == 1
    assert [h["agent"] for h in status.json()["hosts"]] == ["running", "stopped"]
    again = devenv("up", devenv_up.state_dir, "--hosts", "2", "--first-index", str(FIRST_INDEX))
    assert again.status == 0, again.stderr
    assert "started host8" in again.stderr
    after = devenv("status", devenv_up.state_dir, "--json").json()
    assert after["healthy"] is True
    assert after["hosts"][0]["pid"] == before["hosts"][0]["pid"]
    assert after["hosts"][1]["pid"] not in (killed, None)
    assert after["conductor"]["pid"] == before["conductor"]["pid"]


def test_down_leaves_no_process_no_libvirtd_and_no_state(devenv_up: Devenv) -> None:
    status = devenv("status", devenv_up.state_dir, "--json").json()
    pids = [host["pid"] for host in status["hosts"]] + [status["conductor"]["pid"]]
    libvirtds = [libvirtd_pid(name) for name in HOSTS]
    result = devenv("down", devenv_up.state_dir)
    assert result.status == 0, result.stderr
    assert [pid for pid in pids + libvirtds if alive(pid)] == []
    assert [libvirt_host_status(name) for name in HOSTS] == [3, 3]
    assert not devenv_up.state_dir.exists()
    after = devenv("status", devenv_up.state_dir, "--json")
    assert after.status == 1
    assert after.json()["hosts"] == []
