"""A message id names one call: re-sent, it is answered from the reply cache; reused for
another method, target or arguments, it is refused with `MessageIdConflict` and nothing runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from agent.errors import MessageIdConflict
from agent.rpc.envelope import Kind, Request, pack
from agent.rpc.manifest import Manifest
from schemas import RequestContext, default_registry

from .conftest import Stack
from .test_rpc_roundtrips import make_instance


def request_body(
    message_id: str,
    method: str,
    args: dict[str, Any],
    *,
    instance: str | None = None,
    kind: Kind = Kind.CALL,
    request_id: str = "req-first",
) -> bytes:
    context = RequestContext(request_id=request_id, deadline=time.time() + 30, is_admin=True)
    manifest = Manifest(default_registry.manifest())
    return pack(Request(message_id, kind, method, "h1", instance, context, args, manifest))


async def call(stack: Stack, body: bytes, message_id: str) -> Any:
    raw = await stack.transport.call("h1", body, message_id=message_id, timeout=5)
    return stack.client._raise_or_result("h1", raw)


async def test_an_id_reused_with_other_arguments_is_refused_and_nothing_runs(
    stack: Stack,
) -> None:
    message_id = str(uuid.uuid4())
    first = request_body(message_id, "set_host_enabled", {"enabled": False})
    assert await call(stack, first, message_id) == "disabled"

    reused = request_body(message_id, "set_host_enabled", {"enabled": True})
    with pytest.raises(MessageIdConflict) as refused:
        await call(stack, reused, message_id)
    assert str(refused.value) == (
        f"message id {message_id!r} was already used for another call ('set_host_enabled'); "
        "this 'set_host_enabled' call was not run: give a new call a new message id"
    )
    assert stack.journal.calls == [("host", "set_host_enabled:False")]
    assert await call(stack, first, message_id) == "disabled"  # the first call's, still


async def test_an_id_reused_for_another_method_is_refused(stack: Stack) -> None:
    message_id = str(uuid.uuid4())
    await call(stack, request_body(message_id, "set_host_enabled", {"enabled": False}), message_id)

    with pytest.raises(MessageIdConflict) as refused:
        await call(stack, request_body(message_id, "list_instance_uuids", {}), message_id)
    assert (refused.value.method, refused.value.first_method) == (
        "list_instance_uuids",
        "set_host_enabled",
    )


async def test_an_id_reused_for_another_instance_is_refused(stack: Stack) -> None:
    message_id = str(uuid.uuid4())
    first_uuid, other_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    first = request_body(
        message_id, "pause", {"instance": make_instance(first_uuid)}, instance=first_uuid
    )
    await call(stack, first, message_id)

    # The same arguments, another target: not the same call.
    other = request_body(
        message_id, "pause", {"instance": make_instance(first_uuid)}, instance=other_uuid
    )
    with pytest.raises(MessageIdConflict):
        await call(stack, other, message_id)
    assert stack.journal.calls == [(first_uuid, "pause")]


async def test_the_same_call_resent_with_a_new_context_is_answered_from_the_cache(
    stack: Stack,
) -> None:
    message_id = str(uuid.uuid4())
    args = {"enabled": False}
    await call(stack, request_body(message_id, "set_host_enabled", args), message_id)

    # A re-send after a timeout carries a new deadline (and request id): the same call.
    resent = request_body(message_id, "set_host_enabled", args, request_id="req-resent")
    assert await call(stack, resent, message_id) == "disabled"
    assert stack.journal.calls == [("host", "set_host_enabled:False")]
    assert stack.dispatcher.stats.duplicates == 1


async def test_a_cast_reusing_a_calls_id_is_dead_lettered_and_does_not_run(stack: Stack) -> None:
    message_id = str(uuid.uuid4())
    await call(stack, request_body(message_id, "set_host_enabled", {"enabled": False}), message_id)

    cast = request_body(message_id, "set_host_enabled", {"enabled": False}, kind=Kind.CAST)
    await stack.transport.cast("h1", cast, message_id=message_id, ttl=None)
    dead: list[tuple[bytes, str]] = []
    async with asyncio.timeout(10):
        while not dead:
            dead = await stack.transport.dead_letters()
            await asyncio.sleep(0.02)
    assert dead == [(cast, "message-id-conflict")]
    assert stack.dispatcher.stats.dead_lettered == 1
    assert stack.journal.calls == [("host", "set_host_enabled:False")]
