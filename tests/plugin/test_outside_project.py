"""The plugin as an outside project gets it: pytest run in a subprocess, in a directory of its
own with its own configuration and no conftest, finds the `virtactor_` fixtures through the
`pytest11` entry point of the installed package; the examples of the README and of
docs/testing-with-virtactor.md run there as a user copies them.

The opt-in run points the same fixtures at the real RabbitMQ and libvirtd (QEMU) of the test
tiers, and runs this directory's example test there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity

from agent.transport import Names

EXAMPLE = Path(__file__).with_name("test_example.py")
ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "testing-with-virtactor.md"
README = ROOT / "README.md"
RUN_TIMEOUT = 240

USER_TESTS = """
import asyncio

import pytest

SEEN = []
{marks}

async def test_a_guest_is_spawned_read_and_destroyed(
    virtactor_deployment, virtactor_client, virtactor_host, virtactor_image, virtactor_new_instance
):
    SEEN.append(virtactor_deployment)
    guest = virtactor_new_instance()
    async with await virtactor_client.subscribe(f"instance.{{guest.uuid}}.lifecycle") as events:
        await virtactor_client.spawn(virtactor_host, guest, virtactor_image)
        assert (await virtactor_client.get_info(virtactor_host, guest)).state == "running"
        started = await asyncio.wait_for(anext(aiter(events)), 30)
        assert started.payload.transition == "started"
        await virtactor_client.destroy(virtactor_host, guest)
    assert await virtactor_client.instance_exists(virtactor_host, guest.uuid) is False


async def test_the_next_test_is_served_by_the_same_agent(
    virtactor_deployment, virtactor_client, virtactor_host
):
    SEEN.append(virtactor_deployment)
    assert SEEN[0] is SEEN[1]
    assert await virtactor_client.get_available_nodes(virtactor_host)
"""

# Collected after test_guests.py: the deployment it had, or another, by the scope.
NEXT_MODULE = """
import pytest

import test_guests
{marks}

async def test_the_next_module_is_served_by_the_scope_s_deployment(virtactor_deployment):
    assert virtactor_deployment {relation} test_guests.SEEN[0]
"""

BROKER_PROBE = """
from pathlib import Path

import aio_pika


