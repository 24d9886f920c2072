"""The demo's hypervisor hosts: two private local libvirtd hosts started with
deploy/local/libvirt-host.sh (real QEMU), or libvirt's test driver (nothing to start).

A local host the demo found running is used and left running; one it started is stopped at
the end, and its state directory removed when the demo created it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from agent.demo.choice import DemoError
from agent.demo.ledger import Entry, Ledger

HOST_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "libvirt-host.sh"
# Names no test uses (tests take host1, host2, host7, host8, host99), so a demo and a test run
# side by side never share a libvirtd.
REAL_HOST_NAMES = ("host11", "host12")
SCRIPT_TIMEOUT = 120.0
TEST_URI = "test:///default"
# A second test-driver hypervisor of its own: a node with no guests (each connection to a
# file URI is a private hypervisor, so the two agents never see each other's domains).
TEST_NODE_XML = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>
  <active>4</active><mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>8388608</memory>
</node>
"""


class HostScriptError(DemoError):
    """libvirt-host.sh failed; the message has its command and error output."""


@dataclass(frozen=True, slots=True)
class DemoHost:
    """A hypervisor one agent serves: `name` is libvirt-host.sh's (or the test driver's)."""

    name: str
    uri: str


async def host_script(*args: str, check: bool = True) -> tuple[int, str]:
    """Run libvirt-host.sh; returns (exit status, stdout). In a session of its own, so a
    Ctrl-C at the terminal reaches the demo (which then cleans up), not a half-done start."""
    proc = await asyncio.create_subprocess_exec(
        str(HOST_SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(SCRIPT_TIMEOUT):
            out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if check and proc.returncode != 0:
        raise HostScriptError(
            f"libvirt-host.sh {' '.join(args)} exited {proc.returncode}: {err.decode().strip()}"
        )
    return proc.returncode or 0, out.decode().strip()


class RealHosts:
    """The two local hosts; `start` records in the ledger each host it starts, before its
    start begins, so a failed or interrupted start is still stopped by `stop`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        # (name, its ledger entry, whether the demo created its state directory)
        self._started: list[tuple[str, Entry, bool]] = []

    async def start(self) -> list[DemoHost]:
        """Both hosts running, started side by side (a first start probes QEMU for seconds).
        Raises HostScriptError."""
        for name in REAL_HOST_NAMES:
            status, _ = await host_script("status", name, check=False)
            if status == 0:
                continue  # someone else's: used, and left running
            _, state = await host_script("dir", name)
            fresh = not await asyncio.to_thread(Path(state).exists)
            entry = self.ledger.started("libvirt host", f"{name}: private libvirtd ({state})")
            self._started.append((name, entry, fresh))
        results = await asyncio.gather(
            *(host_script("start", name) for name, _, _ in self._started), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [DemoHost(name, (await host_script("uri", name))[1]) for name in REAL_HOST_NAMES]

    async def stop(self) -> None:
        """Stop each host `start` started (its domains destroyed first); remove the state
        directories it created."""
        while self._started:
            name, entry, fresh = self._started.pop()
            await host_script("clean" if fresh else "stop", name)
            entry.cleanup = "stopped, state removed" if fresh else "stopped"


def test_driver_hosts(scratch: Path) -> list[DemoHost]:
    """demo-a on `test:///default` (one guest, "test", already running), demo-b on a test
    node of its own under `scratch` (blocking: writes a file)."""
    node = scratch / "demo-b-node.xml"
    node.write_text(TEST_NODE_XML)
    return [DemoHost("test-default", TEST_URI), DemoHost("test-node", f"test://{node}")]
