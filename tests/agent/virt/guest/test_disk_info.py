"""nova's disk info read from a domain's XML and the files themselves: which disks count as
local, and what a qcow2 overlay, a sparse raw file and a missing file report."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent.virt import qemu_img
from agent.virt.errors import HostFilesError
from agent.virt.guest.disk_info import (
    directory_writable,
    disk_info,
    disk_targets,
    local_disks,
    remove_partial_snapshots,
)

DOMAIN = """
<domain>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='/i/u/disk'/><target dev='vda'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/><source file='/volumes/v1'/><target dev='vdb'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/><source dev='/dev/sdz'/><target dev='vdc'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/><source protocol='nbd' name='x'/><target dev='vdd'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/><source file='/i/u/disk.config'/><target dev='hda'/>
    </disk>
  </devices>
</domain>
"""


def test_every_disk_target_is_listed_in_document_order() -> None:
    assert disk_targets(ET.fromstring(DOMAIN)) == ["vda", "vdb", "vdc", "vdd", "hda"]


def test_local_disks_are_file_and_block_disks_that_are_no_volume_and_no_cdrom() -> None:
    assert local_disks(ET.fromstring(DOMAIN), ["vdb"]) == [
        ("/i/u/disk", "qcow2", "file"),
        ("/dev/sdz", "raw", "block"),
    ]


def test_a_qcow2_overlay_is_over_committed_by_what_it_has_not_allocated(tmp_path: Path) -> None:
    base, overlay = tmp_path / "base", tmp_path / "disk"
    qemu_img.run(["create", "-q", "-f", "qcow2", str(base), "8M"])
    qemu_img.create_overlay(overlay, base, "qcow2", 64)

    info = disk_info(str(overlay), "qcow2", "file", force_share=False)

    allocated = os.stat(overlay).st_blocks * 512
    assert info == {
        "type": "qcow2",
        "path": str(overlay),
        "virt_disk_size": 64 * 1024 * 1024,
        "backing_file": "base",
        "disk_size": allocated,
        "over_committed_disk_size": 64 * 1024 * 1024 - allocated,
    }


def test_a_sparse_raw_file_reports_its_length_and_no_over_commit(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(4 * 1024 * 1024)

    info = disk_info(str(raw), "raw", "file", force_share=False)

    assert (info["virt_disk_size"], info["over_committed_disk_size"]) == (4 * 1024 * 1024, 0)
    assert info["disk_size"] == os.stat(raw).st_blocks * 512
    assert info["backing_file"] == ""


def test_a_missing_disk_file_is_a_host_files_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(HostFilesError) as caught:
        disk_info(str(missing), "raw", "file", force_share=False)

    assert str(caught.value) == f"a disk at {str(missing)!r}: No such file or directory"


def test_an_instance_directory_counts_when_it_exists_and_is_writable(tmp_path: Path) -> None:
    assert directory_writable(tmp_path)
    assert not directory_writable(tmp_path / "elsewhere")
    (tmp_path / "a-file").touch()
    assert not directory_writable(tmp_path / "a-file")


def test_only_that_snapshots_partial_files_are_removed(tmp_path: Path) -> None:
    mine = tmp_path / ".img-1.qcow2.part-0001"
    theirs = tmp_path / ".img-2.qcow2.part-0002"
    done = tmp_path / "img-1.qcow2"
    for path in (mine, theirs, done):
        path.touch()

    assert remove_partial_snapshots(tmp_path, "img-1") == [str(mine)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name, done.name]
