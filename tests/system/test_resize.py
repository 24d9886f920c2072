"""Resize and cold migration between two real libvirt hosts that share no instances path: an
agent on each over the real RabbitMQ, a conductor on the same bus. The source powers the
guest off and sends its disks to the destination's libvirtd over storage-volume streams; the
destination boots it with the new flavor; confirm removes the source's copy, revert brings
the guest back on the source with its old flavor and disks.

The module leases its own hosts (host5, host6), so it never shares a libvirtd with the other
system tests that run at the same time; one deployment serves all its tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors.migration.errors import ResizeFailed
from agent.errors import CallTimeout
from schemas.objects import Flavor, ImageMeta, Instance, Migration
from schemas.remotable import use_indirection
from tests.conftest import missing_component
from tests.system.conftest import (
    HOST_SCRIPT,
    ON_REAL_QEMU,
    REPO_ROOT,
    DomainJanitor,
    HostLeases,
    HostScriptError,
    LocalHost,
    wait_for_console_async,
)
from tests.system.guest_image import GuestImage, GuestMarker
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    KERNEL,
    RAMDISK,
    ROOT_IMAGE,
    kernel_image,
    tracked_instance,
)
from tests.system.test_live_migration import (
    DEST,
    SOURCE,
    Pair,
    deployed_with_guest_files,
    domain_state,
)

pytestmark = [pytest.mark.rabbitmq, *ON_REAL_QEMU]

RESIZE_HOSTS = ("host5", "host6")
GIB = 1024 * 1024 * 1024
DISK_SIZE_RE = re.compile(rf".*{GuestMarker.DISK_SIZE} vda (\d+)")
# An ACPI shutdown of the busybox guest takes a second or two under TCG.
SHUTDOWN = {"timeout": 60.0, "retry_interval": 5.0}


@pytest.fixture(scope="module")
def resize_hosts() -> Iterator[tuple[LocalHost, ...]]:
    """host5 and host6, leased as `test_hosts` leases host1 and host2."""
    leases = HostLeases()
    try:
        hosts = leases.acquire(RESIZE_HOSTS)
    except (HostScriptError, OSError) as exc:
        leases.release_all()
        missing_component(
            f"local test hosts {', '.join(RESIZE_HOSTS)} ({exc})",
            f"{HOST_SCRIPT.relative_to(REPO_ROOT)} start host5 (as root, with libvirtd + QEMU)",
        )
    try:
        yield tuple(hosts)
    finally:
        leases.release_all()


@pytest.fixture
def janitor(resize_hosts: tuple[LocalHost, ...]) -> Iterator[DomainJanitor]:
    cleaner = DomainJanitor(hosts=resize_hosts)
    try:
        yield cleaner
    finally:
        cleaner.clean()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def apart(
    rabbitmq_url: str, resize_hosts: tuple[LocalHost, ...], guest_image: GuestImage
) -> AsyncIterator[Pair]:
    deployments = deployed_with_guest_files(rabbitmq_url, resize_hosts, guest_image, shared=False)
    async for deployment in deployments:
        yield deployment


def instances_path(pair: Pair, host: str) -> Path:
    return Path(pair.agents[host].config.agent.instances_path)


def bigger() -> Flavor:
    return Flavor(flavorid="bigger", name="bigger", memory_mb=192, vcpus=1, root_gb=2)


def new_resize(me: Instance) -> Migration:
    return Migration(
        uuid=str(uuid.uuid4()),
        instance_uuid=me.uuid,
        migration_type="resize",
        status="pre-migrating",
        source_compute=SOURCE,
        dest_compute=DEST,
    )


def resized(me: Instance, flavor: Flavor) -> Instance:
    """The instance as nova's compute manager hands it to finish_migration: its new flavor."""
    moved = me.obj_clone()
    moved.flavor = flavor
    return moved


def max_memory_kib(uri: str, uuid_: str) -> int:
    conn = libvirt.open(uri)
    try:
        return int(conn.lookupByUUIDString(uuid_).maxMemory())
    finally:
        conn.close()


async def booted_disk_size(console: Path, start: int = 0) -> int:
    """The size of vda the guest printed at its boot after byte `start` of its console."""
    await wait_for_console_async(console, GuestMarker.BOOTED, BOOT_TIMEOUT, start=start)
    line = await wait_for_console_async(console, DISK_SIZE_RE, 10, start=start)
    found = DISK_SIZE_RE.match(line.text)
    assert found is not None, line.text
    return int(found.group(1))


