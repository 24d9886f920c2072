"""Fixtures of the instance actor's tests: the in-memory driver and a recording sink, new
for each test."""

from __future__ import annotations

import pytest

from tests.actors.instance.fakes import FakeInstanceDriver, RecordingSink


@pytest.fixture
def driver() -> FakeInstanceDriver:
    return FakeInstanceDriver()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
