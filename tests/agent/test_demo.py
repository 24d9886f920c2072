"""`virtactor demo` on libvirt's test driver: two agents and a conductor on one bus tell the
story by messages and clean up everything they started. The real-QEMU story, with its live
migration, is tests/system/test_demo_real_hosts.py."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from pathlib import Path

import aio_pika
import libvirt
import pytest

from agent import demo
from agent.demo.choice import DemoUnavailable, choose_bus, choose_hosts
from agent.transport.topics import Names

URL = "amqp://guest:guest@127.0.0.1:5672/"


def demo_files(output: str) -> Path:
    """The directory the demo made (its test node's file is in it), from its hosts line."""
    found = re.search(r"test:///(\S+)/demo-b-node\.xml", output)
    assert found, output
    return Path("/" + found.group(1))


def domains_on_test_default() -> list[str]:
    conn = libvirt.open("test:///default")
    try:
        return sorted(dom.name() for dom in conn.listAllDomains(0))
    finally:
        conn.close()


# libvirt binds its events to one asyncio loop per process: the session loop.
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.usefixtures("session_loop_not_blocked")
async def test_the_demo_on_the_test_driver_tells_the_story_and_cleans_up() -> None:
    out = io.StringIO()
    assert await demo.run(out, bus="embedded", hosts="test") == 0
    text = out.getvalue()
    lines = text.splitlines()
    assert "bus:   embedded in-process bus (asked for)" in text
    assert "test driver: no real guests, no live migration" in text
    assert any(
        line.startswith(
            "✓ conductor (SQLite) and agents demo-a on test-default, demo-b on "
            "test-node, on the embedded bus"
        )
        for line in lines
    ), text
    spawned = (
        r"✓ spawned demo-guest [0-9a-f-]{36} on demo-a: "
        r"vm_state active, power_state running \(\d+\.\ds\)"
    )
    assert len([line for line in lines if re.fullmatch(spawned, line)]) == 1, text
    # The guest's events, as they arrived, in order.
    events = [line.split(": ", 1)[1] for line in lines if " event state " in line]
    assert events == [
        "vm_state=building, task_state=spawning, power_state=pending, host=demo-a",
        "vm_state=active, task_state=None, power_state=running",
        "task_state=deleting",
        "vm_state=deleted, task_state=None, power_state=pending",
    ]
    assert any(" event lifecycle   from demo-a: libvirt: started" in line for line in lines)
    # The test driver attaches no devices: the agent's typed refusal is shown.
    assert any(
        line.startswith("✓ not on the test driver: the agent answered NotSupported")
        for line in lines
    )
    # The guest's claim moved demo-a's usage, and only demo-a's.
    resources = [line for line in lines if line.startswith("✓ resources: ")]
    assert [r[: r.rindex(" (")] for r in resources] == [
        "✓ resources: demo-a 512 MiB, demo-b 512 MiB",
        "✓ resources: demo-a 576 MiB, demo-b 512 MiB",
    ]
    assert any(line.startswith("✓ skipped: test driver, no live migration") for line in lines)
    assert any(
        line.startswith("✓ destroyed demo-guest: vm_state deleted, its domain on no host")
        for line in lines
    )
    assert "cleaned up: all 6 things it started" in lines
    assert re.fullmatch(r"whole story: \d+\.\ds", lines[-1])
    assert not demo_files(text).exists()
    assert domains_on_test_default() == ["test"]


def test_the_virtactor_command_runs_the_demo_in_its_own_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--hosts", "test", "--bus", "embedded"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on the embedded bus" in done.stdout
    assert "cleaned up: all 6 things it started" in done.stdout
    assert not demo_files(done.stdout).exists()


@pytest.mark.rabbitmq
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.usefixtures("session_loop_not_blocked")
async def test_on_rabbitmq_the_demo_deletes_its_queues_and_exchanges(rabbitmq_url: str) -> None:
    out = io.StringIO()
    assert await demo.run(out, bus="rabbitmq", hosts="test", amqp_url=rabbitmq_url) == 0
    text = out.getvalue()
    assert f"bus:   RabbitMQ at {rabbitmq_url.split('@')[1].rstrip('/')} (asked for)" in text
    assert "on the rabbitmq bus" in text
    # No bus of its own this time: the broker's queues instead.
    assert "cleaned up: all 6 things it started" in text
    prefix = re.search(r"prefix (virtactor-demo-[0-9a-f]{8}) at the broker", text)
    assert prefix, text
    names = Names(prefix.group(1))
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        for queue in (names.host_queue("demo-a"), names.host_queue("conductor")):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(queue, passive=True)
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.get_exchange(names.commands, ensure=True)


def test_auto_takes_rabbitmq_when_it_answers_and_says_why() -> None:
    assert choose_bus("auto", True, URL).reason == "RabbitMQ at 127.0.0.1:5672 (it answers)"
    fallback = choose_bus("auto", False, URL)
    assert fallback.kind == "embedded"
    assert fallback.reason == "embedded in-process bus (no RabbitMQ answers at 127.0.0.1:5672)"
    assert choose_bus("embedded", True, URL).kind == "embedded"
    with pytest.raises(DemoUnavailable, match=r"^RabbitMQ does not answer at 127.0.0.1:5672$"):
        choose_bus("rabbitmq", False, URL)


def test_auto_falls_back_to_the_test_driver_naming_what_real_hosts_lack() -> None:
    assert choose_hosts("auto", []).kind == "real"
    missing = [
        "qemu-system-x86_64 not installed (deploy/local/system-packages.sh test installs it)"
    ]
    fallback = choose_hosts("auto", missing)
    assert fallback.kind == "test"
    assert fallback.reason == f"libvirt test driver (no real hosts: {missing[0]})"
    assert choose_hosts("test", []).kind == "test"
    with pytest.raises(DemoUnavailable, match=r"^real hosts cannot run here: qemu-system"):
        choose_hosts("real", missing)


def test_a_bus_asked_for_that_does_not_answer_exits_1_with_the_reason() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "demo",
            "--bus",
            "rabbitmq",
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == "virtactor demo: RabbitMQ does not answer at 127.0.0.1:1\n"


class CancelsOnLine(io.StringIO):
    """The demo's output, cancelling `task` as soon as a line starting with `mark` is written:
    a Ctrl-C at that point of the story."""

    def __init__(self, mark: str) -> None:
        super().__init__()
        self.mark = mark
        self.task: asyncio.Task[int] | None = None

    def write(self, text: str) -> int:
        if self.task is not None and any(line.startswith(self.mark) for line in text.splitlines()):
            self.task.cancel()
            self.task = None
        return super().write(text)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.usefixtures("session_loop_not_blocked")
async def test_cancelled_after_the_spawn_the_demo_removes_the_guest_and_all_it_started() -> None:
    out = CancelsOnLine("✓ spawned demo-guest ")
    out.task = asyncio.create_task(demo.run(out, bus="embedded", hosts="test"))
    task = out.task
    with pytest.raises(asyncio.CancelledError):
        await task
    text = out.getvalue()
    assert "✓ attached" not in text and "not on the test driver" not in text
    assert "interrupted: cleaning up" in text
    # Removed directly, or gone with the last connection to test:///default.
    guest = re.search(
        r"│ guest +│ demo-guest [0-9a-f-]{36} +│ "
        r"(removed from test-default|on no host any more) +│",
        text,
    )
    assert guest, text
    assert "cleaned up: all 6 things it started" in text
    assert not demo_files(text).exists()
    assert domains_on_test_default() == ["test"]