async def spawned(
    pair: Pair, janitor: DomainJanitor, guest_image: GuestImage, *, config_drive: bool = False
) -> Instance:
    """A guest on the source with a 1 GiB root disk, booted."""
    me = tracked_instance(janitor)
    me.flavor.root_gb = me.root_gb = 1
    me.config_drive = config_drive
    await pair.client.spawn(SOURCE, me, kernel_image(guest_image))
    console = instances_path(pair, SOURCE) / me.uuid / "console.log"
    assert await booted_disk_size(console) == 1 * GIB
    return me


async def records(pair: Pair, me: Instance, migration: Migration) -> tuple[Instance, Migration]:
    with use_indirection(pair.agents[SOURCE].objects):
        return (
            await Instance.get_by_uuid(None, me.uuid),
            await Migration.get_by_uuid(None, migration.uuid),
        )


async def test_a_resize_to_a_bigger_flavor_boots_on_the_destination_and_confirm_clears_the_source(
    apart: Pair, janitor: DomainJanitor, guest_image: GuestImage, caplog: pytest.LogCaptureFixture
) -> None:
    """First in the module: the destination's image cache is empty, so the base image (and
    the kernel and initramfs) travel with the disk and the config drive, and its cache takes
    them in."""
    caplog.set_level(logging.INFO, logger="agent.virt.images")
    pair, client = apart, apart.client
    me = await spawned(pair, janitor, guest_image, config_drive=True)
    image: ImageMeta = kernel_image(guest_image)
    migration, flavor = new_resize(me), bigger()
    dest_before = await client.get_compute_node(DEST)
    source_dir = instances_path(pair, SOURCE) / me.uuid
    dest_dir = instances_path(pair, DEST) / me.uuid

    disk_info = await client.migrate_disk_and_power_off(
        SOURCE, me, DEST, flavor, migration, **SHUTDOWN
    )
    # The source keeps its (shut off) guest and files until the confirm.
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_SHUTOFF
    )
    assert (source_dir / "disk").exists()
    drive = await asyncio.to_thread((source_dir / "disk.config").read_bytes)
    assert [d["path"].rsplit("/", 1)[-1] for d in json.loads(disk_info)] == ["disk"]

    finished = await client.finish_migration(
        DEST, migration, resized(me, flavor), disk_info, None, image, True
    )
    assert (finished.host, finished.vm_state, finished.task_state) == (DEST, "resized", None)
    assert (finished.memory_mb, finished.root_gb) == (192, 2)
    # It boots on the destination from the destination's files, and sees the bigger disk.
    assert await booted_disk_size(dest_dir / "console.log") == 2 * GIB
    assert await asyncio.to_thread(max_memory_kib, pair.hosts[DEST].uri, me.uuid) == 192 * 1024
    dest_cache = instances_path(pair, DEST) / "_base"
    assert (dest_cache / ROOT_IMAGE).exists() and (
        dest_cache / f"{ROOT_IMAGE}.refs" / me.uuid
    ).exists()
    assert not list(dest_dir.glob("image.*"))
    assert await asyncio.to_thread((dest_dir / "disk.config").read_bytes) == drive
    taken_in = {r.args[0] for r in caplog.records if "taken in from another host" in r.msg}
    assert taken_in == {ROOT_IMAGE, KERNEL, RAMDISK}, caplog.text
    dest_mid = await client.get_compute_node(DEST)
    assert dest_mid.memory_mb_used == dest_before.memory_mb_used + 192
    recorded, moving = await records(pair, me, migration)
    assert (recorded.host, recorded.vm_state, recorded.flavor.root_gb) == (DEST, "resized", 2)
    assert moving.status == "finished"

    confirmed = await client.confirm_migration(SOURCE, migration, me)
    assert confirmed.status == "confirmed"
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) is None
    assert not source_dir.exists()
    source_refs = instances_path(pair, SOURCE) / "_base" / f"{ROOT_IMAGE}.refs"
    assert not (source_refs / me.uuid).exists()
    recorded, moving = await records(pair, me, migration)
    assert (recorded.host, recorded.vm_state, recorded.task_state) == (DEST, "active", None)
    assert (recorded.memory_mb, recorded.flavor.flavorid) == (192, "bigger")
    assert moving.status == "confirmed"
    dest_after = await client.get_compute_node(DEST)
    assert dest_after.memory_mb_used == dest_before.memory_mb_used + 192
    await client.destroy(DEST, finished)
    assert not dest_dir.exists()


