"""A request the last agent was stopped in started within its deadline: its redelivery after
the restart, however late, is not refused as expired. That refusal would be remembered in
place of its intent, and the journal would then find nothing to finish."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.rpc.dedup import ReplyCache
from agent.rpc.envelope import Kind, Reply, Request, pack, request_digest, unpack
from agent.rpc.reply_store import Intent, ReplyStore
from agent.rpc.server import RequestServer
from agent.transport import Delivery
from schemas import DecodeLimits, RequestContext, default_registry, obj_manifest

UUID = "2b3c4d5e-0000-4000-8000-000000000001"


class Served(RequestServer):
    """Runs every request by answering its method's name."""

    async def _serve(self, request: Request, remaining: float | None) -> Any:
        return request.method


def late_pause(message_id: str) -> bytes:
    context = RequestContext(request_id=f"req-{message_id}", deadline=time.time() - 60)
    return pack(Request(message_id, Kind.CALL, "pause", "h", UUID, context, {}))


async def test_a_late_redelivery_of_an_unfinished_request_is_served_not_refused_as_expired(
    tmp_path: Path,
) -> None:
    store = ReplyStore(tmp_path / "replies.sqlite")
    await store.open()
    left = late_pause("left-1")
    digest = request_digest(left)
    await store.begin(Intent("left-1", "pause", UUID, digest, left, None, time.time() - 61))
    cache = ReplyCache(store=store)
    await cache.load()
    limits = DecodeLimits()
    server = Served(
        registry=default_registry, manifest=obj_manifest(default_registry), limits=limits,
        cache=cache,
    )  # fmt: skip

    async def reply_to(body: bytes, message_id: str) -> Reply:
        outcome = await server.handle(Delivery(body, message_id, reply_expected=True))
        assert outcome.reply is not None
        reply = unpack(outcome.reply, default_registry, limits)
        assert isinstance(reply, Reply)
        return reply

    unfinished = await reply_to(left, "left-1")
    assert (unfinished.error, unfinished.result) == (None, "pause")
    # Any other request past its deadline is refused as before.
    other = await reply_to(late_pause("other-1"), "other-1")
    assert other.error is not None and other.error.exc_type == "RequestExpired"
    # Answered once, the id is an ordinary one again: its reply is kept, its intent gone.
    assert not cache.left_unfinished("left-1")
    assert await store.unfinished() == []
    await store.aclose()
