"""Writing a standalone qcow2 of a disk with `qemu-img convert -p`, reporting progress.

qemu-img prints `(12.50/100%)` lines ended by carriage returns while it copies; they are read
as they come (an asyncio subprocess: waiting on its pipe never blocks the loop, and the
progress reaches the caller while the copy runs). The image is written to a hidden partial
file and renamed into place only when complete; on failure or cancellation qemu-img is killed
and the partial file removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent.virt.qemu_img import QEMU_IMG, QemuImgError

Progress = Callable[[int], Awaitable[None]]
_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def parse_progress(chunk: bytes) -> list[int]:
    """Whole percentages in a piece of `qemu-img convert -p` output, in order."""
    return [int(float(m.group(1))) for m in _PERCENT.finditer(chunk)]


async def convert_to_qcow2(
    source: Path, dest: Path, progress: Progress, *, force_share: bool = False
) -> None:
    """Write `source` (and its backing chain) as one standalone qcow2 at `dest`.

    `progress(percent)` is awaited for 0, every whole percent qemu-img reaches, and 100.
    `force_share` (`-U`) reads an image a running QEMU holds locked; the caller makes sure
    nothing writes it meanwhile (a paused guest has flushed everything). Raises
    `QemuImgError`; `dest` then does not exist.
    """
    part = dest.with_name(f".{dest.name}.part-{uuidlib.uuid4().hex[:8]}")
    args = [QEMU_IMG, "convert", "-p", "-O", "qcow2"]
    if force_share:
        args.append("-U")
    args += [str(source), str(part)]
    await progress(0)
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        reported = 0
        while chunk := await proc.stdout.read(4096):
            for percent in parse_progress(chunk):
                if percent > reported and percent < 100:
                    reported = percent
                    await progress(percent)
        stderr = (await stderr_task).decode(errors="replace").strip()
        returncode = await proc.wait()
        if returncode != 0:
            raise QemuImgError(command="convert", returncode=returncode, stderr=stderr)
        part.rename(dest)
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
        part.unlink(missing_ok=True)
        raise
    await progress(100)
