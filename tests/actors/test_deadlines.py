"""Deadlines at both ends: the asker stops waiting, the actor skips what expired."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors import ActorRef, ActorSystem, AskTimeout, DeadLetterReason, DeadlineExpired, Message
from actors.cell import ActorCell

from .actors_for_tests import Recorder, eventually


async def _until(deadline: float) -> None:
    await eventually(lambda: time.monotonic() >= deadline)


async def busy_host(system: ActorSystem) -> tuple[Recorder, ActorRef]:
    """A Recorder at "host" held in a handler until its gate opens: what is sent now queues."""
    actor = Recorder()
    ref = system.spawn("host", actor)
    await ref.tell("hold")
    await actor.holding.wait()
    return actor, ref


async def test_an_ask_without_reply_before_its_timeout_raises_ask_timeout(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("instance:1", actor)
    with pytest.raises(AskTimeout) as caught:
        await ref.ask("hold", timeout=0.05)
    assert isinstance(caught.value, TimeoutError)
    assert (caught.value.address, caught.value.method) == ("instance:1", "hold")
    assert str(caught.value).startswith("no reply from 'instance:1' to 'hold' within 0.0")
    actor.gate.set()


async def test_an_absolute_deadline_bounds_the_ask_like_a_timeout(system: ActorSystem) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    with pytest.raises(AskTimeout):
        await ref.ask("hold", deadline=time.monotonic() + 0.05, timeout=60)
    actor.gate.set()


async def test_the_actor_skips_a_told_message_whose_deadline_passed_while_queued(
    system: ActorSystem,
) -> None:
    actor, ref = await busy_host(system)
    deadline = time.monotonic() + 0.02
    await ref.tell("record", {"value": "stale"}, deadline=deadline)
    await ref.tell("record", {"value": "fresh"})
    await _until(deadline)
    actor.gate.set()
    await ref.ask("record", {"value": "end"})
    assert actor.seen == ["fresh", "end"]
    assert system.stats_of("host").expired == 1
    assert system.dead_letters.by_reason[DeadLetterReason.EXPIRED] == 1


async def test_an_asker_gone_at_its_deadline_gets_ask_timeout_and_the_handler_never_runs(
    system: ActorSystem,
) -> None:
    actor, ref = await busy_host(system)
    with pytest.raises(AskTimeout):
        await ref.ask("record", {"value": "late"}, timeout=0.02)
    actor.gate.set()
    await ref.ask("record", {"value": "end"})
    assert actor.seen == ["end"]
    assert system.stats_of("host").expired == 1


async def test_an_ask_already_expired_when_handled_raises_deadline_expired(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    # Enqueued straight into the cell: through ask, the asker's own timeout would win.
    cell: ActorCell = ref._cell
    assert cell.deliver(Message("record", {"value": "x"}, time.monotonic(), None, reply))
    with pytest.raises(DeadlineExpired) as caught:
        await reply
    assert (caught.value.address, caught.value.method) == ("host", "record")
    assert actor.seen == []


async def test_a_message_within_its_deadline_is_handled(system: ActorSystem) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    assert await ref.ask("record", {"value": 1}, timeout=30) == 1
    await ref.tell("record", {"value": 2}, deadline=time.monotonic() + 30)
    assert await ref.ask("record", {"value": 3}, deadline=time.monotonic() + 30) == 3
    assert actor.seen == [1, 2, 3]


async def test_a_start_deadline_waits_for_a_handler_that_started_in_time(
    system: ActorSystem,
) -> None:
    actor = Recorder()
    ref = system.spawn("host", actor)
    asked = asyncio.ensure_future(ref.ask("hold", start_deadline=time.monotonic() + 0.05))
    await actor.holding.wait()
    await asyncio.sleep(0.1)  # past the start deadline, the handler still running
    assert not asked.done()
    actor.gate.set()
    assert await asked == "released"


async def test_a_start_deadline_skips_a_message_that_could_not_start_in_time(
    system: ActorSystem,
) -> None:
    actor, ref = await busy_host(system)
    late = asyncio.ensure_future(
        ref.ask("record", {"value": "late"}, start_deadline=time.monotonic() + 0.02)
    )
    await asyncio.sleep(0.05)
    actor.gate.set()
    with pytest.raises(DeadlineExpired):
        await late
    assert "late" not in actor.seen


async def test_deadline_and_start_deadline_together_are_refused(system: ActorSystem) -> None:
    ref = system.spawn("host", Recorder())
    with pytest.raises(ValueError, match="a deadline or a start_deadline, not both"):
        await ref.ask("record", {"value": 1}, deadline=1.0, start_deadline=1.0)
