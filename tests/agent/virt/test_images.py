"""The image cache with real qemu-img: fetch, check, share, release, clean up; overlays."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from agent.virt import qemu_img
from agent.virt.guest.errors import ImageNotFound, InvalidImage
from agent.virt.images import ImageCache, root_size_mib
from agent.virt.undo import Undo
from tests.conftest import missing_component


@pytest.fixture(autouse=True)
def _qemu_img_installed() -> None:
    if shutil.which("qemu-img") is None:
        missing_component("qemu-img", "apt-get install qemu-utils (make test does)")


UUID_A = "aaaaaaaa-0000-4000-8000-000000000001"
UUID_B = "bbbbbbbb-0000-4000-8000-000000000002"
MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def images(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    (path / "raw-1").write_bytes(b"\x00" * MIB)
    qemu_img.run(["create", "-q", "-f", "qcow2", str(path / "qcow-1"), "4M"])
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(images: Path, tmp_path: Path, clock: Clock) -> ImageCache:
    return ImageCache(str(images), str(tmp_path / "cache"), clock=clock)


def set_mtime(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def test_acquire_copies_the_image_once_and_counts_references(cache: ImageCache) -> None:
    first = cache.acquire("qcow-1", UUID_A)
    assert (first.format, first.virtual_size) == ("qcow2", 4 * MIB)
    assert first.path == cache.cache_path / "qcow-1"
    inode = first.path.stat().st_ino
    second = cache.acquire("qcow-1", UUID_B)
    assert second.path.stat().st_ino == inode
    assert cache.references("qcow-1") == {UUID_A, UUID_B}
    assert oct(first.path.stat().st_mode & 0o777) == "0o644"
    assert cache.cached() == ["qcow-1"]


def test_references_survive_a_new_cache_object(cache: ImageCache, images: Path) -> None:
    cache.acquire("raw-1", UUID_A)
    reopened = ImageCache(str(images), str(cache.cache_path))
    assert reopened.references("raw-1") == {UUID_A}
    assert reopened.release("raw-1", UUID_A) is True
    assert reopened.release("raw-1", UUID_A) is False
    assert cache.references("raw-1") == set()


def test_release_all_drops_every_reference_of_one_holder(cache: ImageCache) -> None:
    cache.acquire("raw-1", UUID_A)
    cache.acquire("qcow-1", UUID_A)
    cache.acquire("qcow-1", UUID_B)
    assert cache.release_all(UUID_A) == ["qcow-1", "raw-1"]
    assert cache.references("qcow-1") == {UUID_B}


def test_a_missing_image_and_unsafe_ids_are_typed_errors(cache: ImageCache) -> None:
    with pytest.raises(ImageNotFound) as caught:
        cache.acquire("nope", UUID_A)
    assert str(caught.value) == (f"image 'nope' is not in the images directory {cache.images_path}")
    for bad in ("../images/raw-1", ".hidden", "a/b", "x.refs", "raw-1\n"):
        with pytest.raises(InvalidImage) as invalid:
            cache.acquire(bad, UUID_A)
        assert (
            str(invalid.value)
            == f"image {bad!r} cannot be used: an image id must be a plain file name"
        )
    with pytest.raises(InvalidImage, match="a reference holder must be a plain file name"):
        cache.acquire("raw-1", "../x")


def test_a_qcow2_image_with_its_own_backing_file_never_enters_the_cache(
    cache: ImageCache, images: Path
) -> None:
    qemu_img.run(
        ["create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", str(images / "evil")]
    )
    with pytest.raises(InvalidImage) as caught:
        cache.acquire("evil", UUID_A)
    assert str(caught.value) == (
        "image 'evil' cannot be used: it has a backing file of its own: '/etc/hostname'"
    )
    assert cache.cached() == []
    assert not list(cache.cache_path.glob(".part-*"))


def test_an_image_in_another_format_is_refused(cache: ImageCache, images: Path) -> None:
    qemu_img.run(["create", "-q", "-f", "vmdk", str(images / "vm-1"), "1M"])
    with pytest.raises(InvalidImage, match=r"format 'vmdk' is not one of \('raw', 'qcow2'\)"):
        cache.acquire("vm-1", UUID_A)


def test_concurrent_acquires_fetch_one_base(cache: ImageCache) -> None:
    holders = [f"holder-{n}" for n in range(6)]
    results = []
    threads = [
        threading.Thread(target=lambda h=h: results.append(cache.acquire("raw-1", h)))
        for h in holders
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.path.stat().st_ino for r in results}) == 1
    assert cache.references("raw-1") == set(holders)
    assert not list(cache.cache_path.glob(".part-*"))


def test_manage_image_cache_removes_only_bases_unused_for_max_age(
    cache: ImageCache, clock: Clock
) -> None:
    cache.acquire("raw-1", UUID_A)
    cache.acquire("qcow-1", UUID_B)
    cache.release("qcow-1", UUID_B)
    set_mtime(cache.cache_path / "qcow-1.refs", 1000.0)
    clock.now = 1000.0 + 59
    report = cache.manage_image_cache(live_holders=None, max_age=60)
    assert (report.removed, report.in_use, report.waiting) == ([], ["raw-1"], ["qcow-1"])
    clock.now = 1000.0 + 60
    report = cache.manage_image_cache(live_holders=None, max_age=60)
    assert report.removed == ["qcow-1"]
    assert cache.cached() == ["raw-1"]
    assert not (cache.cache_path / "qcow-1.refs").exists()


def test_manage_image_cache_drops_references_of_instances_that_are_gone(
    cache: ImageCache, clock: Clock
) -> None:
    cache.acquire("raw-1", UUID_A)
    cache.acquire("raw-1", UUID_B)
    clock.now = 10**10
    report = cache.manage_image_cache(live_holders={UUID_B}, max_age=60)
    assert report.dropped_references == [("raw-1", UUID_A)]
    assert report.in_use == ["raw-1"]
    report = cache.manage_image_cache(live_holders=set(), max_age=60)
    assert report.dropped_references == [("raw-1", UUID_B)]
    # Dropping the last reference just now counts as a use: the base waits its max_age.
    assert report.waiting == ["raw-1"]


def test_an_overlay_reads_through_to_its_base_and_takes_the_flavor_size(
    cache: ImageCache, tmp_path: Path
) -> None:
    base = cache.acquire("qcow-1", UUID_A)
    overlay = tmp_path / "disk"
    qemu_img.create_overlay(overlay, base.path, base.format, root_size_mib(base, 16))
    found = qemu_img.info(overlay)
    assert (found.format, found.virtual_size) == ("qcow2", 16 * MIB)
    assert found.backing_file == str(base.path)
    assert root_size_mib(base, None) is None
    with pytest.raises(InvalidImage) as caught:
        root_size_mib(base, 2)
    assert str(caught.value) == (
        "image 'qcow-1' cannot be used: the root disk of 2 MiB is smaller than the image (4 MiB)"
    )


def test_a_qemu_img_failure_carries_its_message(tmp_path: Path) -> None:
    with pytest.raises(qemu_img.QemuImgError) as caught:
        qemu_img.create_blank(tmp_path / "missing-dir" / "disk", 1)
    assert str(caught.value).startswith("qemu-img create failed (1): ")
    assert "missing-dir" in str(caught.value)


def test_undo_runs_steps_last_first_and_keeps_the_original_error(tmp_path: Path) -> None:
    done: list[str] = []

    def failing() -> None:
        done.append("failing")
        raise OSError("cannot")

    with pytest.raises(RuntimeError, match="define failed"), Undo("spawn", UUID_A) as undo:
        undo.push("first", done.append, "first")
        undo.push("broken", failing)
        undo.push("last", done.append, "last")
        raise RuntimeError("define failed")
    assert done == ["last", "failing", "first"]
    assert undo.failed_steps == ["broken"]


def test_undo_after_commit_does_nothing() -> None:
    done: list[str] = []
    with Undo("spawn", UUID_A) as undo:
        undo.push("step", done.append, "x")
        undo.commit()
    assert done == []