async def test_the_agent_consumes_its_queue_on_the_broker(virtactor_deployment, virtactor_options):
    prefix = virtactor_deployment.prefix
    Path("prefix").write_text(prefix)
    connection = await aio_pika.connect(virtactor_options.deployment.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{prefix}.compute.virtactor-test", passive=True)
        assert queue.declaration_result.consumer_count == 1
"""


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in `project`, as its own process, with none of this run's pytest settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def user_project(directory: Path, ini: str, tests: dict[str, str]) -> Path:
    (directory / "pyproject.toml").write_text(f"[tool.pytest.ini_options]\n{ini}\n")
    for name, text in tests.items():
        (directory / name).write_text(text)
    return directory


def first_python_block(text: str, after: str = "") -> str:
    """The first ```python block of `text` after the line `after`, as a user copies it."""
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start : text.index("```", start)]


def outcome(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize(
    ("ini", "marks", "scope", "guide", "passed"),
    [
        ('asyncio_mode = "auto"', "", "session", True, 5),
        (
            'asyncio_mode = "strict"\nvirtactor_scope = "module"',
            "pytestmark = pytest.mark.asyncio",
            "module",
            False,
            3,
        ),
    ],
    ids=["auto-mode-and-the-docs", "strict-mode"],
)
def test_an_outside_project_gets_the_fixtures_through_the_entry_point(
    tmp_path: Path, ini: str, marks: str, scope: str, guide: bool, passed: int
) -> None:
    relation = "is" if scope == "session" else "is not"
    tests = {
        "test_guests.py": USER_TESTS.format(marks=marks),
        "test_next_module.py": NEXT_MODULE.format(marks=marks, relation=relation),
    }
    if guide:
        tests["test_guide.py"] = first_python_block(GUIDE.read_text())
        quick_start = "## Quick start for integrators' tests"
        tests["test_readme.py"] = first_python_block(README.read_text(), quick_start)
    project = user_project(tmp_path, ini, tests)

    done = run_pytest(project)

    assert done.returncode == 0, outcome(done)
    assert f"{passed} passed" in done.stdout, outcome(done)
    header = f"virtactor: an agent on test:///default and the in-process bus, one per {scope}"
    assert header in done.stdout, outcome(done)


def test_without_the_plugin_the_fixtures_are_unknown(tmp_path: Path) -> None:
    project = user_project(
        tmp_path, 'asyncio_mode = "auto"', {"test_guests.py": USER_TESTS.format(marks="")}
    )

    done = run_pytest(project, "-p", "no:virtactor")

    assert done.returncode == 1, outcome(done)
    assert "fixture 'virtactor_deployment' not found" in done.stdout, outcome(done)


def test_a_test_on_another_event_loop_is_refused_naming_the_fix(tmp_path: Path) -> None:
    marks = 'pytestmark = pytest.mark.asyncio(loop_scope="function")'
    project = user_project(
        tmp_path, 'asyncio_mode = "auto"', {"test_guests.py": USER_TESTS.format(marks=marks)}
    )

    done = run_pytest(project)

    assert done.returncode == pytest.ExitCode.USAGE_ERROR, outcome(done)
    assert (
        "test_guests.py::test_a_guest_is_spawned_read_and_destroyed runs on the function event "
        "loop, but the virtactor_ fixtures it uses live on the session loop"
    ) in done.stderr, outcome(done)
    assert "mark it asyncio(loop_scope='session'), or give no loop_scope" in done.stderr


def test_an_unknown_deployment_scope_is_a_usage_error(tmp_path: Path) -> None:
    project = user_project(tmp_path, 'asyncio_mode = "auto"', {})

    done = run_pytest(project, "--virtactor-scope", "forever")

    assert done.returncode == pytest.ExitCode.USAGE_ERROR, outcome(done)
    assert (
        "virtactor_scope must be one of session, package, module, got 'forever'" in done.stderr
    ), outcome(done)


@pytest.fixture
def qemu_files() -> Iterator[Path]:
    """A directory QEMU's user can traverse (pytest's temporary ones are private)."""
    made = Path(tempfile.mkdtemp(prefix="virtactor-plugin-", dir="/var/tmp"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


async def queue_exists(url: str, queue: str) -> bool:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return False
        return True


@pytest.mark.rabbitmq
@pytest.mark.libvirt_qemu
async def test_opted_in_the_same_fixtures_run_on_real_rabbitmq_and_libvirt(
    tmp_path: Path, rabbitmq_url: str, qemu_uri: str, qemu_files: Path
) -> None:
    project = user_project(
        tmp_path,
        'asyncio_mode = "auto"',
        {"test_example.py": EXAMPLE.read_text(), "test_broker.py": BROKER_PROBE},
    )

    done = run_pytest(
        project,
        # One argument each: pytest takes a separate value for a path to collect.
        f"--virtactor-rabbitmq={rabbitmq_url}",
        f"--virtactor-libvirt={qemu_uri}",
        f"--virtactor-files={qemu_files}",
    )

    assert done.returncode == 0, outcome(done)
    assert "4 passed" in done.stdout, outcome(done)
    assert f"virtactor: an agent on {qemu_uri} and RabbitMQ, one per session" in done.stdout
    prefix = (project / "prefix").read_text()
    assert prefix.startswith("virtactor-test-")
    # The deployment deleted what it declared on the broker, and its files.
    assert not await queue_exists(rabbitmq_url, Names(prefix).host_queue("virtactor-test"))
    assert await asyncio.to_thread(os.listdir, qemu_files) == []
