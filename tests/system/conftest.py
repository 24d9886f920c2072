"""Fixtures of the system tier: local hypervisor hosts, the real test guest, and console waits.

- `test_hosts`: host1 and host2, each a private libvirtd started by deploy/local/libvirt-host.sh
  and reached at qemu+tcp://127.0.0.1:<port>/system. Several pytest runs may share them: each
  run holds a lease (a file named by its pid) and the last run to leave stops the hosts it or
  another run started. A host an operator started by hand is left running.
- `guest_image`: the busybox guest of `tests.system.guest_image`, built once and cached.
- `domain_janitor`: destroys and undefines, on every test host, the domains a test tracked.
- `wait_for_console` / `wait_for_console_async`: wait for a line the guest prints.

Under CI=true a host or guest that cannot be made FAILS the test naming the component, as
`tests/conftest.py`'s `missing_component` does; elsewhere it skips.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors import BlockingExecutor
from schemas.errors import VirtactorError
from tests.agent.virt.helpers import remove_domain_from
from tests.conftest import ON_SESSION_LOOP, missing_component
from tests.system.guest_image import GuestImage, GuestImageError, build_guest_image

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST_SCRIPT = REPO_ROOT / "deploy" / "local" / "libvirt-host.sh"
GUEST_CACHE_DIR = Path(os.environ.get("VIRTACTOR_GUEST_CACHE", "/var/tmp/virtactor-guest-cache"))
# pytest's tmp_path is private to root (0700); QEMU runs as an unprivileged user and opens disk
# images by path, so files a guest uses live under a directory it can traverse.
QEMU_FILES_DIR = Path(os.environ.get("VIRTACTOR_QEMU_FILES", "/var/tmp/virtactor-test-files"))
TEST_HOST_NAMES = ("host1", "host2")
# Marks a host started for tests, so the last lease holder knows it may stop it.
STARTED_FOR_TESTS = "started-for-tests"
CONSOLE_POLL_SECONDS = 0.2
# The marks of a test that needs a real libvirtd with QEMU (and opens it: ON_SESSION_LOOP).
ON_REAL_QEMU = [pytest.mark.libvirt_qemu, *ON_SESSION_LOOP]

Marker = str | re.Pattern[str]


@dataclass(frozen=True, slots=True)
class LocalHost:
    """One local hypervisor host: its name for libvirt-host.sh and its libvirt URI."""

    name: str
    uri: str


@dataclass(frozen=True, slots=True)
class ConsoleLine:
    """A console line that matched; `end` is the byte offset just past it.

    Pass `end` as `start` to a later wait to see only what the guest printed afterwards.
    """

    text: str
    end: int


class ConsoleMarkerTimeout(VirtactorError):
    """The guest did not print the awaited console line before the deadline."""

    msg_fmt = "no console line matching {marker!r} in {path} within {timeout}s; last lines: {tail}"


class HostScriptError(VirtactorError):
    """deploy/local/libvirt-host.sh failed."""

    msg_fmt = "libvirt-host.sh {command} exited {returncode}: {stderr}"


def run_host_script(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run deploy/local/libvirt-host.sh with `args`; raise HostScriptError on failure if `check`."""
    done = subprocess.run(
        [str(HOST_SCRIPT), *args], capture_output=True, text=True, timeout=180, check=False
    )
    if check and done.returncode != 0:
        raise HostScriptError(
            command=" ".join(args), returncode=done.returncode, stderr=done.stderr.strip()
        )
    return done


# --- console -------------------------------------------------------------------------------


def _matches(line: str, marker: Marker) -> bool:
    if isinstance(marker, str):
        return line == marker
    return marker.fullmatch(line) is not None


