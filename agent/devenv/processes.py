"""The development environment's background processes: started detached with a pid file and a
log file, found again by a later run from the pid file, stopped by SIGTERM then SIGKILL.

A pid file alone can outlive its process and name an unrelated one once the pid is reused, so
a process counts as ours only while its command line still names its own configuration file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# How often a wait for a process to exit looks again.
POLL_SECONDS = 0.1


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows "(comm) ", and comm may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] != "Z"


def command_line(pid: int) -> list[str]:
    """The arguments `pid` was started with; empty if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in `pid_file` if that process is alive and `marker` (its configuration file) is
    one of its arguments; None otherwise."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    if not alive(pid) or marker not in command_line(pid):
        return None
    return pid


def start(
    argv: Sequence[str], pid_file: Path, log_file: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own (a Ctrl-C of the caller does not reach it), its
    stdout and stderr appended to `log_file`, its pid written to `pid_file`. It keeps running
    after the caller exits."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process


def stop_all(pids: Sequence[int], timeout: float) -> list[int]:
    """SIGTERM every pid, wait up to `timeout` seconds for them to exit, then SIGKILL those
    left and wait up to 5 s more. The pids still alive after that (none, normally)."""
    left = list(pids)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if alive(pid)]
            if left:
                time.sleep(POLL_SECONDS)
        left = [pid for pid in left if alive(pid)]
        if not left:
            break
    return left


def log_tail(log_file: Path, lines: int = 10) -> str:
    """The last `lines` lines of `log_file`, for an error message."""
    try:
        text = log_file.read_text(errors="replace")
    except FileNotFoundError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])
