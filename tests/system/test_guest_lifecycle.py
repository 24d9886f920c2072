"""LibvirtInstanceDriver on a real QEMU host (host1) with the real busybox guest.

One long test walks one guest through most verbs (every boot costs ~10 s under TCG); a
second spawns guests that must fail and checks nothing is left behind.

libvirt binds its events to one asyncio loop per process: these tests run on the session
loop, like every test that opens a Host (see docs/host.md).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors import BlockingExecutor
from agent.errors import HypervisorError, InstanceNotFound, NotSupported
from agent.virt import qemu_img
from agent.virt.guest.device_events import DeviceEvents, TeeListener
from agent.virt.guest.errors import (
    DeviceNotAttached,
    GuestConfigError,
    InstanceExists,
    MalformedVolumeConnection,
)
from agent.virt.guest.settings import GuestSettings
from agent.virt.host import Host
from agent.virt.images import ImageCache
from agent.virt.instance_driver import LibvirtInstanceDriver
from agent.virt.reconnect import Backoff
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.enums import PowerState
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.volume import VolumeConnection
from tests.agent.virt.conftest import RecordingListener
from tests.agent.virt.guest import samples
from tests.system.conftest import DomainJanitor, LocalHost, wait_for_console_async
from tests.system.guest_image import HEARTBEAT_RE, GuestImage, GuestMarker, disks_line, nics_line
from tests.system.instance_helpers import serve_nbd

pytestmark = [pytest.mark.libvirt_qemu, pytest.mark.asyncio(loop_scope="session")]

BOOT_TIMEOUT = 90.0
EVENT_TIMEOUT = 30.0
ROOT_IMAGE = samples.IMAGE_ID
KERNEL = "busybox-kernel"
RAMDISK = "busybox-ramdisk"
MIB = 1024 * 1024


@dataclass(slots=True)
class Bed:
    """A driver on host1 with its directories, and the Host it runs through."""

    driver: LibvirtInstanceDriver
    host: Host
    root: Path
    events: DeviceEvents
    settings: GuestSettings


@pytest.fixture
def guest_root(qemu_tmp_path: Path, guest_image: GuestImage) -> Path:
    """images/ (root disk, kernel, ramdisk), instances/, snapshots/ where QEMU can read."""
    images = qemu_tmp_path / "images"
    images.mkdir()
    qemu_img.run(["create", "-q", "-f", "qcow2", str(images / ROOT_IMAGE), "8M"])
    shutil.copyfile(guest_image.kernel, images / KERNEL)
    shutil.copyfile(guest_image.initrd, images / RAMDISK)
    return qemu_tmp_path


@pytest_asyncio.fixture(loop_scope="session")
async def bed(test_hosts: tuple[LocalHost, ...], guest_root: Path) -> AsyncIterator[Bed]:
    executor = BlockingExecutor(4, "test-guest")
    events = DeviceEvents()
    host = Host(
        test_hosts[0].uri,
        executor,
        instances_path=str(guest_root / "instances"),
        backoff=Backoff(initial=0.1, maximum=1.0),
    )
    await host.start(TeeListener(RecordingListener(), events))
    async with asyncio.timeout(30):
        await host.wait_connected()
    settings = samples.settings(guest_root, detach_attempt_timeout=10.0)
    cache = ImageCache(settings.images_path, settings.image_cache_path)
    yield Bed(
        LibvirtInstanceDriver(host, settings, cache, events), host, guest_root, events, settings
    )
    await host.aclose()
    await executor.aclose()


@pytest.fixture
def nbd_export(qemu_tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A 4 MiB raw file served by qemu-nbd on 127.0.0.1 as export `vol-nbd`."""
    with serve_nbd(qemu_tmp_path) as export:
        yield export


def kernel_image(guest_image: GuestImage, **props: object) -> ImageMeta:
    return samples.image_meta(
        kernel_id=KERNEL, ramdisk_id=RAMDISK, os_command_line=guest_image.cmdline, **props
    )


def domain_uuids(uri: str) -> set[str]:
    conn = libvirt.open(uri)
    try:
        return {dom.UUIDString() for dom in conn.listAllDomains(0)}
    finally:
        conn.close()


