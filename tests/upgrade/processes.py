"""Real agents and clients of a release, as processes: start, wait, stop, kill.

An agent is `<venv>/bin/virtactor run --config <file>`; it is ready once it logs that it
serves its queue. A client of the previous release is `<venv>/bin/python -I old_client.py
<command>`; today's client runs the same command in the test's own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.upgrade import old_client
from tests.upgrade.releases import Release

OLD_CLIENT = Path(old_client.__file__).resolve()
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ProcessFailed(Exception):
    """An agent or client process did not do what it was started for; its log says why."""


def clean_env() -> dict[str, str]:
    """This environment without settings that would override a release's own: the config
    file alone decides (no VIRTACTOR_*), and the release imports only its own venv. One
    setting is added: the tier runs no conductor, so agents that keep records in the object
    backend do not (0.1.0 has no such section: its agents ignore the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTACTOR_", "PYTHON"))}
    env["VIRTACTOR_CONDUCTOR_SAVE_RECORDS"] = "false"
    return env


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@dataclass
class AgentProcess:
    """One `virtactor run` of `release`, serving `host`; its stderr goes to `log`."""

    release: Release
    host: str
    config: Path
    log: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self, ready_timeout: float = READY_TIMEOUT) -> AgentProcess:
        """Start it and return once it serves its queue; `ProcessFailed` with the tail of its
        log if it exits first or is not serving within `ready_timeout` seconds."""
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(self.release.virtactor),
                "--log-level",
                "INFO",
                "run",
                "--config",
                str(self.config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=clean_env(),
                cwd=self.config.parent,
            )
        mark = f"agent {self.host} started"
        try:
            async with asyncio.timeout(ready_timeout):
                while mark not in self.log.read_text(errors="replace"):
                    if self.process.returncode is not None:
                        raise ProcessFailed(
                            f"{self} exited {self.process.returncode}: {self.tail()}"
                        )
                    await asyncio.sleep(0.1)
        except TimeoutError:
            self.kill()
            raise ProcessFailed(
                f"{self} not serving after {ready_timeout}s: {self.tail()}"
            ) from None
        return self

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, the way an operator stops it; killed if it does not exit in `timeout`.
        Returns its exit status."""
        process = self.process
        if process is None:
            raise ProcessFailed(f"{self} was never started")
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                self.kill()
                await process.wait()
                raise ProcessFailed(
                    f"{self} ignored SIGTERM for {timeout}s: {self.tail()}"
                ) from None
        assert process.returncode is not None
        return process.returncode

    def kill(self) -> None:
        """The finalizers' last resort: SIGKILL if it still runs."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __str__(self) -> str:
        return f"agent {self.host} of {self.release.version}"


async def play(release: Release, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Run `command` (tests/upgrade/old_client.py) with `release`'s client: in a process of
    its own venv for an installed release, in this process for the checkout under test."""
    if str(release.venv) == sys.prefix:  # the checkout under test (current_release)
        async with asyncio.timeout(timeout):
            return await old_client.run(command)
    process = await asyncio.create_subprocess_exec(
        str(release.python),
        "-I",
        str(OLD_CLIENT),
        json.dumps(command),
        stdin=subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
        cwd="/",
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        tail = "\n".join(err.decode(errors="replace").splitlines()[-25:])
        raise ProcessFailed(f"the client of {release.version} exited {process.returncode}:\n{tail}")
    answer: dict[str, Any] = json.loads(out)
    return answer
