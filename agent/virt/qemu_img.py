"""qemu-img, run as a blocking subprocess (callers run these in the blocking executor).

Every call has a timeout and a typed error carrying qemu-img's own message. Image formats
are never guessed silently: `info` reports what qemu-img probed, and callers refuse what they
did not expect (a "raw" image whose bytes look like qcow2 with a backing file is the classic
way to make QEMU open a host file).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import VirtactorError

QEMU_IMG = "qemu-img"
DEFAULT_TIMEOUT = 600.0


class QemuImgError(VirtactorError):
    msg_fmt = "qemu-img {command} failed ({returncode}): {stderr}"


@dataclass(slots=True, frozen=True)
class ImageInfo:
    """What `qemu-img info` says of one file."""

    format: str
    virtual_size: int  # bytes
    backing_file: str | None


def run(args: list[str], timeout: float = DEFAULT_TIMEOUT) -> str:
    """`qemu-img <args>`; its stdout, or `QemuImgError` naming the subcommand."""
    try:
        done = subprocess.run(
            [QEMU_IMG, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise QemuImgError(
            command=args[0], returncode="timeout", stderr=f"no result within {timeout}s"
        ) from None
    except OSError as exc:
        raise QemuImgError(command=args[0], returncode="not run", stderr=str(exc)) from None
    if done.returncode != 0:
        raise QemuImgError(command=args[0], returncode=done.returncode, stderr=done.stderr.strip())
    return done.stdout


def info(path: Path, force_share: bool = False) -> ImageInfo:
    """The probed format, virtual size and backing file of `path`.

    `force_share` reads an image a running QEMU holds the write lock of (`-U`).
    """
    args = ["info", "--output=json"]
    if force_share:
        args.append("-U")
    report = json.loads(run([*args, str(path)], timeout=60.0))
    return ImageInfo(
        format=str(report["format"]),
        virtual_size=int(report["virtual-size"]),
        backing_file=report.get("full-backing-filename") or report.get("backing-filename"),
    )


def create_overlay(path: Path, backing: Path, backing_format: str, size_mib: int | None) -> None:
    """A qcow2 at `path` on top of `backing` (of `backing_format`, never probed)."""
    args = ["create", "-q", "-f", "qcow2", "-b", str(backing), "-F", backing_format, str(path)]
    if size_mib is not None:
        args.append(f"{size_mib}M")
    run(args)


def create_blank(path: Path, size_mib: int) -> None:
    """An empty qcow2 of `size_mib` MiB at `path`."""
    run(["create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"])


def rebase_unsafe(path: Path, backing: Path, backing_format: str) -> None:
    """Point the qcow2 `path` at `backing` (of `backing_format`) without reading either: the
    same base under another path (a disk moved to another host's image cache)."""
    run(["rebase", "-u", "-f", "qcow2", "-b", str(backing), "-F", backing_format, str(path)])


def grow(path: Path, image_format: str, size_mib: int) -> None:
    """Make the disk `path` (of `image_format`) `size_mib` MiB; never shrinks (qemu-img
    refuses a smaller size without --shrink)."""
    run(["resize", "-q", "-f", image_format, str(path), f"{size_mib}M"])
