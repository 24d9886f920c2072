"""Poison messages end in the dead-letter queue or an error reply; the next request is served."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import pytest

from agent.errors import RemoteError
from agent.rpc.envelope import ENVELOPE_VERSION, Kind
from schemas import DecodeError, DecodeLimits, default_registry
from schemas._wire import OBJECT_EXT, object_header
from schemas.objects import InstanceInfo

from .conftest import Stack
from .test_rpc_roundtrips import wait_until


def request_body(args: dict[str, object], method: str = "set_host_enabled") -> bytes:
    context = [
        msgpack.ExtType(OBJECT_EXT, object_header("RequestContext", "1.0")),
        {"request_id": "req-poison"},
    ]
    return msgpack.packb(
        [
            ENVELOPE_VERSION,
            int(Kind.CALL),
            str(uuid.uuid4()),
            method,
            "h1",
            None,
            context,
            args,
            default_registry.manifest(),
            "1.0",
        ]
    )


def instance_info_with(field: str, value: object) -> msgpack.ExtType | list[object]:
    header = msgpack.ExtType(OBJECT_EXT, object_header("InstanceInfo", InstanceInfo.VERSION))
    return [header, {"state": "running", field: value}]


POISON = {
    "garbage": b"\xc1\xff\x00 not msgpack at all",
    "truncated": request_body({"enabled": True})[:-7],
    "not-an-envelope": msgpack.packb({"method": "set_host_enabled"}),
    "wrong-field-type": request_body({"enabled": True, "info": instance_info_with("num_cpu", "x")}),
    "unknown-object": request_body(
        {"enabled": [msgpack.ExtType(OBJECT_EXT, object_header("Nonsense", "1.0")), {}]}
    ),
    "oversized": request_body({"enabled": True, "padding": "x" * 70_000}),
}


@pytest.mark.parametrize("kind", sorted(POISON))
async def test_a_poison_call_gets_a_typed_error_reply_and_serving_goes_on(
    stack: Stack, kind: str
) -> None:
    stack.dispatcher.limits = DecodeLimits(max_size=64 * 1024)
    raw = await stack.transport.call("h1", POISON[kind], message_id=f"poison-{kind}", timeout=5)
    with pytest.raises(DecodeError) as refused:
        stack.client._raise_or_result("h1", raw)
    assert refused.value.reason
    assert await stack.client.call("h1", "set_host_enabled", {"enabled": True}) == "enabled"
    assert stack.journal.calls == [("host", "set_host_enabled:True")]


async def test_poison_casts_are_dead_lettered_and_the_next_cast_is_served(stack: Stack) -> None:
    stack.dispatcher.limits = DecodeLimits(max_size=64 * 1024)
    for kind, body in sorted(POISON.items()):
        await stack.transport.cast("h1", body, message_id=f"poison-{kind}", ttl=None)
    await stack.client.cast("h1", "set_host_enabled", {"enabled": False})
    await wait_until(lambda: stack.journal.calls)
    assert stack.journal.calls == [("host", "set_host_enabled:False")]
    dead: list[tuple[bytes, str]] = []
    for _ in range(50):
        dead += await stack.transport.dead_letters()
        if len(dead) == len(POISON):
            break
        await asyncio.sleep(0.05)
    # Each keeps its first 64 KiB (the oversized one is cut).
    kept = sorted((body[: 64 * 1024], "undecodable") for body in POISON.values())
    assert sorted(dead) == kept
    assert len(POISON["oversized"]) > 64 * 1024


def test_an_unknown_remote_error_class_becomes_remote_error() -> None:
    from agent.rpc.remote_errors import ErrorRegistry, WireError

    error = ErrorRegistry().rebuild(WireError("BrandNewError", "from a newer agent", {}, False))
    assert isinstance(error, RemoteError)
    assert error.message == "remote BrandNewError: from a newer agent"