def scan_console(path: Path, marker: Marker, start: int = 0) -> tuple[ConsoleLine | None, int]:
    """Look once through the complete lines of `path` from byte `start` for `marker`.

    A str marker must equal the whole line; a compiled pattern must fullmatch it (line endings
    stripped). Returns the first match, or None with the offset to resume scanning from. A
    file shorter than `start` was truncated since: it is read from its beginning.
    """
    try:
        with path.open("rb") as console:
            if os.fstat(console.fileno()).st_size < start:
                start = 0  # the file was started anew (a new QEMU truncated it): read it all
            console.seek(start)
            data = console.read()
    except FileNotFoundError:
        return None, start
    offset = start
    # The last piece has no newline yet: the guest is still printing it.
    for raw in data.split(b"\n")[:-1]:
        offset += len(raw) + 1
        line = raw.decode(errors="replace").rstrip("\r")
        if _matches(line, marker):
            return ConsoleLine(text=line, end=offset), offset
    return None, offset


def _timeout_error(path: Path, marker: Marker, timeout: float) -> ConsoleMarkerTimeout:
    try:
        tail = path.read_bytes().decode(errors="replace").splitlines()[-5:]
    except FileNotFoundError:
        tail = ["<no console file>"]
    shown = str(marker) if isinstance(marker, str) else marker.pattern
    return ConsoleMarkerTimeout(path=path, marker=shown, timeout=timeout, tail=tail)


def wait_for_console(path: Path, marker: Marker, timeout: float, *, start: int = 0) -> ConsoleLine:
    """Block until the guest printed a line matching `marker` after byte `start` of `path`.

    Raises ConsoleMarkerTimeout, with the console's last lines, after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    offset = start
    while True:
        found, offset = scan_console(path, marker, offset)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise _timeout_error(path, marker, timeout)
        time.sleep(CONSOLE_POLL_SECONDS)


async def wait_for_console_async(
    path: Path, marker: Marker, timeout: float, *, start: int = 0
) -> ConsoleLine:
    """`wait_for_console` for async tests: file reads run in a thread, never on the loop.

    Cancellation propagates at the next poll; the timeout raises ConsoleMarkerTimeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    offset = start
    while True:
        found, offset = await asyncio.to_thread(scan_console, path, marker, offset)
        if found is not None:
            return found
        if loop.time() >= deadline:
            raise await asyncio.to_thread(_timeout_error, path, marker, timeout)
        await asyncio.sleep(CONSOLE_POLL_SECONDS)


def wait_for_domain_state(dom: libvirt.virDomain, state: int, timeout: float) -> tuple[int, int]:
    """Poll `dom.state()` until it is `state` or `timeout` passed; return (state, reason)."""
    deadline = time.monotonic() + timeout
    current = dom.state()
    while current[0] != state and time.monotonic() < deadline:
        time.sleep(CONSOLE_POLL_SECONDS)
        current = dom.state()
    return (current[0], current[1])


# --- migration ---------------------------------------------------------------------------

LIVE_MIGRATION_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)
# libvirt refuses loopback in qemu.conf's migration_host/migration_address, so the data
# connection is pinned to loopback per call: the target QEMU listens on 127.0.0.1 only.
LOOPBACK_MIGRATION_PARAMS = {
    libvirt.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1",
    libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: "127.0.0.1",
}


def live_migrate(dom: libvirt.virDomain, target: LocalHost) -> None:
    """Live-migrate `dom` to `target` over loopback; blocks until libvirt reports the outcome."""
    dom.migrateToURI3(target.uri, LOOPBACK_MIGRATION_PARAMS, LIVE_MIGRATION_FLAGS)


# --- hosts ---------------------------------------------------------------------------------


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_leases(leases: Path) -> list[Path]:
    alive = []
    for lease in leases.glob("*"):
        if lease.name.isdigit() and _pid_alive(int(lease.name)):
            alive.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return alive


