"""Bounded mailboxes: a full mailbox makes tell wait or fail fast; nothing is dropped."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    DeadLetterReason,
    DeadlineExpired,
    MailboxFull,
    handler,
)

from .actors_for_tests import Recorder


async def _full(system: ActorSystem, capacity: int) -> tuple[Recorder, ActorRef]:
    """An actor busy in `hold` with `capacity` messages queued behind it."""
    actor = Recorder()
    ref = system.spawn("host", actor, mailbox_capacity=capacity)
    await ref.tell("hold")
    await actor.holding.wait()
    for value in range(capacity):
        await ref.tell("record", {"value": value})
    assert system.stats_of("host").mailbox_depth == capacity
    return actor, ref


async def test_tell_without_wait_on_a_full_mailbox_raises_mailbox_full(
    system: ActorSystem,
) -> None:
    actor, _ = await _full(system, 2)
    with pytest.raises(MailboxFull) as caught:
        await system.tell("host", "record", {"value": "extra"}, wait=False)
    assert str(caught.value) == "mailbox of 'host' is full (2 messages)"
    assert caught.value.retryable
    actor.gate.set()
    await system.ask("host", "record", {"value": "end"})
    assert actor.seen == [0, 1, "end"]


async def test_tell_on_a_full_mailbox_waits_for_room_and_nothing_is_dropped(
    system: ActorSystem,
) -> None:
    actor, _ = await _full(system, 2)
    senders = [
        asyncio.create_task(system.tell("host", "record", {"value": f"late-{n}"})) for n in range(5)
    ]
    await asyncio.sleep(0)
    assert not any(sender.done() for sender in senders)
    actor.gate.set()
    await asyncio.gather(*senders)
    await system.ask("host", "record", {"value": "end"})
    assert actor.seen == [0, 1, *(f"late-{n}" for n in range(5)), "end"]
    assert system.dead_letters.total == 0


async def test_an_ask_on_a_full_mailbox_waits_for_room_too(system: ActorSystem) -> None:
    actor, _ = await _full(system, 1)
    asker = asyncio.create_task(system.ask("host", "record", {"value": "asked"}))
    await asyncio.sleep(0)
    assert not asker.done()
    actor.gate.set()
    assert await asker == "asked"


async def test_a_waiting_tell_gives_up_at_its_deadline_with_deadline_expired(
    system: ActorSystem,
) -> None:
    actor, _ = await _full(system, 1)
    with pytest.raises(DeadlineExpired) as caught:
        await system.tell("host", "record", {"value": "x"}, deadline=time.monotonic() + 0.05)
    assert str(caught.value) == "message 'record' to 'host' expired before its handler started"
    actor.gate.set()
    await system.ask("host", "record", {"value": "end"})
    assert actor.seen == [0, "end"]


async def test_a_cancelled_waiting_sender_passes_its_turn_to_the_next(
    system: ActorSystem,
) -> None:
    actor, _ = await _full(system, 1)
    first = asyncio.create_task(system.tell("host", "record", {"value": "cancelled"}))
    second = asyncio.create_task(system.tell("host", "record", {"value": "kept"}))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    actor.gate.set()
    await second
    await system.ask("host", "record", {"value": "end"})
    assert actor.seen == [0, "kept", "end"]


async def test_a_full_actor_telling_itself_fails_fast_instead_of_waiting_for_itself(
    system: ActorSystem,
) -> None:
    class Loop(Actor):
        @handler
        async def flood(self) -> int:
            sent = 0
            with pytest.raises(MailboxFull):
                while True:
                    await self.system.tell(self.address, "noop")
                    sent += 1
            return sent

        @handler
        async def noop(self) -> None:
            return None

    ref = system.spawn("host", Loop, mailbox_capacity=3)
    assert await ref.ask("flood") == 3


async def test_waiting_senders_of_a_stopped_actor_end_in_the_dead_letters(
    system: ActorSystem,
) -> None:
    actor, _ = await _full(system, 1)
    waiting = asyncio.create_task(system.tell("host", "record", {"value": "late"}))
    await asyncio.sleep(0)
    stopping = asyncio.create_task(system.stop("host", timeout=0.05))
    await waiting
    await stopping
    assert system.dead_letters.by_reason[DeadLetterReason.STOPPED] == 1 + 1  # late + queued 0
    assert "late" not in actor.seen
