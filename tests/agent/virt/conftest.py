"""Fixtures of the libvirt Host layer's tests.

libvirt binds its events to ONE asyncio loop per process (see agent/virt/eventloop.py), so
every async test and fixture here runs on pytest-asyncio's session loop: modules set
`pytestmark = pytest.mark.asyncio(loop_scope="session")`. Each async test runs with the loop
in debug mode and fails if a callback held the loop for 0.25 s or more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio

from actors import BlockingExecutor
from actors.testing import LoopBlockingDetector, watch_loop_blocking
from agent.virt.events import DomainEvent
from agent.virt.host import Host
from agent.virt.reconnect import Backoff

BLOCKING_THRESHOLD = 0.25  # generous: CI machines are loaded
TEST_URI = "test:///default"


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def loop_blocking() -> AsyncIterator[LoopBlockingDetector]:
    with watch_loop_blocking(threshold=BLOCKING_THRESHOLD) as detector:
        yield detector
        await asyncio.sleep(0)  # let the report of the test's last step arrive
    detector.assert_not_blocked()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def executor() -> AsyncIterator[BlockingExecutor]:
    pool = BlockingExecutor(4, "test-virt")
    yield pool
    await pool.aclose()


@dataclass(slots=True)
class RecordingListener:
    """A HostListener that keeps what it heard and lets a test wait for it."""

    events: list[DomainEvent] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # "lost: <reason>" / "restored"
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def domain_event(self, event: DomainEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def connection_lost(self, reason: str) -> None:
        self.changes.append(f"lost: {reason}")
        self._changed.set()

    def connection_restored(self) -> None:
        self.changes.append("restored")
        self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `condition()` holds, re-checking after each thing heard."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def events_of(self, uuid: str) -> list[tuple[str, str]]:
        return [(e.kind.value, e.detail) for e in self.events if e.uuid == uuid]


@pytest_asyncio.fixture(loop_scope="session")
async def listener() -> RecordingListener:
    return RecordingListener()


@pytest_asyncio.fixture(loop_scope="session")
async def test_host(
    executor: BlockingExecutor, listener: RecordingListener, tmp_path: Path
) -> AsyncIterator[Host]:
    """A connected Host on libvirt's test driver (a fresh in-memory host per connection)."""
    host = Host(
        TEST_URI,
        executor,
        instances_path=str(tmp_path),
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    await host.start(listener)
    async with asyncio.timeout(10):
        await host.wait_connected()
    yield host
    await host.aclose()


def domain_xml(name: str, uuid: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>"
        "<memory>65536</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"
    )
