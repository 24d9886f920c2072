"""`get_spice_console` on real QEMU: a guest built with `[guest] spice_enabled` has a SPICE
display, and what the call answers is where a real SPICE server speaks its link protocol.

The module leases host5 (the resize module's source host; leases are shared), not the hosts
other system tests use at the same time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import missing_component
from tests.system.conftest import (
    HOST_SCRIPT,
    ON_REAL_QEMU,
    REPO_ROOT,
    DomainJanitor,
    HostLeases,
    HostScriptError,
    LocalHost,
    qemu_files_dir,
)
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    config_for,
    embedded_agent,
    kernel_image,
    make_guest_files,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU

SPICE_MAGIC = b"REDQ"
SPICE_VERSION = (2, 2)
MAIN_CHANNEL = 1


@pytest.fixture(scope="module")
def spice_host() -> Iterator[LocalHost]:
    if "addr=" not in _qemu_spice_help():
        missing_component(
            "SPICE in qemu-system-x86_64 (qemu-system-x86_64 -spice help)",
            "apt-get install qemu-system-x86 (Debian's is built with SPICE)",
        )
    leases = HostLeases()
    try:
        (host,) = leases.acquire(("host5",))
    except (HostScriptError, OSError) as exc:
        leases.release_all()
        missing_component(
            f"local test host host5 ({exc})",
            f"{HOST_SCRIPT.relative_to(REPO_ROOT)} start host5 (as root, with libvirtd + QEMU)",
        )
    try:
        yield host
    finally:
        leases.release_all()


def _qemu_spice_help() -> str:
    try:
        done = subprocess.run(
            ["qemu-system-x86_64", "-spice", "help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return ""
    return done.stdout + done.stderr


def spice_link_reply(host: str, port: int) -> tuple[bytes, int, int]:
    """Open the main channel as a SPICE client does (SpiceLinkHeader + SpiceLinkMess, no
    capabilities) and return the magic and version of the server's reply header."""
    message = struct.pack("<IBBIII", 0, MAIN_CHANNEL, 0, 0, 0, 18)
    header = SPICE_MAGIC + struct.pack("<III", *SPICE_VERSION, len(message))
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(header + message)
        reply = b""
        while len(reply) < 16:
            chunk = conn.recv(16 - len(reply))
            if not chunk:
                break
            reply += chunk
    major, minor = struct.unpack("<II", reply[4:12])
    return reply[:4], major, minor


async def test_a_guest_built_with_spice_answers_where_a_spice_server_listens(
    spice_host: LocalHost, guest_image: GuestImage
) -> None:
    janitor = DomainJanitor(hosts=(spice_host,))
    try:
        with qemu_files_dir() as files:
            root = await asyncio.to_thread(make_guest_files, files, guest_image)
            base = config_for(spice_host, root)
            config = dataclasses.replace(
                base, guest=dataclasses.replace(base.guest, spice_enabled=True)
            )
            async with embedded_agent(config) as (_agent, client):
                me = tracked_instance(janitor)
                await client.spawn(HOST, me, kernel_image(guest_image))
                console = await client.get_spice_console(HOST, me)
                assert (console.console_type, console.host) == ("spice", "127.0.0.1")
                assert console.port > 0 and console.tls_port is None
                magic, major, _minor = await asyncio.to_thread(
                    spice_link_reply, console.host, console.port
                )
                assert (magic, major) == (SPICE_MAGIC, SPICE_VERSION[0])
                # VNC stays beside it.
                assert (await client.get_vnc_console(HOST, me)).port != console.port
                await client.destroy(HOST, me)
    finally:
        await asyncio.to_thread(janitor.clean)
