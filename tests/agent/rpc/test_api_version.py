"""The RPC API version a client sends: its cap, and the step down to what an agent serves,
as policy with explicit inputs (no bus)."""

from __future__ import annotations

import pytest

from agent.client import ComputeClient
from agent.errors import IncompatibleRpcVersion, InvalidRpcVersionCap
from agent.rpc.api_version import (
    METHOD_VERSIONS,
    RPC_API_VERSION,
    RpcVersions,
    capped_rpc_version,
    negotiated,
    served_instead,
    version_for,
)
from agent.rpc.catalogue import CATALOGUE, Status
from agent.rpc.envelope import Kind, Request
from agent.transport import InProcessBus
from schemas import parse_version


@pytest.mark.parametrize(
    ("current", "cap", "sent"), [("1.2", None, "1.2"), ("1.2", "1.0", "1.0"), ("1.2", "1.2", "1.2")]
)
def test_a_client_sends_the_older_of_its_release_and_its_cap(
    current: str, cap: str | None, sent: str
) -> None:
    assert capped_rpc_version(current, cap) == sent


@pytest.mark.parametrize(
    ("cap", "reason"),
    [
        ("1", "it is not of the form 'MAJOR.MINOR'"),
        ("1.0.0", "it is not of the form 'MAJOR.MINOR'"),
        (" 1.0", "it is not of the form 'MAJOR.MINOR'"),
        ("1.3", "it is newer than this release's RPC API version 1.2"),
        ("2.0", "it is of another major than this release's RPC API version 1.2"),
        ("0.9", "it is of another major than this release's RPC API version 1.2"),
    ],
)
def test_a_cap_this_release_cannot_send_is_refused_naming_it(cap: str, reason: str) -> None:
    with pytest.raises(InvalidRpcVersionCap) as refused:
        capped_rpc_version("1.2", cap)
    assert str(refused.value) == f"RPC API version cap {cap!r} cannot be used: {reason}"


def test_a_client_is_refused_a_cap_where_it_is_built() -> None:
    with pytest.raises(InvalidRpcVersionCap, match=r"RPC API version cap '1\.x' cannot be used"):
        ComputeClient(InProcessBus(), rpc_version_cap="1.x")
    assert ComputeClient(InProcessBus(), rpc_version_cap=RPC_API_VERSION).rpc_versions.own == (
        RPC_API_VERSION
    )


@pytest.mark.parametrize(
    ("sent", "served", "again"),
    [
        ("1.3", "1.1", "1.1"),
        ("1.3", "1.3", None),  # nothing older to step down to
        ("1.3", "1.4", None),
        ("1.3", "2.0", None),
        ("2.1", "1.9", None),
        ("1.3", "one", None),
        ("1.3", None, None),
    ],
)
def test_a_refusal_is_sent_again_only_at_an_older_minor_of_the_same_major(
    sent: str, served: object, again: str | None
) -> None:
    assert served_instead(sent, served) == again


def test_each_host_keeps_its_version_and_a_fanout_takes_the_oldest() -> None:
    versions = RpcVersions("1.3")
    assert versions.learn("h1", "1.3", "1.1") == "1.1"
    assert versions.learn("h2", "1.3", "1.2") == "1.2"
    assert (versions.for_host("h1"), versions.for_host("h3"), versions.for_all()) == (
        "1.1",
        "1.3",
        "1.1",
    )
    versions.forget("h1")
    assert (versions.for_host("h1"), versions.for_all()) == ("1.3", "1.2")


class ScriptedAgent:
    """Answers each send with the next scripted refusal (requested, served), then "done"."""

    def __init__(self, request: Request, refusals: list[tuple[str, str]]) -> None:
        self.request = request
        self.refusals = refusals
        self.sent: list[tuple[str, str]] = []

    async def send(self) -> str:
        self.sent.append((self.request.rpc_version, self.request.message_id))
        if self.refusals:
            requested, served = self.refusals.pop(0)
            raise IncompatibleRpcVersion(requested=requested, served=served)
        return "done"


def request_at(version: str) -> Request:
    return Request("key", Kind.CALL, "pause", "h1", None, None, {}, rpc_version=version)


async def test_a_refused_call_is_sent_once_more_at_the_served_version_under_its_id() -> None:
    versions, request = RpcVersions("1.1"), request_at("1.1")
    agent = ScriptedAgent(request, [("1.1", "1.0")])
    assert await negotiated(versions, "h1", request, agent.send) == "done"
    assert agent.sent == [("1.1", "key"), ("1.0", "key")]
    assert versions.for_host("h1") == "1.0"


async def test_a_second_refusal_of_the_version_sent_is_final() -> None:
    versions, request = RpcVersions("1.2"), request_at("1.2")
    agent = ScriptedAgent(request, [("1.2", "1.1"), ("1.1", "1.0")])
    with pytest.raises(IncompatibleRpcVersion, match=r"RPC API version 1\.1 is not served"):
        await negotiated(versions, "h1", request, agent.send)
    assert agent.sent == [("1.2", "key"), ("1.1", "key")]


async def test_a_refusal_an_agent_of_0_1_0_remembered_is_answered_under_a_derived_id() -> None:
    # Such an agent remembers its refusal of "key" at 1.1 and answers the resend at 1.0 with
    # it: the call gets an id of its own, derived from the key, so a later resend under the
    # key (sent at 1.0 from then on) is answered from that entry.
    versions, request = RpcVersions("1.1"), request_at("1.1")
    agent = ScriptedAgent(request, [("1.1", "1.0"), ("1.1", "1.0")])
    assert await negotiated(versions, "h1", request, agent.send) == "done"
    assert agent.sent == [("1.1", "key"), ("1.0", "key"), ("1.0", "key@rpc-1.0")]

    again = request_at(versions.for_host("h1"))
    agent = ScriptedAgent(again, [("1.1", "1.0")])
    assert await negotiated(versions, "h1", again, agent.send) == "done"
    assert agent.sent == [("1.0", "key"), ("1.0", "key@rpc-1.0")]


def test_a_method_of_the_first_release_is_sent_at_1_0_and_a_newer_one_at_its_own() -> None:
    assert version_for("set_host_enabled", RPC_API_VERSION) == "1.0"
    assert version_for("instance_claim", RPC_API_VERSION) == "1.1"
    # Capped below what the method needs: sent at the cap, and refused as unknown there.
    assert version_for("instance_claim", "1.0") == "1.0"


def test_every_method_newer_than_the_first_release_names_its_version() -> None:
    served = {e.method for e in CATALOGUE if e.status is not Status.PLANNED}
    tracker = {e.method for e in CATALOGUE if e.scope == "tracker"}
    assert set(METHOD_VERSIONS) <= served
    assert tracker <= set(METHOD_VERSIONS)
    assert all(parse_version(v) <= parse_version(RPC_API_VERSION) for v in METHOD_VERSIONS.values())
