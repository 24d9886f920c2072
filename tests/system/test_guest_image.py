"""The test guest: how it is built, and that it boots, powers off and sees hotplugged devices."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import libvirt
import pytest

from tests.conftest import missing_component
from tests.system.conftest import (
    ConsoleLine,
    ConsoleMarkerTimeout,
    DomainJanitor,
    LocalHost,
    wait_for_console,
    wait_for_console_async,
    wait_for_domain_state,
)
from tests.system.domains import disk_xml, guest_domain_xml
from tests.system.guest_image import (
    HEARTBEAT_RE,
    GuestImage,
    GuestImageError,
    GuestMarker,
    build_guest_image,
    dirty_cmdline_arg,
    disks_line,
    module_load_order,
    nics_line,
)

BOOT_TIMEOUT = 90.0
EVENT_TIMEOUT = 30.0


def write_modules_dir(root: Path, dep: str, builtin: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "modules.dep").write_text(dep)
    (root / "modules.builtin").write_text(builtin)
    return root


# --- building ------------------------------------------------------------------------------


def test_module_load_order_puts_every_dependency_before_its_user(tmp_path: Path) -> None:
    modules = write_modules_dir(
        tmp_path,
        "kernel/a.ko: kernel/b.ko kernel/c.ko\n"
        "kernel/b.ko: kernel/c.ko\n"
        "kernel/c.ko:\n"
        "kernel/net/d-e.ko: kernel/c.ko\n",
    )
    assert module_load_order(modules, ["a", "d_e"]) == [
        "kernel/c.ko",
        "kernel/b.ko",
        "kernel/a.ko",
        "kernel/net/d-e.ko",
    ]


def test_module_load_order_skips_modules_built_into_the_kernel(tmp_path: Path) -> None:
    modules = write_modules_dir(
        tmp_path, "kernel/a.ko: kernel/c.ko\nkernel/c.ko:\n", builtin="kernel/drivers/x.ko\n"
    )
    assert module_load_order(modules, ["x", "a"]) == ["kernel/c.ko", "kernel/a.ko"]


def test_module_load_order_names_a_module_the_kernel_lacks(tmp_path: Path) -> None:
    modules = write_modules_dir(tmp_path, "kernel/a.ko:\n")
    with pytest.raises(GuestImageError) as caught:
        module_load_order(modules, ["virtio_blk"])
    assert str(caught.value) == (
        "cannot build the test guest image: kernel module 'virtio_blk' is neither built in "
        f"nor in {modules}/modules.dep"
    )


def test_module_load_order_rejects_a_dependency_cycle(tmp_path: Path) -> None:
    modules = write_modules_dir(tmp_path, "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n")
    with pytest.raises(GuestImageError) as caught:
        module_load_order(modules, ["a"])
    assert str(caught.value) == (
        "cannot build the test guest image: modules.dep has a dependency cycle through kernel/a.ko"
    )


def test_dirty_cmdline_arg_rejects_a_non_positive_size() -> None:
    assert dirty_cmdline_arg(64) == "virtactor.dirty=64"
    with pytest.raises(GuestImageError) as caught:
        dirty_cmdline_arg(0)
    assert str(caught.value) == (
        "cannot build the test guest image: dirty memory must be a positive MiB count, got 0"
    )


def test_second_build_reuses_the_cached_image(guest_image: GuestImage, tmp_path: Path) -> None:
    first = build_guest_image(tmp_path, guest_image.kernel_version)
    inode = first.initrd.stat().st_ino
    second = build_guest_image(tmp_path, guest_image.kernel_version)
    assert second == first
    assert second.initrd.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == [first.kernel.parent.name]


def test_initramfs_holds_init_busybox_a_console_and_the_modules_in_load_order(
    guest_image: GuestImage,
) -> None:
    if shutil.which("cpio") is None:
        missing_component("cpio(1), to read the archive independently", "apt-get install cpio")
    archive = gzip.decompress(guest_image.initrd.read_bytes())
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    entries = {line.split()[-1]: line for line in listing.splitlines() if "->" not in line}
    assert entries["init"].startswith("-rwxr-xr-x")
    assert entries["bin/busybox"].startswith("-rwxr-xr-x")
    assert entries["dev/console"].startswith("crw-------")
    assert "5,   1" in entries["dev/console"]
    assert "bin/sh -> busybox" in listing
    extracted = subprocess.run(
        ["cpio", "-i", "--quiet", "--to-stdout", "etc/virtactor/modules"],
        input=archive,
        capture_output=True,
        check=True,
    ).stdout.decode()
    modules_dir = Path("/lib/modules") / guest_image.kernel_version
    wanted = module_load_order(
        modules_dir, ["virtio_pci", "virtio_blk", "virtio_net", "button", "evdev"]
    )
    loaded = extracted.split()
    assert [m for m in loaded if m in wanted] == wanted
    assert all(f"lib/modules/{m}" in entries for m in loaded)


# --- reading the console ------------------------------------------------------------------


def test_wait_for_console_ignores_a_line_the_guest_is_still_printing(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_bytes(b"VIRTACTOR-GUEST: disks vda\r\nVIRTACTOR-GUEST: booted")
    with pytest.raises(ConsoleMarkerTimeout) as caught:
        wait_for_console(console, GuestMarker.BOOTED, 0.3)
    assert str(caught.value) == (
        f"no console line matching 'VIRTACTOR-GUEST: booted' in {console} within 0.3s; "
        "last lines: ['VIRTACTOR-GUEST: disks vda', 'VIRTACTOR-GUEST: booted']"
    )


def test_wait_for_console_matches_whole_lines_from_the_given_offset(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_bytes(b"VIRTACTOR-GUEST: disks vda vdb\r\nVIRTACTOR-GUEST: disks vda\r\n")
    first = wait_for_console(console, disks_line(["vda"]), 1.0)
    assert first == ConsoleLine(text="VIRTACTOR-GUEST: disks vda", end=console.stat().st_size)
    with pytest.raises(ConsoleMarkerTimeout):
        wait_for_console(console, disks_line(["vda", "vdb"]), 0.3, start=first.end)


async def test_wait_for_console_async_sees_a_line_written_while_it_waits(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_bytes(b"VIRTACTOR-GUEST: heartbeat 1\n")

    async def guest_prints() -> None:
        await asyncio.sleep(0.3)
        with console.open("ab") as out:
            out.write(b"VIRTACTOR-GUEST: heartbeat 2\n")

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(guest_prints())
        line = await wait_for_console_async(console, HEARTBEAT_RE, 10.0, start=29)
    assert line == ConsoleLine(text="VIRTACTOR-GUEST: heartbeat 2", end=58)


async def test_wait_for_console_async_times_out_with_the_console_tail(tmp_path: Path) -> None:
    console = tmp_path / "missing.log"
    with pytest.raises(ConsoleMarkerTimeout) as caught:
        await wait_for_console_async(console, HEARTBEAT_RE, 0.3)
    assert str(caught.value) == (
        # The pattern shows as its repr, backslash doubled.
        rf"no console line matching 'VIRTACTOR-GUEST: heartbeat (\\d+)' in {console} "
        "within 0.3s; last lines: ['<no console file>']"
    )


# --- booting -------------------------------------------------------------------------------


@contextmanager
def running_guest(
    host: LocalHost,
    janitor: DomainJanitor,
    image: GuestImage,
    console: Path,
    disks: tuple[Path, ...] = (),
    dirty_mib: int = 0,
    memory_mib: int = 128,
) -> Iterator[libvirt.virDomain]:
    """The test guest defined and started on `host` (removed by `janitor`), its console
    written to `console`; the connection is closed on exit."""
    domain_uuid = janitor.track(str(uuid.uuid4()))
    xml = guest_domain_xml(
        f"virtactor-guest-{domain_uuid[:8]}",
        domain_uuid,
        image,
        console,
        memory_mib=memory_mib,
        disks=disks,
        dirty_mib=dirty_mib,
    )
    conn = libvirt.open(host.uri)
    try:
        dom = conn.defineXML(xml)
        dom.create()
        yield dom
    finally:
        conn.close()


def hotplug_seen_by_guest(
    dom: libvirt.virDomain, console: Path, device_xml: str, without: str, with_it: str
) -> None:
    """Once booted the guest lists `without`; `device_xml` attached live it lists `with_it`,
    and `without` again once the device is detached."""
    live = libvirt.VIR_DOMAIN_AFFECT_LIVE
    booted = wait_for_console(console, GuestMarker.BOOTED, BOOT_TIMEOUT)
    seen = wait_for_console(console, without, EVENT_TIMEOUT, start=booted.end)
    dom.attachDeviceFlags(device_xml, live)
    seen = wait_for_console(console, with_it, EVENT_TIMEOUT, start=seen.end)
    dom.detachDeviceFlags(device_xml, live)
    wait_for_console(console, without, EVENT_TIMEOUT, start=seen.end)


def raw_disk(path: Path, size: str = "8M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), size], check=True)
    return path


def test_guest_boots_and_powers_off_cleanly_on_acpi_shutdown(
    test_hosts: tuple[LocalHost, ...],
    domain_janitor: DomainJanitor,
    guest_image: GuestImage,
    tmp_path: Path,
) -> None:
    console = tmp_path / "console.log"
    with running_guest(test_hosts[0], domain_janitor, guest_image, console) as dom:
        booted = wait_for_console(console, GuestMarker.BOOTED, BOOT_TIMEOUT)
        wait_for_console(console, HEARTBEAT_RE, EVENT_TIMEOUT, start=booted.end)
        dom.shutdown()
        wait_for_console(console, GuestMarker.SHUTDOWN_REQUESTED, EVENT_TIMEOUT, start=booted.end)
        assert wait_for_domain_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, EVENT_TIMEOUT) == (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN,
        )
        # Stopped, the console file is still there to read.
        assert GuestMarker.BOOTED in console.read_text()


def test_guest_sees_a_disk_attached_and_detached_while_running(
    test_hosts: tuple[LocalHost, ...],
    domain_janitor: DomainJanitor,
    guest_image: GuestImage,
    qemu_tmp_path: Path,
) -> None:
    console = qemu_tmp_path / "console.log"
    boot_disk = raw_disk(qemu_tmp_path / "vda.raw")
    extra = raw_disk(qemu_tmp_path / "vdb.raw")
    with running_guest(test_hosts[0], domain_janitor, guest_image, console, (boot_disk,)) as dom:
        hotplug_seen_by_guest(
            dom, console, disk_xml(extra, "vdb"), disks_line(["vda"]), disks_line(["vda", "vdb"])
        )


def test_guest_sees_a_nic_attached_and_detached_while_running(
    test_hosts: tuple[LocalHost, ...],
    domain_janitor: DomainJanitor,
    guest_image: GuestImage,
    tmp_path: Path,
) -> None:
    console = tmp_path / "console.log"
    # User-mode networking: no host interface, and the guest never configures an address.
    nic = (
        "<interface type='user'><mac address='52:54:00:7a:00:01'/>"
        "<model type='virtio'/></interface>"
    )
    with running_guest(test_hosts[0], domain_janitor, guest_image, console) as dom:
        hotplug_seen_by_guest(dom, console, nic, nics_line([]), nics_line(["eth0"]))


def test_guest_dirties_memory_when_its_cmdline_asks_and_keeps_running(
    test_hosts: tuple[LocalHost, ...],
    domain_janitor: DomainJanitor,
    guest_image: GuestImage,
    tmp_path: Path,
) -> None:
    console = tmp_path / "console.log"
    with running_guest(
        test_hosts[0], domain_janitor, guest_image, console, dirty_mib=16, memory_mib=160
    ) as dom:
        started = wait_for_console(console, f"{GuestMarker.DIRTYING} 16 MiB", BOOT_TIMEOUT)
        after = wait_for_console(console, HEARTBEAT_RE, EVENT_TIMEOUT, start=started.end)
        later = wait_for_console(console, HEARTBEAT_RE, EVENT_TIMEOUT, start=after.end)
        assert _beat(later.text) > _beat(after.text)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def _beat(line: str) -> int:
    match = HEARTBEAT_RE.fullmatch(line)
    assert match is not None, line
    return int(match.group(1))
