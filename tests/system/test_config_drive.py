"""The config drive on real QEMU: an instance with `config_drive` set boots with an ISO 9660
disk labelled config-2, and its guest reads OpenStack's metadata, the injected files and
the admin password from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from actors.instance.errors import InvalidInstanceArgument
from tests.system.conftest import (
    ON_REAL_QEMU,
    DomainJanitor,
    LocalHost,
    wait_for_console_async,
)
from tests.system.guest_image import CONFIG_DRIVE_CMDLINE_ARG, GuestImage, GuestMarker
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    HOST,
    embedded_client,
    kernel_image,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU

# The first console line may carry the firmware's escape codes before the marker.
DRIVE_LINE = re.compile(rf".*{GuestMarker.CONFIG_DRIVE} (vd[a-z]+) (\{{.*\}})")
MOTD = "hello from the config drive"


async def test_the_guest_reads_its_metadata_and_injected_files_from_the_config_drive(
    test_hosts: tuple[LocalHost, ...],
    qemu_tmp_path: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> None:
    async with embedded_client(test_hosts[0], qemu_tmp_path, guest_image) as client:
        me = tracked_instance(domain_janitor)
        me.config_drive = True
        me.metadata = {"role": "db"}
        image = kernel_image(guest_image)
        image.properties.os_command_line += f" {CONFIG_DRIVE_CMDLINE_ARG}"
        files = [["/etc/motd", MOTD], ["/etc/hostname", b"db-1"]]
        await client.spawn(HOST, me, image, injected_files=files, admin_password="s3cret")
        console = qemu_tmp_path / "instances" / me.uuid / "console.log"
        found = await wait_for_console_async(console, DRIVE_LINE, BOOT_TIMEOUT)
        match = DRIVE_LINE.fullmatch(found.text)
        assert match is not None
        device, meta = match.group(1), json.loads(match.group(2))
        assert device == "vdb"  # after the root disk
        assert meta["uuid"] == me.uuid and meta["admin_pass"] == "s3cret"
        assert meta["meta"] == {"role": "db"}
        assert meta["files"] == [
            {"path": "/etc/motd", "content_path": "/content/0000"},
            {"path": "/etc/hostname", "content_path": "/content/0001"},
        ]
        for name, content in (("0000", MOTD), ("0001", "db-1")):
            line = f"{GuestMarker.CONFIG_DRIVE_FILE} {name} {content}"
            await wait_for_console_async(console, line, 30, start=found.end)
        await client.destroy(HOST, me)


async def test_injected_files_without_a_config_drive_are_refused_before_anything_is_made(
    test_hosts: tuple[LocalHost, ...],
    qemu_tmp_path: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> None:
    async with embedded_client(test_hosts[0], qemu_tmp_path, guest_image) as client:
        me = tracked_instance(domain_janitor)
        with pytest.raises(InvalidInstanceArgument, match="config_drive"):
            await client.spawn(
                HOST, me, kernel_image(guest_image), injected_files=[["/etc/motd", "x"]]
            )
        with pytest.raises(InvalidInstanceArgument, match="absolute"):
            me.config_drive = True
            await client.spawn(
                HOST, me, kernel_image(guest_image), injected_files=[["etc/motd", "x"]]
            )
        assert not (qemu_tmp_path / "instances" / me.uuid).exists()
