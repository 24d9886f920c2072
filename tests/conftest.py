"""Fixtures that find the real components the test tiers use.

A test that needs a component asks for its fixture. When the component is missing the test
skips on a laptop, but under CI=true it FAILS with a message naming the component and how to
start it: CI must prove the real paths, never skip them.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlparse

import pytest
import pytest_asyncio

from actors.testing import watch_loop_blocking

Marked = TypeVar("Marked", bound=Callable[..., Any])

IN_CI = os.environ.get("CI") == "true"
AMQP_URL = os.environ.get("VIRTACTOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QEMU_URI = os.environ.get("VIRTACTOR_TEST_QEMU_URI", "qemu:///system")


def missing_component(component: str, how_to_start: str) -> NoReturn:
    """Fail under CI, skip elsewhere, with one message naming the component and the fix."""
    message = f"{component} is not available; start it with: {how_to_start}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The AMQP URL of a real, reachable RabbitMQ broker."""
    parsed = urlparse(AMQP_URL)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        missing_component(
            f"RabbitMQ at {host}:{port} ({exc})", "deploy/local/services.sh start (or make test)"
        )
    return AMQP_URL


@pytest.fixture(scope="session")
def qemu_uri() -> Iterator[str]:
    """The URI of a real libvirtd whose QEMU driver can run `type='qemu'` (TCG) domains."""
    try:
        import libvirt
    except ImportError as exc:
        missing_component(f"libvirt-python ({exc})", "make test (installs the package)")
    try:
        conn = libvirt.open(QEMU_URI)
    except libvirt.libvirtError as exc:
        missing_component(
            f"libvirtd at {QEMU_URI} ({exc.get_error_message()})",
            "deploy/local/services.sh start (or make test)",
        )
    try:
        caps = conn.getCapabilities()
    finally:
        conn.close()
    if "<domain type='qemu'" not in caps:
        missing_component(
            f"the QEMU driver behind {QEMU_URI} (no type='qemu' domain in its capabilities)",
            "apt-get install qemu-system-x86 libvirt-daemon-driver-qemu, then restart libvirtd",
        )
    yield QEMU_URI


@pytest_asyncio.fixture(loop_scope="session")
async def session_loop_not_blocked() -> AsyncIterator[None]:
    """Fails the test if any callback held the (session) event loop for 0.25 s or more.

    For tests on the session loop (every test that opens libvirt); 0.25 s, not 0.1 s, so a
    loaded 2-core CI machine does not fail a test that never blocked.
    """
    with watch_loop_blocking(threshold=0.25) as detector:
        yield
        await asyncio.sleep(0)  # let the report of the test's last step arrive
    detector.assert_not_blocked()


# The marks of a test that opens libvirt: libvirt binds its events to one asyncio loop per
# process, so it runs on the session loop, and fails when anything blocked that loop.
ON_SESSION_LOOP = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("session_loop_not_blocked"),
]


def on_session_loop(test: Marked) -> Marked:
    """One test marked ON_SESSION_LOOP, in a module whose other tests need no libvirt."""
    for mark in ON_SESSION_LOOP:
        test = mark(test)
    return test