async def test_a_reverted_resize_boots_on_the_source_with_its_old_size_and_leaves_nothing_behind(
    apart: Pair, janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    pair, client = apart, apart.client
    me = await spawned(pair, janitor, guest_image)
    image = kernel_image(guest_image)
    migration, flavor = new_resize(me), bigger()
    dest_before = await client.get_compute_node(DEST)
    source_console = instances_path(pair, SOURCE) / me.uuid / "console.log"
    dest_dir = instances_path(pair, DEST) / me.uuid

    disk_info = await client.migrate_disk_and_power_off(
        SOURCE, me, DEST, flavor, migration, **SHUTDOWN
    )
    moved = resized(me, flavor)
    await client.finish_migration(DEST, migration, moved, disk_info, None, image, True)
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )

    await client.revert_migration_at_destination(DEST, moved, migration)
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) is None
    assert not dest_dir.exists()
    dest_cache = instances_path(pair, DEST) / "_base"
    assert not (dest_cache / f"{ROOT_IMAGE}.refs" / me.uuid).exists()
    assert (await client.get_compute_node(DEST)).memory_mb_used == dest_before.memory_mb_used

    start = (await asyncio.to_thread(source_console.stat)).st_size
    reverted = await client.finish_revert_migration(SOURCE, me, None, migration)
    assert (reverted.host, reverted.vm_state, reverted.task_state) == (SOURCE, "active", None)
    assert (reverted.memory_mb, reverted.root_gb) == (128, 1)
    assert await booted_disk_size(source_console, start) == 1 * GIB
    assert await asyncio.to_thread(max_memory_kib, pair.hosts[SOURCE].uri, me.uuid) == 128 * 1024
    recorded, moving = await records(pair, me, migration)
    assert (recorded.host, recorded.vm_state, recorded.flavor.root_gb) == (SOURCE, "active", 1)
    assert moving.status == "reverted"
    await client.destroy(SOURCE, me)


async def test_a_destination_that_cannot_take_the_disks_leaves_the_guest_running_on_the_source(
    apart: Pair, janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    """The destination answers its check, but its libvirtd cannot make the instance's
    directory (a file is in the way): the guest was powered off, and runs again with its own
    disks; nothing is left on the destination."""
    pair, client = apart, apart.client
    me = await spawned(pair, janitor, guest_image)
    migration = new_resize(me)
    blocker = instances_path(pair, DEST) / me.uuid
    await asyncio.to_thread(blocker.write_text, "in the way\n")
    try:
        with pytest.raises(ResizeFailed, match="the guest runs again on the source"):
            await client.migrate_disk_and_power_off(
                SOURCE, me, DEST, bigger(), migration, **SHUTDOWN
            )
        assert await asyncio.to_thread(blocker.read_text) == "in the way\n"
    finally:
        await asyncio.to_thread(blocker.unlink)
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) is None
    assert (await client.get_info(SOURCE, me)).state == "running"
    recorded, moving = await records(pair, me, migration)
    assert (recorded.host, recorded.vm_state, recorded.task_state) == (SOURCE, "active", None)
    assert moving.status == "error"
    await client.destroy(SOURCE, me)


async def test_a_destination_whose_agent_is_stopped_refuses_before_the_guest_is_touched(
    apart: Pair, janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    """Last in the module: the destination's agent is stopped (its queue stays, unserved)."""
    pair, client = apart, apart.client
    me = await spawned(pair, janitor, guest_image)
    await pair.agents.pop(DEST).aclose()  # the fixture closes only the agents left
    migration = new_resize(me)
    with pytest.raises(CallTimeout):
        await client.migrate_disk_and_power_off(SOURCE, me, DEST, bigger(), migration, **SHUTDOWN)
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert (await client.get_info(SOURCE, me)).state == "running"
    recorded, moving = await records(pair, me, migration)
    assert (recorded.vm_state, recorded.task_state) == ("active", None)
    assert moving.status == "error"
    await client.destroy(SOURCE, me)
