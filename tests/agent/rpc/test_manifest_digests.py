"""Calls name the sender's manifest by digest once the other side has had it in full; a side
that has not (restarted, upgraded) gets it in full again, and nothing runs twice."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from agent.client import ComputeClient
from agent.rpc import manifest as manifests
from agent.rpc.manifest import Manifest, UnknownManifestDigest
from agent.transport import Transport
from schemas import DecodeError, ObjectRegistry
from schemas.objects import RequestContext

from .conftest import Stack

# A client of another release than the agent's, so the two manifests (and digests) differ even
# though both sides share this process and its table of known digests.
OTHER_RELEASE = ObjectRegistry()
OTHER_RELEASE.register(RequestContext)

MANIFEST_AT = {"request": 8, "reply": 5}  # index of the manifest in each envelope array


class Wire:
    """The envelopes a client's transport sends and receives, by their manifest field."""

    def __init__(self, transport: Transport) -> None:
        self.requests: list[str] = []
        self.replies: list[str] = []
        self.message_ids: list[str] = []
        self._call = transport.call
        transport.call = self.call  # type: ignore[method-assign]

    async def call(self, host: str, body: bytes, **kwargs: Any) -> bytes:
        self.requests.append(manifest_field(body, "request"))
        self.message_ids.append(kwargs["message_id"])
        reply = await self._call(host, body, **kwargs)
        self.replies.append(manifest_field(reply, "reply"))
        return reply


def manifest_field(body: bytes, kind: str) -> str:
    envelope = msgpack.unpackb(body, strict_map_key=False)
    value = envelope[MANIFEST_AT[kind]]
    assert isinstance(value, str)
    return value


def is_digest(text: str) -> bool:
    return text.startswith("#") and len(text) == 17


async def test_calls_after_the_first_name_both_manifests_by_digest(stack: Stack) -> None:
    wire = Wire(stack.transport)
    for enabled in (True, False, True):
        await stack.client.call("h1", "set_host_enabled", {"enabled": enabled})

    assert wire.requests[0] == stack.client.manifest.wire
    assert wire.replies[0] == stack.dispatcher.manifest.wire
    assert wire.requests[1:] == [stack.client.manifest.digest] * 2
    assert wire.replies[1:] == [stack.dispatcher.manifest.digest] * 2
    assert all(is_digest(text) for text in wire.requests[1:] + wire.replies[1:])
    assert stack.client.host_manifests["h1"].wire == stack.dispatcher.manifest.wire


async def test_casts_always_carry_the_manifest_in_full(stack: Stack) -> None:
    await stack.client.call("h1", "set_host_enabled", {"enabled": True})
    sent: list[str] = []
    cast = stack.transport.cast

    async def record(host: str, body: bytes, **kwargs: Any) -> None:
        sent.append(manifest_field(body, "request"))
        await cast(host, body, **kwargs)

    stack.transport.cast = record  # type: ignore[method-assign]
    await stack.client.cast("h1", "set_host_enabled", {"enabled": False})
    # A refused cast has nobody to tell: it cannot depend on what the agent remembers.
    assert sent == [stack.client.manifest.wire]


async def other_client(stack: Stack) -> ComputeClient:
    """A client of another release that has made two calls: its manifest, the agent's, and
    what it sends the agent are all known and cached on both sides."""
    client = ComputeClient(
        stack.transport, registry=OTHER_RELEASE, default_timeout=10, is_admin=True
    )
    for _ in range(2):
        await client.call("h1", "set_host_enabled", {"enabled": True})
    assert client.manifest.digest != stack.dispatcher.manifest.digest
    return client


def forget(monkeypatch: pytest.MonkeyPatch, manifest: Manifest) -> None:
    """This process no longer knows `manifest` by its digest (until it reads it in full)."""
    known = dict(manifests._BY_DIGEST)
    del known[manifest.digest]
    monkeypatch.setattr(manifests, "_BY_DIGEST", known)
    manifests._parse.cache_clear()


async def test_an_agent_that_forgot_the_digest_refuses_and_the_call_is_sent_in_full(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await other_client(stack)
    wire = Wire(stack.transport)
    # As after an agent restart: the client's digest is unknown on the agent's side.
    forget(monkeypatch, client.manifest)
    stack.journal.calls.clear()

    assert await client.call("h1", "set_host_enabled", {"enabled": False}) == "disabled"

    assert wire.requests == [client.manifest.digest, client.manifest.wire]
    # Refused before it ran: executed once, not twice; sent again under the same id, so an
    # agent that had run it would answer from its reply cache.
    assert stack.journal.calls == [("host", "set_host_enabled:False")]
    assert wire.message_ids[0] == wire.message_ids[1]
    await client.call("h1", "set_host_enabled", {"enabled": True})
    assert wire.requests[-1] == client.manifest.digest


async def test_a_reply_naming_an_unknown_manifest_is_still_read_and_the_next_call_is_in_full(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await other_client(stack)
    wire = Wire(stack.transport)
    # The client has not seen the agent's manifest (as if the agent had been upgraded), while
    # the agent still knows the client's.
    forget(monkeypatch, stack.dispatcher.manifest)

    assert await client.call("h1", "set_host_enabled", {"enabled": False}) == "disabled"
    assert await client.call("h1", "set_host_enabled", {"enabled": True}) == "enabled"
    assert await client.call("h1", "set_host_enabled", {"enabled": True}) == "enabled"

    assert wire.requests == [client.manifest.digest, client.manifest.wire, client.manifest.digest]
    assert wire.replies == [
        stack.dispatcher.manifest.digest,
        stack.dispatcher.manifest.wire,
        stack.dispatcher.manifest.digest,
    ]
    assert client.host_manifests["h1"].wire == stack.dispatcher.manifest.wire


async def test_an_agent_of_a_release_before_digests_gets_every_call_in_full(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ComputeClient(
        stack.transport, registry=OTHER_RELEASE, default_timeout=10, is_admin=True
    )
    await client.call("h1", "set_host_enabled", {"enabled": True})
    wire = Wire(stack.transport)

    def older_parser(text: object) -> Manifest:
        # What a release before digests makes of one: a malformed manifest entry.
        if isinstance(text, str) and text.startswith("#"):
            raise DecodeError(reason=f"malformed manifest entry {text!r}")
        return original(text)

    original = Manifest.from_wire
    monkeypatch.setattr(Manifest, "from_wire", staticmethod(older_parser))
    stack.journal.calls.clear()
    for enabled in (False, True, False):
        await client.call("h1", "set_host_enabled", {"enabled": enabled})

    assert wire.requests == [client.manifest.digest] + [client.manifest.wire] * 3
    assert stack.journal.calls == [
        ("host", "set_host_enabled:False"),
        ("host", "set_host_enabled:True"),
        ("host", "set_host_enabled:False"),
    ]


def test_an_unknown_digest_is_a_typed_decode_error_and_a_known_one_resolves() -> None:
    manifest = Manifest({"Instance": "1.2", "Flavor": "1.1"})
    assert Manifest.from_wire(manifest.digest) is manifest
    with pytest.raises(UnknownManifestDigest, match="unknown manifest digest #0123"):
        Manifest.from_wire("#0123456789abcdef")
