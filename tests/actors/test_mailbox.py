"""The mailbox alone: capacity, waiting senders in order, closing."""

from __future__ import annotations

import asyncio

import pytest

from actors import Message
from actors.mailbox import Mailbox


def _message(name: str) -> Message:
    return Message(name, {})


def test_a_mailbox_takes_messages_up_to_its_capacity_and_pops_them_in_order() -> None:
    mailbox = Mailbox(2)
    assert mailbox.put_nowait(_message("a"))
    assert mailbox.put_nowait(_message("b"))
    assert not mailbox.put_nowait(_message("c"))
    assert [m.method for m in (mailbox.pop(), mailbox.pop())] == ["a", "b"]  # type: ignore[union-attr]
    assert mailbox.pop() is None


def test_an_empty_mailbox_releases_its_deque() -> None:
    mailbox = Mailbox(4)
    mailbox.put_nowait(_message("a"))
    mailbox.pop()
    mailbox.release_if_empty()
    assert mailbox._queue is None
    assert len(mailbox) == 0


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="mailbox capacity must be >= 1, got 0"):
        Mailbox(0)


async def test_waiting_senders_get_room_in_arrival_order_and_newcomers_queue_behind() -> None:
    mailbox = Mailbox(1)
    mailbox.put_nowait(_message("first"))
    waiters = [asyncio.create_task(mailbox.put(_message(f"w{n}"))) for n in range(3)]
    await asyncio.sleep(0)
    popped = [mailbox.pop()]
    # A room is promised to w0: a fail-fast newcomer must not take it.
    assert not mailbox.put_nowait(_message("newcomer"))
    while len(popped) < 4:
        await asyncio.sleep(0)
        message = mailbox.pop()
        if message is not None:
            popped.append(message)
    assert [m.method for m in popped if m is not None] == ["first", "w0", "w1", "w2"]
    assert all(w.result() for w in waiters)


async def test_closing_wakes_waiting_senders_who_report_the_mailbox_closed() -> None:
    mailbox = Mailbox(1)
    mailbox.put_nowait(_message("first"))
    waiter = asyncio.create_task(mailbox.put(_message("late")))
    await asyncio.sleep(0)
    mailbox.close()
    assert await waiter is False
    assert await mailbox.put(_message("later")) is False
    assert [m.method for m in mailbox.drain()] == ["first"]
