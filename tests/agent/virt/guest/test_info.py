"""Readers of a running domain's XML and files, and qemu-img progress parsing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from agent.virt.guest.info import (
    alias_of,
    console_log_path,
    find_disk,
    find_interface,
    has_agent_channel,
    read_tail,
    serial_pty,
    vnc_port,
)
from agent.virt.guest.snapshot import parse_progress

LIVE = """
<domain type='qemu'><devices>
  <disk type='file' device='disk'><source file='/i/disk'/><target dev='vda' bus='virtio'/>
    <alias name='virtio-disk0'/></disk>
  <disk type='network' device='disk'><source protocol='nbd' name='e'/>
    <target dev='vdb' bus='virtio'/><alias name='virtio-disk1'/></disk>
  <interface type='ethernet'><mac address='fa:16:3e:11:22:33'/><target dev='tap1'/>
    <alias name='net0'/></interface>
  <serial type='pty'><source path='/dev/pts/7'/><log file='/i/console.log' append='on'/>
    <target port='0'/></serial>
  <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  <graphics type='vnc' port='20003' autoport='yes' listen='127.0.0.1'/>
</devices></domain>
"""


def test_devices_are_found_by_target_and_mac_with_their_aliases() -> None:
    config = ET.fromstring(LIVE)
    vdb = find_disk(config, "vdb")
    assert vdb is not None
    assert alias_of(vdb) == "virtio-disk1"
    assert find_disk(config, "vdc") is None
    nic = find_interface(config, "FA:16:3E:11:22:33")
    assert nic is not None
    assert alias_of(nic) == "net0"
    assert find_interface(config, "fa:16:3e:00:00:00") is None


def test_consoles_and_the_agent_channel_are_read_from_the_live_xml() -> None:
    config = ET.fromstring(LIVE)
    assert console_log_path(config) == "/i/console.log"
    assert serial_pty(config) == "/dev/pts/7"
    assert vnc_port(config) == ("127.0.0.1", 20003)
    assert has_agent_channel(config)
    bare = ET.fromstring("<domain><devices><graphics type='vnc' port='-1'/></devices></domain>")
    assert vnc_port(bare) == (None, None)
    assert serial_pty(bare) is None
    assert not has_agent_channel(bare)


def test_read_tail_returns_the_last_bytes_or_nothing(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    assert read_tail(log, 10) == ""
    log.write_bytes(b"line one\nline two\n\xff")
    assert read_tail(log, 10) == "line two\n\ufffd"
    assert read_tail(log, 1000) == "line one\nline two\n\ufffd"


def test_progress_is_read_from_qemu_img_output() -> None:
    chunk = b"    (0.00/100%)\r    (12.50/100%)\r    (100.00/100%)\r"
    assert parse_progress(chunk) == [0, 12, 100]
    assert parse_progress(b"no progress here") == []
