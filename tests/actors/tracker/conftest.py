"""Fixtures of the resource tracker's tests: a fake hypervisor with no guests and no PCI
devices, a recording sink and a recording object backend, new for each test. The actor
system (`system`) and the loop-blocking check come from tests/actors/conftest.py."""

from __future__ import annotations

import pytest

from tests.actors.tracker.fakes import FakeTrackerHypervisor, RecordingBackend, RecordingSink


@pytest.fixture
def hypervisor() -> FakeTrackerHypervisor:
    return FakeTrackerHypervisor()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()
