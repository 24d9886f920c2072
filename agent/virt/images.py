"""`ImageCache`: base images copied from the images directory, shared by reference count.

Layout under `cache_path`:

    <image id>             the cached base: a copy of `<images_path>/<image id>`, raw or qcow2
    <image id>.refs/<uuid> one empty file per instance using the base (the reference count)
    .locks/<image id>      the lock a fetch, a reference change or a removal holds
    .part-<id>-<random>    a fetch in progress (renamed into place when complete)

References are files, so they survive an agent restart and a crash cannot leave a count
half-written: adding or removing one is a single create or unlink. A base's "unused since" is
the modification time of its `.refs` directory, which changes with every reference added or
removed. `manage_image_cache` drops the references of instances that are gone and removes
bases nobody has used for `max_age` seconds. Locks are `flock`s on files, so two agents (or
threads) sharing a cache never fetch the same image twice or remove a base being acquired.

Images are checked before use: only raw and qcow2, and never a qcow2 with a backing file of
its own (that would let an image make QEMU read a host file). Every method blocks (file copies,
qemu-img): run them in the blocking executor.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
import uuid as uuidlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.virt import qemu_img
from agent.virt.guest.errors import ImageError, ImageNotFound, InvalidImage

log = logging.getLogger(__name__)

ALLOWED_FORMATS = ("raw", "qcow2")
# One path component, no dot files, nothing the cache's own names could collide with.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_RESERVED_SUFFIXES = (".refs", ".lock")
REFS_SUFFIX = ".refs"
LOCKS_DIR = ".locks"
PART_PREFIX = ".part-"


@dataclass(slots=True, frozen=True)
class CachedImage:
    """A base image in the cache: its path, format and virtual size in bytes."""

    image_id: str
    path: Path
    format: str
    virtual_size: int


@dataclass(slots=True)
class CacheReport:
    """What one `manage_image_cache` pass did."""

    removed: list[str] = field(default_factory=list)  # bases deleted
    in_use: list[str] = field(default_factory=list)  # bases still referenced
    waiting: list[str] = field(default_factory=list)  # unused, not old enough yet
    dropped_references: list[tuple[str, str]] = field(default_factory=list)  # (image, uuid)


def check_id(value: str, what: str) -> str:
    """`value` if it is a safe single file name; `InvalidImage` otherwise."""
    if not _ID.fullmatch(value) or value.endswith(_RESERVED_SUFFIXES):
        raise InvalidImage(image_id=value, reason=f"{what} must be a plain file name")
    return value


class ImageCache:
    """Bases from `images_path` cached under `cache_path`; see the module docstring.

    `clock` gives wall-clock seconds (file times are wall-clock); tests pass their own.
    """

    def __init__(
        self, images_path: str, cache_path: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.images_path = Path(images_path)
        self.cache_path = Path(cache_path)
        self._clock = clock

    # --- sources -------------------------------------------------------------------------

    def source(self, image_id: str) -> Path:
        """The image file `<images_path>/<image_id>`; `ImageNotFound` if absent."""
        path = self.images_path / check_id(image_id, "an image id")
        if not path.is_file():
            raise ImageNotFound(image_id=image_id, images_path=str(self.images_path))
        return path

    # --- references ----------------------------------------------------------------------

    def acquire(self, image_id: str, holder: str) -> CachedImage:
        """The cached base of `image_id`, fetched if needed, with a reference for `holder`
        (an instance uuid). Acquiring twice for one holder keeps one reference."""
        check_id(holder, "a reference holder")
        source = self.source(image_id)
        with self._locked(image_id):
            base = self.cache_path / image_id
            if not base.exists():
                self._fetch(image_id, source, base)
            image = self._inspect(image_id, base)
            refs = self._refs(image_id)
            refs.mkdir(exist_ok=True)
            (refs / holder).touch()
        return image

    def adopt(self, image_id: str, holder: str, incoming: Path) -> CachedImage:
        """`acquire` for a base another host sent (a resize's destination): the file
        `incoming` becomes the cached base, checked as a fetched one is, unless the cache
        has one already (then `incoming` is removed); with a reference for `holder`."""
        check_id(holder, "a reference holder")
        with self._locked(check_id(image_id, "an image id")):
            base = self.cache_path / image_id
            if base.exists():
                incoming.unlink()
            else:
                self._check(image_id, qemu_img.info(incoming))
                os.chmod(incoming, 0o644)
                shutil.move(incoming, base)
                log.info("image cache: %s taken in from another host", image_id)
            image = self._inspect(image_id, base)
            refs = self._refs(image_id)
            refs.mkdir(exist_ok=True)
            (refs / holder).touch()
        return image

    def release(self, image_id: str, holder: str) -> bool:
        """Drop `holder`'s reference to `image_id`; False if it had none."""
        check_id(holder, "a reference holder")
        with self._locked(check_id(image_id, "an image id")):
            try:
                (self._refs(image_id) / holder).unlink()
            except FileNotFoundError:
                return False
            return True

    def release_all(self, holder: str) -> list[str]:
        """Drop every reference `holder` has; returns the image ids it held."""
        released = [image_id for image_id in self.cached() if self.release(image_id, holder)]
        return sorted(released)

    def references(self, image_id: str) -> set[str]:
        """The holders referencing `image_id` now."""
        refs = self._refs(check_id(image_id, "an image id"))
        try:
            return {p.name for p in refs.iterdir()}
        except FileNotFoundError:
            return set()

    def cached(self) -> list[str]:
        """The image ids with a base in the cache."""
        try:
            entries = list(self.cache_path.iterdir())
        except FileNotFoundError:
            return []
        return sorted(
            p.name
            for p in entries
            if p.is_file() and not p.name.startswith(".") and _ID.fullmatch(p.name)
        )

    # --- cleanup -------------------------------------------------------------------------

    def manage_image_cache(
        self, live_holders: Collection[str] | None, max_age: float
    ) -> CacheReport:
        """Drop references of holders not in `live_holders` (None: keep all), then remove
        every base unreferenced for at least `max_age` seconds, and stale partial fetches."""
        report = CacheReport()
        now = self._clock()
        for image_id in self.cached():
            with self._locked(image_id):
                refs = self._refs(image_id)
                holders = self.references(image_id)
                if live_holders is not None and holders - set(live_holders):
                    for gone in sorted(holders - set(live_holders)):
                        (refs / gone).unlink(missing_ok=True)
                        holders.discard(gone)
                        report.dropped_references.append((image_id, gone))
                    # When the instance went is unknown: count the base as used now.
                    os.utime(refs, (now, now))
                if holders:
                    report.in_use.append(image_id)
                    continue
                base = self.cache_path / image_id
                since = refs.stat().st_mtime if refs.exists() else base.stat().st_mtime
                if now - since < max_age:
                    report.waiting.append(image_id)
                    continue
                base.unlink()
                shutil.rmtree(refs, ignore_errors=True)
                report.removed.append(image_id)
                log.info("image cache: removed base %s, unused since %.0f", image_id, since)
        for part in self.cache_path.glob(f"{PART_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if now - part.stat().st_mtime >= max_age:
                    part.unlink()
        return report

    # --- internals -----------------------------------------------------------------------

    def _refs(self, image_id: str) -> Path:
        return self.cache_path / f"{image_id}{REFS_SUFFIX}"

    @contextlib.contextmanager
    def _locked(self, image_id: str) -> Iterator[None]:
        locks = self.cache_path / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / image_id).open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _fetch(self, image_id: str, source: Path, base: Path) -> None:
        # Check the source before copying it: a bad image never enters the cache.
        self._check(image_id, qemu_img.info(source))
        part = self.cache_path / f"{PART_PREFIX}{image_id}-{uuidlib.uuid4().hex[:8]}"
        try:
            shutil.copyfile(source, part)
            # QEMU runs as its own user and only reads bases.
            os.chmod(part, 0o644)
            os.rename(part, base)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        log.info("image cache: fetched %s from %s", image_id, source)

    def _inspect(self, image_id: str, base: Path) -> CachedImage:
        found = self._check(image_id, qemu_img.info(base))
        return CachedImage(image_id, base, found.format, found.virtual_size)

    @staticmethod
    def _check(image_id: str, found: qemu_img.ImageInfo) -> qemu_img.ImageInfo:
        if found.format not in ALLOWED_FORMATS:
            raise InvalidImage(
                image_id=image_id, reason=f"format {found.format!r} is not one of {ALLOWED_FORMATS}"
            )
        if found.backing_file is not None:
            raise InvalidImage(
                image_id=image_id,
                reason=f"it has a backing file of its own: {found.backing_file!r}",
            )
        return found


def root_size_mib(image: CachedImage, wanted_mib: int | None) -> int | None:
    """The root overlay's size: `wanted_mib`, or None (the base's size) when not given.
    `InvalidImage` when the flavor's disk is smaller than the image."""
    if wanted_mib is None:
        return None
    image_mib = -(-image.virtual_size // (1024 * 1024))
    if wanted_mib < image_mib:
        raise InvalidImage(
            image_id=image.image_id,
            reason=f"the root disk of {wanted_mib} MiB is smaller than the image ({image_mib} MiB)",
        )
    return wanted_mib


__all__ = [
    "ALLOWED_FORMATS",
    "CacheReport",
    "CachedImage",
    "ImageCache",
    "ImageError",
    "check_id",
    "root_size_mib",
]
