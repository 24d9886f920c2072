"""What the demo runs on: which bus and which hosts, from what was asked and what this
machine has. Pure functions of their inputs; the probes that gather those inputs are below
them and run in a thread (a socket connect, a few `which`)."""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

BusKind = Literal["embedded", "rabbitmq"]
HostsKind = Literal["real", "test"]
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# What a real local host needs beside libvirt-host.sh; `make demo` installs neither
# (deploy/local/system-packages.sh demo): `make test`'s profile does.
REAL_HOST_PROGRAMS = ("libvirtd", "qemu-system-x86_64", "unshare", "virsh")


class DemoError(Exception):
    """The demo's own errors: a local tool's, they never travel, so not a VirtactorError."""


class DemoUnavailable(DemoError):
    """What was asked for cannot run on this machine (the message says why)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What runs, and the sentence that says why."""

    kind: str
    reason: str


def choose_bus(asked: str, rabbitmq_answers: bool, url: str) -> Choice:
    """`embedded` or `rabbitmq`; `auto` takes RabbitMQ when it answers at `url`.
    Raises DemoUnavailable when `rabbitmq` is asked and it does not answer."""
    where = urlsplit(url).netloc.rpartition("@")[2] or url
    if asked == "embedded":
        return Choice("embedded", "embedded in-process bus (asked for)")
    if rabbitmq_answers:
        why = "asked for" if asked == "rabbitmq" else "it answers"
        return Choice("rabbitmq", f"RabbitMQ at {where} ({why})")
    if asked == "rabbitmq":
        raise DemoUnavailable(f"RabbitMQ does not answer at {where}")
    return Choice("embedded", f"embedded in-process bus (no RabbitMQ answers at {where})")


def choose_hosts(asked: str, missing: list[str]) -> Choice:
    """`real` (local libvirtd + QEMU hosts) or `test` (libvirt's test driver); `auto` takes
    real hosts when nothing is `missing`. Raises DemoUnavailable when `real` is asked and
    something is."""
    if asked == "test":
        return Choice("test", "libvirt test driver (asked for)")
    if not missing:
        why = "asked for" if asked == "real" else "this machine can run them"
        return Choice("real", f"real local libvirtd + QEMU hosts ({why})")
    lacks = "; ".join(missing)
    if asked == "real":
        raise DemoUnavailable(f"real hosts cannot run here: {lacks}")
    return Choice("test", f"libvirt test driver (no real hosts: {lacks})")


def rabbitmq_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to the broker of `url` opens (blocking: run in a thread)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout):
            return True
    except OSError:
        return False


def real_host_missing(script: Path) -> list[str]:
    """What this machine lacks to run local libvirt hosts; empty when it can (blocking)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("not root (libvirt-host.sh needs root)")
    absent = [name for name in REAL_HOST_PROGRAMS if shutil.which(name) is None]
    if absent:
        missing.append(
            f"{', '.join(absent)} not installed (deploy/local/system-packages.sh test installs it)"
        )
    if not script.is_file():
        missing.append(f"{script} not found (a source checkout has it)")
    return missing