@dataclass(slots=True)
class HostLeases:
    """This process's leases on local hosts; `release_all` stops what nobody else still uses."""

    held: list[str] = field(default_factory=list)

    def acquire(self, names: tuple[str, ...]) -> list[LocalHost]:
        """Lease `names`, starting (in parallel) those not running. Raises HostScriptError."""
        to_start = []
        for name in names:
            state = Path(run_host_script("dir", name).stdout.strip())
            with _locked(state / "leases.lock"):
                (state / "leases").mkdir(parents=True, exist_ok=True)
                (state / "leases" / str(os.getpid())).touch()
                self.held.append(name)
                if run_host_script("status", name, check=False).returncode != 0:
                    (state / STARTED_FOR_TESTS).touch()
                    to_start.append(name)
        # Each first start probes QEMU for several seconds: start the hosts side by side.
        starts = {
            name: subprocess.Popen(
                [str(HOST_SCRIPT), "start", name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in to_start
        }
        failures = []
        for name, proc in starts.items():
            _out, err = proc.communicate(timeout=180)
            if proc.returncode != 0:
                failures.append(f"{name}: {err.strip()}")
        if failures:
            raise HostScriptError(command="start", returncode=1, stderr="; ".join(failures))
        return [LocalHost(name, run_host_script("uri", name).stdout.strip()) for name in names]

    def release_all(self) -> None:
        """Drop this process's leases; stop each host no live lease needs and tests started."""
        while self.held:
            name = self.held.pop()
            state = Path(run_host_script("dir", name).stdout.strip())
            with _locked(state / "leases.lock"):
                (state / "leases" / str(os.getpid())).unlink(missing_ok=True)
                if not _live_leases(state / "leases") and (state / STARTED_FOR_TESTS).exists():
                    run_host_script("stop", name)
                    (state / STARTED_FOR_TESTS).unlink()


@pytest.fixture(scope="session")
def test_hosts() -> Iterator[tuple[LocalHost, ...]]:
    """host1 and host2 (in that order), running for the whole session."""
    leases = HostLeases()
    try:
        hosts = leases.acquire(TEST_HOST_NAMES)
    except (HostScriptError, OSError, subprocess.TimeoutExpired) as exc:
        leases.release_all()
        missing_component(
            f"local test hosts {', '.join(TEST_HOST_NAMES)} ({exc})",
            f"{HOST_SCRIPT.relative_to(REPO_ROOT)} start host1 (as root, with libvirtd + QEMU)",
        )
    try:
        yield tuple(hosts)
    finally:
        leases.release_all()


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The real test guest, built from this machine's kernel and busybox-static, cached."""
    try:
        return build_guest_image(GUEST_CACHE_DIR)
    except GuestImageError as exc:
        missing_component(
            f"the test guest image ({exc})", "deploy/local/system-packages.sh test (as root)"
        )


@contextmanager
def qemu_files_dir() -> Iterator[Path]:
    """A fresh directory QEMU can reach (for disk images), removed on exit."""
    QEMU_FILES_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=QEMU_FILES_DIR))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def qemu_tmp_path() -> Iterator[Path]:
    """A fresh directory QEMU can reach (for disk images), removed after the test."""
    with qemu_files_dir() as path:
        yield path


@dataclass(slots=True)
class DomainJanitor:
    """Removes tracked domains from every test host, wherever a migration left them."""

    hosts: tuple[LocalHost, ...]
    uuids: list[str] = field(default_factory=list)

    def track(self, uuid: str) -> str:
        self.uuids.append(uuid)
        return uuid

    def clean(self) -> None:
        for host in self.hosts:
            conn = libvirt.open(host.uri)
            try:
                for uuid in self.uuids:
                    remove_domain_from(conn, uuid)
            finally:
                conn.close()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def executor() -> AsyncIterator[BlockingExecutor]:
    """The pool for the blocking calls of a module's agents (`tests.agent.virt.helpers`)."""
    pool = BlockingExecutor(8, "test-system")
    yield pool
    await pool.aclose()


@pytest.fixture
def domain_janitor(test_hosts: tuple[LocalHost, ...]) -> Iterator[DomainJanitor]:
    """Track a domain's uuid with `.track(uuid)`; it is destroyed and undefined after the test."""
    janitor = DomainJanitor(hosts=test_hosts)
    try:
        yield janitor
    finally:
        janitor.clean()
