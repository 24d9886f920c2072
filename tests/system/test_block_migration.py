"""Block migration between two real libvirt hosts that share no instances path: each agent
keeps its instances (and its image cache) in its own directory, so the destination makes the
guest's root overlay on its own cached copy of the base image and libvirt copies the
overlay's data while the guest runs; the domain the destination gets names its own paths.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors.migration.errors import MigrationPreCheckError
from agent.virt import qemu_img
from schemas.objects import ComputeNode, Instance, MigrationPolicy, MigrationProgress
from schemas.remotable import use_indirection
from tests.system.conftest import (
    ON_REAL_QEMU,
    DomainJanitor,
    LocalHost,
    wait_for_console_async,
)
from tests.system.guest_image import (
    HEARTBEAT_RE,
    WRITTEN_BYTE,
    GuestImage,
    GuestMarker,
    write_cmdline_arg,
)
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    ROOT_IMAGE,
    kernel_image,
    tracked_instance,
)
from tests.system.test_live_migration import (
    DEST,
    SOURCE,
    Pair,
    beat,
    deployed_with_guest_files,
    domain_state,
    new_migration,
    until_migration_ends,
)

pytestmark = [pytest.mark.rabbitmq, *ON_REAL_QEMU]

WRITTEN_MIB = 16
MIB = 1024 * 1024


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def apart(
    rabbitmq_url: str,
    test_hosts: tuple[LocalHost, ...],
    guest_image: GuestImage,
) -> AsyncIterator[Pair]:
    deployments = deployed_with_guest_files(rabbitmq_url, test_hosts, guest_image, shared=False)
    async for deployment in deployments:
        yield deployment


def holds_written_data(disk: Path) -> bool:
    """Whether the first WRITTEN_MIB MiB of the qcow2 `disk` are the guest's byte (read
    beside the running QEMU)."""
    command = f"read -P {WRITTEN_BYTE:#x} 0 {WRITTEN_MIB}M"
    done = subprocess.run(
        ["qemu-io", "-U", "-r", "-f", "qcow2", "-c", command, str(disk)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0 and "verification failed" not in done.stdout + done.stderr


def instance_dir(pair: Pair, host: str, uuid: str) -> Path:
    return Path(pair.agents[host].config.agent.instances_path) / uuid


async def test_a_guest_with_a_local_disk_block_migrates_and_keeps_counting(
    apart: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    pair, client = apart, apart.client
    me = tracked_instance(domain_janitor)
    me.flavor.root_gb = me.root_gb = 1
    me.config_drive = True  # read only: carried whole, not copied by libvirt
    image = kernel_image(guest_image)
    image.properties.os_command_line += f" {write_cmdline_arg(WRITTEN_MIB)}"
    source_dir, dest_dir = instance_dir(pair, SOURCE, me.uuid), instance_dir(pair, DEST, me.uuid)
    await client.spawn(SOURCE, me, image)
    await wait_for_console_async(
        source_dir / "console.log",
        re.compile(f".*{GuestMarker.WROTE} {WRITTEN_MIB} MiB to vda"),
        BOOT_TIMEOUT,
    )
    booted = await wait_for_console_async(
        source_dir / "console.log", GuestMarker.BOOTED, BOOT_TIMEOUT
    )
    before = await wait_for_console_async(
        source_dir / "console.log", HEARTBEAT_RE, 60, start=booted.end
    )
    dest_before = await client.get_compute_node(DEST)
    drive = await asyncio.to_thread((source_dir / "disk.config").read_bytes)

    migration = new_migration(me)
    # At 8 MiB/s the disk's data takes a few polls to copy, so progress shows it.
    policy = MigrationPolicy(bandwidth_mibps=8)
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        await client.live_migration(
            SOURCE, me, DEST, migration, block_migration=True, policy=policy
        )
        ended, seen = await until_migration_ends(aiter(stream))
    assert ended.status == "completed", seen
    progress = [p for p in seen if isinstance(p, MigrationProgress)]
    assert progress and max(p.disk_total for p in progress) >= WRITTEN_MIB * MIB

    # The destination's QEMU runs it from the destination's own files: the root overlay sits
    # on the destination's cached base, and the console log moved with it.
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) is None
    disk = await asyncio.to_thread(qemu_img.info, dest_dir / "disk", True)
    dest_cache = Path(pair.agents[DEST].config.agent.instances_path) / "_base"
    assert disk.format == "qcow2" and disk.backing_file == str(dest_cache / ROOT_IMAGE)
    assert await asyncio.to_thread(holds_written_data, dest_dir / "disk"), "data not copied"
    assert await asyncio.to_thread((dest_dir / "disk.config").read_bytes) == drive
    after = await wait_for_console_async(dest_dir / "console.log", HEARTBEAT_RE, 60)
    assert beat(after.text) > beat(before.text)
    # The source let go of everything: no files, no reference to its cached base.
    assert not source_dir.exists()
    source_refs = Path(pair.agents[SOURCE].config.agent.instances_path) / "_base"
    assert not (source_refs / f"{ROOT_IMAGE}.refs" / me.uuid).exists()
    assert (dest_cache / f"{ROOT_IMAGE}.refs" / me.uuid).exists()

    dest_after = await client.get_compute_node(DEST)
    assert dest_after.memory_mb_used == dest_before.memory_mb_used + me.flavor.memory_mb
    with use_indirection(pair.agents[DEST].objects):
        recorded = await Instance.get_by_uuid(None, me.uuid)
        node = await ComputeNode.get_by_uuid(None, dest_after.uuid)
    assert recorded.host == DEST and node.memory_mb_used == dest_after.memory_mb_used
    await client.destroy(DEST, me)
    assert not dest_dir.exists()


async def test_a_live_migration_without_a_shared_path_or_a_block_copy_is_refused(
    apart: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    pair, client = apart, apart.client
    me = tracked_instance(domain_janitor)
    await client.spawn(SOURCE, me, kernel_image(guest_image))
    migration = new_migration(me)
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        await client.live_migration(SOURCE, me, DEST, migration)
        ended, _ = await until_migration_ends(aiter(stream))
    assert ended.status == "failed"
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert not instance_dir(pair, DEST, me.uuid).exists()
    # The check itself, asked directly, names the reason.
    dest_check = await client.check_can_live_migrate_destination(DEST, me, block_migration=False)
    try:
        with pytest.raises(MigrationPreCheckError, match="block migration"):
            await client.check_can_live_migrate_source(SOURCE, me, dest_check)
    finally:
        await client.check_can_live_migrate_destination_cleanup(DEST, me, dest_check)
    await client.destroy(SOURCE, me)
