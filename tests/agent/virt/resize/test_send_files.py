"""`send_files` against a recording stand-in for the destination's libvirtd: what it makes,
in which order, and that a stream breaking mid-file leaves nothing behind there (the
volumes sent deleted, the directory removed, no pool definition left; the image cache's
transient pool is kept, shared by transfers to that host)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from actors.instance.resize_checks import ResizeDestination
from actors.migration.errors import DiskTransferFailed
from agent.virt.resize.transfer import CHUNK, Upload, send_files

UUID = "aaaaaaaa-0000-4000-8000-000000000001"
DEST = ResizeDestination("dst", "qemu+tcp://dst/system", f"/dst/{UUID}", "/dst/_base")


def libvirt_error(message: str) -> libvirt.libvirtError:
    """A libvirtError carrying only `message` (libvirtError also takes the thread's last
    libvirt error, which an earlier test's real call may have left)."""
    libvirt.virResetLastError()
    return libvirt.libvirtError(message)


@dataclass
class Events:
    log: list[str] = field(default_factory=list)
    received: dict[str, bytes] = field(default_factory=dict)
    break_after: int | None = None  # bytes a stream takes before it breaks


class Stream:
    def __init__(self, events: Events) -> None:
        self.events = events
        self.volume = ""

    def send(self, data: bytes) -> int:
        got = self.events.received.setdefault(self.volume, b"")
        limit = self.events.break_after
        if limit is not None and len(got) + len(data) > limit:
            raise libvirt_error("stream broke")
        self.events.received[self.volume] = got + data
        return len(data)

    def finish(self) -> None:
        self.events.log.append(f"finish {self.volume}")

    def abort(self) -> None:
        self.events.log.append(f"abort {self.volume}")


class Volume:
    def __init__(self, events: Events, name: str) -> None:
        self.events, self.name = events, name

    def upload(self, stream: Stream, offset: int, length: int, flags: int) -> None:
        stream.volume = self.name
        self.events.log.append(f"upload {self.name} {length}")

    def delete(self, flags: int) -> None:
        self.events.log.append(f"delete {self.name}")


class Pool:
    def __init__(self, events: Events, name: str, volumes: list[str]) -> None:
        self.events, self.name, self.volumes, self.active = events, name, volumes, False

    def build(self, flags: int) -> None:
        self.events.log.append(f"build {self.name}")

    def create(self, flags: int) -> None:
        self.active = True

    def isActive(self) -> bool:
        return self.active

    def refresh(self, flags: int) -> None:
        pass

    def listVolumes(self) -> list[str]:
        return list(self.volumes)

    def createXML(self, xml: str, flags: int) -> Volume:
        name = xml.split("<name>")[1].split("</name>", maxsplit=1)[0]
        return Volume(self.events, name)

    def destroy(self) -> None:
        self.active = False
        self.events.log.append(f"destroy {self.name}")

    def delete(self, flags: int) -> None:
        self.events.log.append(f"rmdir {self.name}")

    def undefine(self) -> None:
        self.events.log.append(f"undefine {self.name}")


class Connection:
    def __init__(self, events: Events, cached: list[str]) -> None:
        self.events, self.cached = events, cached

    def setKeepAlive(self, interval: int, count: int) -> None:
        pass

    def storagePoolLookupByTargetPath(self, path: str) -> Pool:
        raise libvirt_error("no pool there")

    def storagePoolCreateXML(self, xml: str, flags: int) -> Pool:
        pool = Pool(self.events, "cache", self.cached)
        pool.active = True
        return pool

    def storagePoolLookupByName(self, name: str) -> Pool:
        raise libvirt_error("no such pool")

    def storagePoolDefineXML(self, xml: str, flags: int) -> Pool:
        return Pool(self.events, "instance", [])

    def newStream(self, flags: int) -> Stream:
        return Stream(self.events)

    def close(self) -> int:
        self.events.log.append("close")
        return 0


@pytest.fixture
def files(tmp_path: Path) -> list[Upload]:
    disk = tmp_path / "disk"
    disk.write_bytes(b"d" * (CHUNK + 10))
    base = tmp_path / "base"
    base.write_bytes(b"b" * 100)
    return [Upload(disk, "disk"), Upload(base, "image.base")]


def test_the_files_arrive_whole_and_the_pools_are_gone_after(files: list[Upload]) -> None:
    events = Events()
    seen: list[set[str]] = []

    def plan(cached: set[str]) -> list[Upload]:
        seen.append(cached)
        return files

    sent = send_files(UUID, DEST, plan, open_connection=lambda uri: Connection(events, ["k"]))
    assert sent == ["disk", "image.base"] and seen == [{"k"}]
    assert events.received == {"disk": b"d" * (CHUNK + 10), "image.base": b"b" * 100}
    assert events.log == [
        "build instance",
        f"upload disk {CHUNK + 10}",
        "finish disk",
        "upload image.base 100",
        "finish image.base",
        "destroy instance",
        "undefine instance",
        "close",
    ]


def test_a_stream_that_breaks_leaves_nothing_at_the_destination(files: list[Upload]) -> None:
    events = Events(break_after=50)
    connection = Connection(events, [])
    with pytest.raises(DiskTransferFailed, match="could not be sent to dst: stream broke"):
        send_files(UUID, DEST, lambda cached: files, open_connection=lambda uri: connection)
    assert events.log == [
        "build instance",
        f"upload disk {CHUNK + 10}",
        "abort disk",
        "delete disk",
        "destroy instance",
        "rmdir instance",
        "undefine instance",
        "close",
    ]


def test_a_destination_that_cannot_be_reached_is_a_typed_failure(files: list[Upload]) -> None:
    def unreachable(uri: str) -> Connection:
        raise libvirt_error("Connection refused")

    with pytest.raises(DiskTransferFailed, match="Connection refused"):
        send_files(UUID, DEST, lambda cached: files, open_connection=unreachable)
