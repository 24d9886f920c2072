"""The local multi-host environment: deploy/local/libvirt-host.sh, and migration between hosts."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.system.conftest import (
    HOST_SCRIPT,
    DomainJanitor,
    LocalHost,
    live_migrate,
    wait_for_console,
)
from tests.system.domains import firmware_domain_xml, guest_domain_xml
from tests.system.guest_image import HEARTBEAT_RE, GuestImage, GuestMarker

BOOT_TIMEOUT = 90.0
EVENT_TIMEOUT = 30.0
# A host no other test or demo uses, for the stop test's private state directory.
SCRATCH_HOST = "host99"


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOST_SCRIPT), *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )


def default_env() -> dict[str, str]:
    """The caller's environment without the script's overrides, so the defaults apply."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_HOSTS_")}


def domain_on(conn: libvirt.virConnect, domain_uuid: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(domain_uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


@pytest.fixture
def connections(test_hosts: tuple[LocalHost, ...]) -> Iterator[list[libvirt.virConnect]]:
    conns = [libvirt.open(host.uri) for host in test_hosts]
    try:
        yield conns
    finally:
        for conn in conns:
            conn.close()


# --- the script's contract -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("host1", "qemu+tcp://127.0.0.1:16601/system"),
        ("host42", "qemu+tcp://127.0.0.1:16642/system"),
    ],
)
def test_host_uri_is_loopback_tcp_on_port_16600_plus_the_host_number(name: str, uri: str) -> None:
    done = script("uri", name, env=default_env())
    assert (done.returncode, done.stdout) == (0, f"{uri}\n")


@pytest.mark.parametrize("name", ["host0", "host100", "node1", "host1x"])
def test_host_script_rejects_a_name_outside_host1_to_host99(name: str) -> None:
    done = script("start", name)
    assert done.returncode == 2
    assert done.stderr == (
        f"libvirt-host: invalid host name '{name}': expected host<N> with N in 1..99\n"
    )


def test_each_test_host_is_its_own_libvirtd_with_its_own_host_uuid(
    test_hosts: tuple[LocalHost, ...], connections: list[libvirt.virConnect]
) -> None:
    host_uuids = {conn.getCapabilities().split("<uuid>")[1].split("<")[0] for conn in connections}
    assert len(host_uuids) == len(test_hosts) == 2
    assert [conn.getURI() for conn in connections] == [host.uri for host in test_hosts]


def test_stopping_a_host_destroys_its_domains_and_leaves_no_process_or_mount(
    tmp_path: Path,
) -> None:
    env = {**default_env(), "VIRTACTOR_HOSTS_DIR": str(tmp_path)}
    state = tmp_path / SCRATCH_HOST
    started = script("start", SCRATCH_HOST, env=env)
    assert started.returncode == 0, started.stderr
    try:
        assert "already running" in script("start", SCRATCH_HOST, env=env).stdout
        uri = script("uri", SCRATCH_HOST, env=env).stdout.strip()
        conn = libvirt.open(uri)
        try:
            name = f"virtactor-stop-{uuid.uuid4().hex[:8]}"
            dom = conn.defineXML(firmware_domain_xml(name, str(uuid.uuid4())))
            dom.create()
        finally:
            conn.close()
        libvirtd_pid = int((state / "libvirtd.pid").read_text())
        qemu_pid = int((state / "run/libvirt/qemu" / f"{name}.pid").read_text())
        assert _running(libvirtd_pid) and _running(qemu_pid)
    finally:
        stopped = script("stop", SCRATCH_HOST, env=env)
    assert (stopped.returncode, stopped.stdout) == (0, f"libvirt-host: {SCRATCH_HOST} stopped\n")
    assert not _running(libvirtd_pid)
    assert not _running(qemu_pid)
    assert _processes_mounting(state) == []
    status = script("status", SCRATCH_HOST, env=env)
    assert status.returncode == 3
    assert status.stdout.startswith(f"{SCRATCH_HOST} stopped ")


def _running(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def _processes_mounting(state: Path) -> list[str]:
    holders = []
    for mountinfo in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            if f"{state}/" in mountinfo.read_text():
                holders.append(mountinfo.parent.name)
        except OSError:  # gone, or a zombie whose mount table is already torn down
            continue
    return holders


# --- live migration ------------------------------------------------------------------------


def test_firmware_domain_live_migrates_to_host2_and_back(
    test_hosts: tuple[LocalHost, ...],
    connections: list[libvirt.virConnect],
    domain_janitor: DomainJanitor,
) -> None:
    host1, host2 = test_hosts
    conn1, conn2 = connections
    domain_uuid = domain_janitor.track(str(uuid.uuid4()))
    dom = conn1.defineXML(firmware_domain_xml(f"virtactor-mig-{domain_uuid[:8]}", domain_uuid))
    dom.create()

    arrived = migrated(dom, conn1, host2, conn2)
    migrated(arrived, conn2, host1, conn1)


def migrated(
    dom: libvirt.virDomain,
    source: libvirt.virConnect,
    target: LocalHost,
    target_conn: libvirt.virConnect,
) -> libvirt.virDomain:
    """`dom` live-migrated from `source` to `target`: running and persistent there, gone
    from `source`."""
    domain_uuid = dom.UUIDString()
    live_migrate(dom, target)
    arrived = domain_on(target_conn, domain_uuid)
    assert arrived is not None
    assert arrived.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED]
    assert arrived.isPersistent()
    assert domain_on(source, domain_uuid) is None
    return arrived


def test_running_guest_live_migrates_and_its_heartbeat_keeps_counting(
    test_hosts: tuple[LocalHost, ...],
    connections: list[libvirt.virConnect],
    domain_janitor: DomainJanitor,
    guest_image: GuestImage,
    tmp_path: Path,
) -> None:
    _host1, host2 = test_hosts
    conn1, conn2 = connections
    console = tmp_path / "console.log"
    domain_uuid = domain_janitor.track(str(uuid.uuid4()))
    xml = guest_domain_xml(f"virtactor-mig-{domain_uuid[:8]}", domain_uuid, guest_image, console)
    dom = conn1.defineXML(xml)
    dom.create()
    booted = wait_for_console(console, GuestMarker.BOOTED, BOOT_TIMEOUT)
    before = wait_for_console(console, HEARTBEAT_RE, EVENT_TIMEOUT, start=booted.end)

    live_migrate(dom, host2)
    migrated_at = console.stat().st_size
    arrived = domain_on(conn2, domain_uuid)
    assert arrived is not None
    assert arrived.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert domain_on(conn1, domain_uuid) is None
    # Only the destination's QEMU runs now: a later, higher beat and no second boot prove
    # the same guest kept running there.
    after = wait_for_console(console, HEARTBEAT_RE, EVENT_TIMEOUT, start=migrated_at)
    assert _beat(after.text) > _beat(before.text)
    lines = console.read_text(errors="replace").splitlines()
    assert [line.rstrip("\r") for line in lines].count(GuestMarker.BOOTED) == 1


def _beat(line: str) -> int:
    match = HEARTBEAT_RE.fullmatch(line)
    assert match is not None, line
    return int(match.group(1))
