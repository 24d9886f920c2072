"""Replies of finished state-changing requests kept on disk: a request sent again to the next
agent after a restart is answered with its first reply, not run again; queries are not kept;
the rows follow the cache's age and count bounds."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiosqlite

from agent.rpc.dedup import CallKey, ReplyCache
from agent.rpc.reply_store import ReplyStore, StoredReply
from agent.service import reply_store_path
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.embedded import domain_removed, embedded_agent, embedded_config, make_root_image
from tests.conftest import on_session_loop

HOST = "compute-replies"
KEY = CallKey("pause", b"digest")


async def rows(path: Path) -> list[tuple[str, str]]:
    async with (
        aiosqlite.connect(path) as db,
        db.execute("SELECT message_id, method FROM replies ORDER BY finished_at") as cursor,
    ):
        return [(row[0], row[1]) async for row in cursor]


async def test_a_finished_reply_is_answered_again_by_a_new_cache_on_the_same_store(
    tmp_path: Path,
) -> None:
    store = ReplyStore(tmp_path / "replies.sqlite")
    await store.open()
    first = ReplyCache(store=store)
    runs = []

    async def work() -> bytes:
        runs.append(1)
        return b"paused"

    assert await first.run_once("m-1", KEY, work) == (b"paused", False)
    query = CallKey("get_info", b"digest")
    assert await first.run_once("m-2", query, work) == (b"paused", False)
    await store.aclose()

    reopened = ReplyStore(tmp_path / "replies.sqlite")
    await reopened.open()
    second = ReplyCache(store=reopened)
    assert await second.load() == 1  # the query's reply was not kept
    assert await second.run_once("m-1", KEY, work) == (b"paused", True)
    assert len(runs) == 2
    await reopened.aclose()


async def test_replies_older_than_the_ttl_are_not_read_back_and_pruning_keeps_the_newest(
    tmp_path: Path,
) -> None:
    store = ReplyStore(tmp_path / "replies.sqlite")
    await store.open()
    for number, finished_at in enumerate((100.0, 500.0, 900.0, 950.0)):
        await store.put(StoredReply(f"m-{number}", "pause", b"d", b"r", finished_at))
    cache = ReplyCache(store=store, ttl=600.0, wall_clock=lambda: 1000.0)
    assert await cache.load() == 3  # finished within the last 600 s
    await store.prune(before=400.0, keep=2)
    assert await rows(tmp_path / "replies.sqlite") == [("m-2", "pause"), ("m-3", "pause")]
    await store.aclose()


async def test_a_damaged_store_is_moved_aside_and_a_new_one_made(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = ReplyStore(path)
    await store.open()
    cache = ReplyCache(store=store)
    assert await cache.load() == 0
    assert await cache.run_once("m-1", KEY, _paused) == (b"paused", False)
    await store.aclose()
    assert (tmp_path / "replies.sqlite.damaged").read_bytes().startswith(b"this is not")
    assert await rows(path) == [("m-1", "pause")]


async def _paused() -> bytes:
    return b"paused"


@on_session_loop
async def test_a_spawn_sent_again_to_a_restarted_agent_gets_its_first_reply(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    async with domain_removed(me.uuid):
        async with embedded_agent(config) as (_agent, client):
            first = await client.with_options(message_id="spawn-once").spawn(HOST, me, image_meta())
            await client.get_info(HOST, me)
        assert (first.vm_state, first.power_state) == ("active", "running")
        assert ("spawn-once", "spawn") in await rows(reply_store_path(config))
        assert all(method != "get_info" for _id, method in await rows(reply_store_path(config)))

        async with embedded_agent(config) as (agent, client):
            again = await client.with_options(message_id="spawn-once").spawn(HOST, me, image_meta())
            assert agent.dispatcher.stats.duplicates == 1
            await client.destroy(HOST, me)
    assert again.uuid == first.uuid and again.vm_state == "active"
    assert again.launched_at == first.launched_at