@dataclass(slots=True)
class Walk:
    """One guest being walked through the verbs, and how far its console was read."""

    bed: Bed
    uuid: str
    console: Path
    offset: int = 0

    @property
    def driver(self) -> LibvirtInstanceDriver:
        return self.bed.driver

    async def sees(self, marker: str | re.Pattern[str], timeout: float = EVENT_TIMEOUT) -> str:
        line = await wait_for_console_async(self.console, marker, timeout, start=self.offset)
        self.offset = line.end
        return line.text

    async def xml(self, flags: int = 0) -> str:
        return str(
            await self.driver.host.run(lambda c: c.lookupByUUIDString(self.uuid).XMLDesc(flags))
        )


async def test_a_guest_walks_through_every_verb_of_the_driver(
    bed: Bed,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
    nbd_export: tuple[str, int],
    test_hosts: tuple[LocalHost, ...],
) -> None:
    uuid = domain_janitor.track(str(uuidlib.uuid4()))
    walk = Walk(bed, uuid, bed.root / "instances" / uuid / "console.log")
    instance = samples.instance(uuid=uuid, name=f"guest-<'&\">-{uuid[:8]}")
    await spawn_and_boot(walk, instance, guest_image)
    await volumes_come_and_go(walk, nbd_export)
    await an_interface_comes_and_goes(walk)
    await information_and_consoles(walk, instance)
    await power_verbs(walk)
    await rescue_and_back(walk, instance, guest_image)
    await snapshot_power_off_and_destroy(walk, instance, test_hosts[0])


async def spawn_and_boot(walk: Walk, instance: Instance, guest_image: GuestImage) -> None:
    driver, uuid = walk.driver, walk.uuid
    await driver.spawn(instance, kernel_image(guest_image), None, None, b"recovery-1")
    await walk.sees(GuestMarker.BOOTED, BOOT_TIMEOUT)
    await walk.sees(disks_line(["vda"]))
    assert await driver.power_state(uuid) == PowerState.RUNNING
    assert (await driver.info(uuid)).state == PowerState.RUNNING
    assert driver.image_cache.references(ROOT_IMAGE) == {uuid}
    assert driver.image_cache.references(KERNEL) == {uuid}
    # Recovery metadata round trip, on the running domain's persistent definition.
    assert await driver.load_recovery(uuid) == b"recovery-1"
    await driver.store_recovery(uuid, b"\x00recovery-2\xff")
    assert await driver.load_recovery(uuid) == b"\x00recovery-2\xff"
    # A second spawn of the same uuid changes nothing.
    with pytest.raises(InstanceExists):
        await driver.spawn(instance, kernel_image(guest_image), None, None, b"")


