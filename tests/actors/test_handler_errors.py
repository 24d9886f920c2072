"""A handler that raises answers its asker with a typed error; the actor keeps running."""

from __future__ import annotations

import asyncio
import logging

import pytest

from actors import ActorSystem, HandlerFailed
from actors.instance.errors import InstanceInvalidState

from .actors_for_tests import Recorder


async def test_a_foreign_exception_reaches_the_asker_as_handler_failed(
    system: ActorSystem,
) -> None:
    ref = system.spawn("host", Recorder)
    with pytest.raises(HandlerFailed) as caught:
        await ref.ask("fail", {"error": KeyError("vcpus")})
    error = caught.value
    assert (error.address, error.method) == ("host", "fail")
    assert (error.exc_type, error.exc_message) == ("KeyError", "'vcpus'")
    assert str(error) == "handler 'fail' of 'host' raised KeyError: 'vcpus'"
    assert isinstance(error.__cause__, KeyError)


async def test_a_virtactor_error_reaches_the_asker_as_that_very_exception(
    system: ActorSystem,
) -> None:
    raised = InstanceInvalidState(action="reboot", uuid="u1", attr="vm_state", state="paused")
    ref = system.spawn("instance:u1", Recorder)
    with pytest.raises(InstanceInvalidState) as caught:
        await ref.ask("fail", {"error": raised})
    assert caught.value is raised
    assert caught.value.fields == {
        "action": "reboot",
        "uuid": "u1",
        "attr": "vm_state",
        "state": "paused",
    }


async def test_the_actor_keeps_its_state_and_runs_after_a_handler_raised(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    await ref.ask("record", {"value": 1})
    with pytest.raises(HandlerFailed):
        await ref.ask("fail", {"error": RuntimeError("boom")})
    assert await ref.ask("record", {"value": 2}) == 2
    assert actor.seen == [1, 2]
    stats = system.stats_of("host")
    assert (stats.handled, stats.failed, stats.restarts) == (3, 1, 0)


async def test_a_told_handler_that_raises_is_logged_with_its_traceback(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    ref = system.spawn("host", Recorder)
    with caplog.at_level(logging.ERROR, logger="actors"):
        await ref.tell("fail", {"error": ValueError("bad disk")})
        await ref.ask("record", {"value": "sync"})
    (record,) = [r for r in caplog.records if "handler fail failed" in r.getMessage()]
    assert "ValueError('bad disk')" in record.getMessage()
    assert record.exc_info is not None


async def test_a_cancelled_error_raised_inside_a_handler_fails_only_that_message(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    with pytest.raises(HandlerFailed) as caught:
        await ref.ask("fail", {"error": asyncio.CancelledError()})
    assert caught.value.exc_type == "CancelledError"
    assert await ref.ask("record", {"value": "still alive"}) == "still alive"
