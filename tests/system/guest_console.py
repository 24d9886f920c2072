"""Running commands in a test guest through its serial console (no network involved).

The guest reads `run <id> <command>` lines on ttyS0 (tests/system/guest_image.py) and prints
`ran <id> <exit code>` when the command is done. `GuestConsole` writes those lines to the
host side of the domain's serial pty and reads the outcome from the console log libvirt
keeps. It holds the pty open while it lives and drains what the guest prints to it (the log
has it), so QEMU's writes never block on a full pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from types import TracebackType

import libvirt

from tests.system.conftest import wait_for_console_async
from tests.system.guest_image import console_command, ran_pattern

_IDS = itertools.count(1)


def serial_pty(uri: str, uuid: str) -> str:
    """The host-side pty of the domain's serial port."""
    conn = libvirt.open(uri)
    try:
        config = ET.fromstring(conn.lookupByUUIDString(uuid).XMLDesc(0))
    finally:
        conn.close()
    source = config.find("devices/serial/source")
    if source is None or not source.get("path"):
        raise AssertionError(f"domain {uuid} has no serial pty")
    return str(source.get("path"))


class GuestConsole:
    """`async with GuestConsole(uri, uuid, console_log) as console: await console.run(...)`."""

    def __init__(self, uri: str, uuid: str, console_log: Path) -> None:
        self.uri = uri
        self.uuid = uuid
        self.console_log = console_log
        self._fd: int | None = None

    async def __aenter__(self) -> GuestConsole:
        path = await asyncio.to_thread(serial_pty, self.uri, self.uuid)
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fd, self._drain)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _drain(self) -> None:
        assert self._fd is not None
        # Nothing to read, or QEMU has not looked at its side yet: the log has it all anyway.
        with contextlib.suppress(OSError):
            os.read(self._fd, 65536)

    async def run(self, command: str, timeout: float = 30.0) -> int:
        """Run `command` (one line of busybox sh) in the guest; its exit code."""
        assert self._fd is not None, "use GuestConsole as an async context manager"
        command_id = f"c{next(_IDS)}"
        start = await asyncio.to_thread(_size, self.console_log)
        data = console_command(command_id, command)
        while data:
            try:
                data = data[os.write(self._fd, data) :]
            except BlockingIOError:
                await asyncio.sleep(0.05)
        pattern = ran_pattern(command_id)
        line = await wait_for_console_async(self.console_log, pattern, timeout, start=start)
        match = pattern.fullmatch(line.text)
        assert match is not None
        return int(match.group(1))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