async def volumes_come_and_go(walk: Walk, nbd_export: tuple[str, int]) -> None:
    driver, uuid = walk.driver, walk.uuid
    volume = walk.bed.root / "vol-file.img"
    volume.write_bytes(b"\x00" * 4 * MIB)
    file_conn = samples.connection("file", serial="vol-file", device_path=str(volume))
    export, port = nbd_export
    nbd_conn = samples.connection("nbd", name=export, hosts=["127.0.0.1"], ports=[str(port)])
    bad_conn = samples.connection("nbd", name=export, hosts=["127.0.0.1"], ports=["0"])
    before = await walk.xml()
    with pytest.raises(MalformedVolumeConnection):
        await driver.attach_volume(uuid, bad_conn, "/dev/vdb")
    with pytest.raises(GuestConfigError):
        await driver.attach_volume(uuid, file_conn, "/dev/../vdb")
    assert await walk.xml() == before
    await driver.attach_volume(uuid, file_conn, "/dev/vdb")
    await walk.sees(disks_line(["vda", "vdb"]))
    with pytest.raises(GuestConfigError, match=r"/dev/vdb is already attached"):
        await driver.attach_volume(uuid, nbd_conn, "/dev/vdb")
    await driver.attach_volume(uuid, nbd_conn, "/dev/vdc")
    await walk.sees(disks_line(["vda", "vdb", "vdc"]))
    await driver.detach_volume(uuid, nbd_conn, "/dev/vdc", timeout=60)
    await walk.sees(disks_line(["vda", "vdb"]))
    # Swap the file volume for a copy while the guest runs: same vdb, new file underneath.
    swapped = walk.bed.root / "vol-swapped.img"
    swapped.write_bytes(b"\x00" * 4 * MIB)
    swap_conn = samples.connection("file", serial="vol-file", device_path=str(swapped))
    await driver.swap_volume(uuid, file_conn, swap_conn, "/dev/vdb", 0)
    assert str(swapped) in await walk.xml()
    assert str(swapped) in await walk.xml(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert str(volume) not in await walk.xml(libvirt.VIR_DOMAIN_XML_INACTIVE)
    await driver.detach_volume(uuid, swap_conn, "/dev/vdb", timeout=60)
    await walk.sees(disks_line(["vda"]))
    assert walk.bed.events.seen >= 2  # the detaches ended on DEVICE_REMOVED events
    with pytest.raises(DeviceNotAttached):
        await driver.detach_volume(uuid, file_conn, "/dev/vdb", timeout=5)
    config = await walk.xml(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "vol-file.img" not in config
    assert "vol-nbd" not in config


async def an_interface_comes_and_goes(walk: Walk) -> None:
    vif = samples.vif("tap", None, devname=f"tapva{walk.uuid[:8]}")
    await walk.driver.attach_interface(walk.uuid, vif, None)
    await walk.sees(nics_line(["eth0"]))
    await walk.driver.detach_interface(walk.uuid, vif, timeout=60)
    await walk.sees(nics_line([]))


async def information_and_consoles(walk: Walk, instance: Instance) -> None:
    driver, uuid = walk.driver, walk.uuid
    assert GuestMarker.BOOTED.value in await driver.console_output(uuid, 64 * 1024)
    assert len((await driver.console_output(uuid, 100)).encode()) <= 100
    diagnostics = await driver.diagnostics(uuid)
    assert (diagnostics.state, diagnostics.driver, diagnostics.num_disks) == (
        "running",
        "libvirt",
        1,
    )
    assert len(diagnostics.cpu_details) == 1
    assert diagnostics.cpu_details[0].time
    assert (await driver.block_stats(uuid, "vda"))[0] > 0  # the guest read its partition table
    vnc = await driver.vnc_console(uuid)
    assert (vnc.console_type, vnc.host) == ("vnc", "127.0.0.1")
    assert 20000 <= vnc.port < 20100  # host1's display range
    serial = await driver.serial_console(uuid)
    assert (serial.internal_access_path or "").startswith("/dev/pts/")
    with pytest.raises(NotSupported, match="has no guest agent channel"):
        await driver.guest_agent_command(uuid, {"execute": "guest-ping"}, 5)
    connector = await driver.volume_connector(instance)
    assert (connector.host, str(connector.ip)) == ("compute-1", "192.0.2.10")


async def power_verbs(walk: Walk) -> None:
    driver, uuid = walk.driver, walk.uuid
    # Soft reboot: the guest hears the power button and boots again.
    assert await driver.reboot_soft(uuid, timeout=60) is True
    await walk.sees(GuestMarker.SHUTDOWN_REQUESTED)
    await walk.sees(GuestMarker.BOOTED, BOOT_TIMEOUT)
    # Pause, unpause, suspend (managed save) and resume: the same boot goes on.
    await driver.pause(uuid)
    assert await driver.power_state(uuid) == PowerState.PAUSED
    await driver.unpause(uuid)
    assert await driver.power_state(uuid) == PowerState.RUNNING
    booted_end = walk.offset
    beat = int((await walk.sees(HEARTBEAT_RE)).split()[-1])
    await driver.suspend(uuid)
    assert await driver.power_state(uuid) == PowerState.SHUTDOWN
    await driver.resume(uuid)
    assert await driver.power_state(uuid) == PowerState.RUNNING
    later = int((await walk.sees(HEARTBEAT_RE)).split()[-1])
    assert later > beat
    since_boot = walk.console.read_bytes()[booted_end:].decode(errors="replace")
    assert GuestMarker.BOOTED.value not in since_boot


async def rescue_and_back(walk: Walk, instance: Instance, guest_image: GuestImage) -> None:
    driver, uuid = walk.driver, walk.uuid
    await driver.rescue(instance, kernel_image(guest_image), b"rescued")
    await walk.sees(GuestMarker.BOOTED, BOOT_TIMEOUT)
    await walk.sees(disks_line(["vda", "vdb"]))  # the rescue disk, then the guest's own
    assert driver.image_cache.references(ROOT_IMAGE) == {uuid, f"{uuid}.rescue"}
    assert await driver.load_recovery(uuid) == b"rescued"
    await driver.unrescue(instance, b"unrescued")
    await walk.sees(GuestMarker.BOOTED, BOOT_TIMEOUT)
    await walk.sees(disks_line(["vda"]))
    assert await driver.load_recovery(uuid) == b"unrescued"
    assert driver.image_cache.references(ROOT_IMAGE) == {uuid}
    assert not (walk.bed.root / "instances" / uuid / "disk.rescue").exists()


async def snapshot_power_off_and_destroy(walk: Walk, instance: Instance, host1: LocalHost) -> None:
    driver, uuid = walk.driver, walk.uuid
    # Snapshot of the running guest: a standalone qcow2, progress 0..100, guest running on.
    reported: list[int] = []

    async def progress(percent: int) -> None:
        reported.append(percent)

    path = await driver.snapshot(instance, "snap-1", progress)
    assert path == str(walk.bed.root / "snapshots" / "snap-1.qcow2")
    found = qemu_img.info(Path(path))
    assert (found.format, found.virtual_size, found.backing_file) == ("qcow2", 8 * MIB, None)
    assert reported[0] == 0
    assert reported[-1] == 100
    assert reported == sorted(reported)
    assert await driver.power_state(uuid) == PowerState.RUNNING
    # Clean power off: the guest logs the request, then the domain is off.
    assert await driver.shutdown(uuid, timeout=60, retry_interval=10) is True
    await walk.sees(GuestMarker.SHUTDOWN_REQUESTED)
    assert await driver.power_state(uuid) == PowerState.SHUTDOWN
    # Power on, then a hard reboot from the persistent definition: two fresh boots.
    await driver.power_on(uuid)
    await walk.sees(GuestMarker.BOOTED, BOOT_TIMEOUT)
    await driver.reboot_hard(instance)
    await walk.sees(GuestMarker.BOOTED, BOOT_TIMEOUT)
    assert await driver.power_state(uuid) == PowerState.RUNNING
    # Destroy with disks: no domain, no directory, no image reference; again: False.
    assert await driver.destroy(instance, destroy_disks=True) is True
    assert uuid not in domain_uuids(host1.uri)
    assert not (walk.bed.root / "instances" / uuid).exists()
    assert driver.image_cache.references(ROOT_IMAGE) == set()
    assert driver.image_cache.references(KERNEL) == set()
    assert await driver.destroy(instance, destroy_disks=True) is False
    with pytest.raises(InstanceNotFound):
        await driver.power_state(uuid)


async def test_a_spawn_that_fails_leaves_no_domain_disk_or_image_reference(
    bed: Bed,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
    test_hosts: tuple[LocalHost, ...],
) -> None:
    driver = bed.driver
    before = domain_uuids(test_hosts[0].uri)
    # libvirt refuses the machine type at define: disks and references were made by then.
    uuid = domain_janitor.track(str(uuidlib.uuid4()))
    instance = samples.instance(uuid=uuid, name=f"fails-{uuid[:8]}")
    with pytest.raises(HypervisorError):  # libvirt 9.0: "XML error: No PCI buses available"
        await driver.spawn(
            instance, kernel_image(guest_image, hw_machine_type="no-such-machine"), None, None, b""
        )
    # A volume file QEMU cannot open fails at start, after the domain was defined.
    uuid2 = domain_janitor.track(str(uuidlib.uuid4()))
    missing = samples.connection("file", device_path=str(bed.root / "no-such-volume.img"))
    bdms = samples_bdms(uuid2, missing)
    with pytest.raises(HypervisorError) as missing_volume:
        await driver.spawn(
            samples.instance(uuid=uuid2, name=f"fails-{uuid2[:8]}"),
            kernel_image(guest_image),
            bdms,
            None,
            b"",
        )
    assert "no-such-volume.img" in missing_volume.value.reason
    # Bad input is refused before anything is made.
    with pytest.raises(GuestConfigError):
        await driver.spawn(
            samples.instance(uuid=uuid2, name="bad\x01name"),
            kernel_image(guest_image),
            None,
            None,
            b"",
        )
    assert domain_uuids(test_hosts[0].uri) == before
    for made in (uuid, uuid2):
        assert not (bed.root / "instances" / made).exists()
    for image_id in (ROOT_IMAGE, KERNEL, RAMDISK):
        assert driver.image_cache.references(image_id) == set()


def samples_bdms(uuid: str, connection: VolumeConnection) -> BlockDeviceMappingList:
    return BlockDeviceMappingList(
        objects=[
            BlockDeviceMapping(
                uuid=str(uuidlib.uuid4()),
                instance_uuid=uuid,
                source_type="volume",
                destination_type="volume",
                device_name="/dev/vdb",
                volume_id="vol-missing",
                connection_info=connection,
            )
        ]
    )
