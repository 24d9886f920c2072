"""The rest of the contract that touches a real guest or host, on real QEMU (host1): the host's
CPU stats, the guest's disk info against qemu-img, device names around an attached volume,
and the crash-dump NMI the guest's kernel reports on its console.

One guest, booted once for the module; each test leaves it running with no volume attached.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.virt import qemu_img
from schemas.objects import Instance
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost, qemu_files_dir
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    ROOT_IMAGE,
    embedded_client,
    file_volume,
    kernel_image,
    spawn_booted,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU

# What Linux prints for an NMI no device claims (arch/x86/kernel/nmi.c, unknown_nmi_error),
# at KERN_EMERG, so the guest's `quiet` console shows it.
NMI_LINE = re.compile(r"Uhhuh\. NMI received for unknown reason [0-9a-f]+ on CPU \d+")


@dataclass
class RunningGuest:
    client: ComputeClient
    me: Instance
    host: LocalHost
    files: Path


@pytest.fixture(scope="module")
def module_dir() -> Iterator[Path]:
    """Where QEMU reads the module's one guest's files."""
    with qemu_files_dir() as path:
        yield path


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def running(
    test_hosts: tuple[LocalHost, ...], guest_image: GuestImage, module_dir: Path
) -> AsyncIterator[RunningGuest]:
    janitor = DomainJanitor(hosts=test_hosts)
    try:
        async with embedded_client(test_hosts[0], module_dir, guest_image) as client:
            me = tracked_instance(janitor)
            await spawn_booted(client, me, kernel_image(guest_image))
            yield RunningGuest(client, me, test_hosts[0], module_dir)
    finally:
        janitor.clean()


def _root(guest: RunningGuest) -> Path:
    return guest.files / "instances" / guest.me.uuid / "disk"


def _frequency(uri: str) -> int:
    conn = libvirt.open(uri)
    try:
        return int(conn.getInfo()[3])
    finally:
        conn.close()


async def test_get_host_cpu_stats_reads_the_hosts_cpu_times_as_they_grow(
    running: RunningGuest,
) -> None:
    first = await running.client.get_host_cpu_stats(HOST)
    await asyncio.sleep(0.5)
    second = await running.client.get_host_cpu_stats(HOST)

    assert set(first) == {"kernel", "idle", "user", "iowait", "frequency"}
    assert first["frequency"] == await asyncio.to_thread(_frequency, running.host.uri)
    # CPU time in nanoseconds over all CPUs: half a second passed on every one of them.
    elapsed = sum(second[k] - first[k] for k in ("kernel", "idle", "user", "iowait"))
    assert elapsed >= 0.4e9 * 0.5
    assert all(second[k] >= first[k] for k in ("kernel", "idle", "user", "iowait"))


async def test_get_instance_disk_info_of_the_running_guest_is_what_qemu_img_reads(
    running: RunningGuest,
) -> None:
    root = _root(running)

    disks = json.loads(await running.client.get_instance_disk_info(HOST, running.me))

    probed = await asyncio.to_thread(qemu_img.info, root, True)
    allocated = os.stat(root).st_blocks * 512
    assert disks == [
        {
            "type": "qcow2",
            "path": str(root),
            "virt_disk_size": probed.virtual_size,
            "backing_file": ROOT_IMAGE,
            "disk_size": allocated,
            "over_committed_disk_size": probed.virtual_size - allocated,
        }
    ]
    assert probed.virtual_size == 8 * 1024 * 1024


async def test_an_attached_volume_takes_the_next_device_name_and_is_no_local_disk(
    running: RunningGuest,
) -> None:
    client, me = running.client, running.me
    assert await client.get_device_name_for_instance(HOST, me) == "/dev/vdb"

    volume = await asyncio.to_thread(file_volume, running.files / "volume-1.raw", "volume-1")
    await client.attach_volume(HOST, me, volume, "/dev/vdb")
    try:
        assert await client.get_device_name_for_instance(HOST, me) == "/dev/vdc"
        disks = json.loads(await client.get_instance_disk_info(HOST, me))
        assert [d["path"] for d in disks] == [str(_root(running))]
    finally:
        await client.detach_volume(HOST, me, volume, "/dev/vdb")

    assert await client.get_device_name_for_instance(HOST, me) == "/dev/vdb"


async def test_trigger_crash_dump_delivers_an_nmi_the_guests_kernel_reports(
    running: RunningGuest,
) -> None:
    client, me = running.client, running.me
    before = len(NMI_LINE.findall(await client.get_console_output(HOST, me)))

    await client.trigger_crash_dump(HOST, me)

    async with asyncio.timeout(60):
        while len(NMI_LINE.findall(await client.get_console_output(HOST, me))) <= before:  # noqa: ASYNC110 - the guest's console log
            await asyncio.sleep(0.5)
    assert (await client.get_info(HOST, me)).state == "running"
