"""`virtactor run` and `virtactor conductor` stop on SIGTERM or SIGINT at any point: while
retrying a broker that does not answer, and while serving. A bad configuration is a list of
error lines and exit status 2, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

VIRTACTOR = Path(sys.executable).with_name("virtactor")
# A port nothing listens on: every connect is refused at once.
NOBODY = "amqp://guest:guest@127.0.0.1:1/"


def clean_environment(**settings: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}
    return environ | {"PYTHONFAULTHANDLER": "1"} | settings


class Process:
    """A `virtactor` command whose stderr goes to a file (no pipe to fill up)."""

    def __init__(self, args: list[str], environ: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as stderr:
            self.popen = subprocess.Popen(
                [str(VIRTACTOR), "--log-level", "INFO", *args],
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def wait_for_line(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            assert self.popen.poll() is None, f"exited {self.popen.returncode}:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.stderr()}"
            time.sleep(0.05)

    def stop(self, signum: signal.Signals) -> tuple[int, float]:
        """Send `signum`; the exit status and the seconds it took to exit."""
        sent = time.monotonic()
        self.popen.send_signal(signum)
        try:
            status = self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack
            self.popen.wait(timeout=10)
            pytest.fail(f"still running 10 s after {signum.name}:\n{self.stderr()}")
        return status, time.monotonic() - sent

    def stderr(self) -> str:
        return self.log.read_text()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_retries_an_unreachable_broker_with_its_reason_and_stops_on_a_signal(
    signum: signal.Signals, tmp_path: Path, processes: list[Process]
) -> None:
    environ = clean_environment(
        VIRTACTOR_AMQP_URL=NOBODY, VIRTACTOR_AGENT_INSTANCES_PATH=str(tmp_path)
    )
    agent = Process(["run"], environ, tmp_path / "stderr")
    processes.append(agent)
    agent.wait_for_line("Connect call failed ('127.0.0.1', 1)); retrying in 1s")
    time.sleep(0.5)  # into the pause between two attempts, or the next attempt
    status, took = agent.stop(signum)
    assert (status, took < 5) == (0, True), agent.stderr()
    assert f"{signum.name} received: stopping" in agent.stderr()
    assert "Traceback" not in agent.stderr()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_conductor_retries_an_unreachable_broker_and_stops_on_a_signal(
    signum: signal.Signals, tmp_path: Path, processes: list[Process]
) -> None:
    environ = clean_environment(
        VIRTACTOR_AMQP_URL=NOBODY, VIRTACTOR_AGENT_INSTANCES_PATH=str(tmp_path)
    )
    conductor = Process(["conductor"], environ, tmp_path / "stderr")
    processes.append(conductor)
    conductor.wait_for_line("conductor: start failed ([Errno 111]")
    status, took = conductor.stop(signum)
    assert (status, took < 5) == (0, True), conductor.stderr()
    assert "Traceback" not in conductor.stderr()


def test_run_on_the_embedded_bus_stops_gracefully_on_sigterm_once_serving(
    tmp_path: Path, processes: list[Process]
) -> None:
    environ = clean_environment(
        VIRTACTOR_AGENT_HOST="cli-stop", VIRTACTOR_AGENT_INSTANCES_PATH=str(tmp_path)
    )
    agent = Process(["run"], environ, tmp_path / "stderr")
    processes.append(agent)
    agent.wait_for_line("agent cli-stop started (libvirt test:///default)")
    status, took = agent.stop(signal.SIGTERM)
    assert (status, took < 5) == (0, True), agent.stderr()
    assert "agent cli-stop stopping" in agent.stderr()
    assert "Traceback" not in agent.stderr()


def run_to_the_end(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VIRTACTOR), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    """The text of each ERROR log line, without the time and the logger's name."""
    return [
        line.split(" ERROR virtactor ", 1)[1] for line in stderr.splitlines() if " ERROR " in line
    ]


@pytest.mark.parametrize("command", ["run", "conductor"])
def test_a_bad_configuration_is_an_error_line_per_problem_and_exit_status_2(
    command: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[amqp]\nurl = "htp://nowhere"\nprefetch = 0\n[agent]\nhost_ip = "x"\n')
    environ = clean_environment(VIRTACTOR_RPC_CALL_TIMEOUT="-5")
    done = run_to_the_end([command, "--config", str(path)], environ)
    assert done.returncode == 2
    assert sorted(error_lines(done.stderr)) == [
        f"configuration {path} [agent] host_ip: 'x' is not an IP address",
        f"configuration {path} [amqp] prefetch: 0 is out of range (expected 1 to 65535)",
        f"configuration {path} [amqp] url: 'htp://nowhere' is not an AMQP URL (expected empty "
        "for the in-process bus, or amqp://user:password@host:5672/vhost or amqps://...)",
        "configuration [rpc] call_timeout: -5.0 is out of range (expected > 0) "
        "(from environment VIRTACTOR_RPC_CALL_TIMEOUT)",
    ]
    assert "Traceback" not in done.stderr


def test_a_configuration_the_agent_refuses_as_it_starts_is_exit_status_2_too(
    tmp_path: Path,
) -> None:
    environ = clean_environment(
        VIRTACTOR_AGENT_HOST="conductor", VIRTACTOR_AGENT_INSTANCES_PATH=str(tmp_path)
    )
    done = run_to_the_end(["run"], environ)
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "configuration [agent] host: 'conductor' is the object backend's queue; "
        "name the host otherwise"
    ]
    assert "Traceback" not in done.stderr


def test_a_conductor_without_a_broker_url_is_exit_status_2() -> None:
    done = run_to_the_end(["conductor"], clean_environment())
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "configuration [amqp] url: empty: a conductor serves agents over RabbitMQ (set [amqp] url)"
    ]
