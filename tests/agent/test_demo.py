"""`virtactor demo` runs the whole agent on the embedded default and drives it by messages."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from agent import demo


# libvirt binds its events to one asyncio loop per process: the session loop.
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.usefixtures("session_loop_not_blocked")
async def test_demo_adopts_the_test_drivers_guest_and_reports_it_over_the_bus() -> None:
    out = io.StringIO()
    assert await demo.run("test:///default", out=out, host="demo-test") == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "virtactor demo: agent 'demo-test' on test:///default, embedded bus"
    assert "adopted 1 running guest(s) without touching them" in lines[1]
    assert lines[2].startswith("  node ") and "TEST" in lines[2] and "1 running" in lines[2]
    assert lines[3] == "  guests: test"
    assert lines[4].endswith(": running, 2 vCPU, 2048 MiB")
    assert lines[5] == "  event host.demo-test.heartbeat: Service from demo-test"
    assert lines[6:12] == [
        "  spawn    -> vm_state active, power_state running",
        "  pause    -> vm_state paused, power_state paused",
        "  unpause  -> vm_state active, power_state running",
        "  suspend  -> vm_state suspended, power_state shutdown",
        "  resume   -> vm_state active, power_state running",
        "  destroy  -> gone",
    ]
    assert lines[12] == "  12 state events for the guest, in order:"
    assert lines[13] == "    vm_state=building, task_state=spawning, power_state=pending"
    assert lines[-1] == "    vm_state=deleted, task_state=None, power_state=pending"


def test_the_virtactor_command_runs_the_demo_in_its_own_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "agent 'demo-host' on test:///default, embedded bus" in done.stdout
