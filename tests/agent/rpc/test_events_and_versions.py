"""Events reach subscribers as objects; mixed releases understand each other."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from actors import HOST_ADDRESS, Actor, ActorSystem, BlockingExecutor, handler
from agent.client import ComputeClient
from agent.errors import UnpublishableEvent
from agent.rpc.envelope import Kind
from agent.rpc.events import EventPublisher
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.server import Dispatcher
from agent.transport import Transport
from schemas import (
    DecodeLimits,
    IncompatibleObjectVersion,
    default_registry,
)
from schemas.objects import InstanceInfo
from tests.agent.rpc.widgets import NEW_RELEASE, OLD_RELEASE, WidgetNew, WidgetOld

from .conftest import Stack


class OldReleaseHost(Actor):
    """The host actor of an agent that only knows Widget 1.0."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @handler
    async def describe(self, widget: WidgetOld) -> str:
        self.seen.append(widget.name)
        return f"{widget.name} ({widget.VERSION})"


async def serve_old_release(transport: Transport, host: str) -> tuple[ActorSystem, OldReleaseHost]:
    system = ActorSystem(executor=BlockingExecutor(max_workers=1, name="old-release"))
    actor = OldReleaseHost()
    system.spawn(HOST_ADDRESS, lambda: actor)
    dispatcher = Dispatcher(
        host=host,
        system=system,
        methods=MethodTable({Scope.HOST: OldReleaseHost}),
        instance_factory=lambda uuid: OldReleaseHost(),
        registry=OLD_RELEASE,
        manifest=OLD_RELEASE.manifest(),
        limits=DecodeLimits(),
    )
    await transport.serve(host, dispatcher.handle)
    return system, actor


async def test_published_events_reach_matching_subscribers_as_objects(stack: Stack) -> None:
    publisher = EventPublisher(stack.transport, "h1", default_registry)
    instance_uuid = str(uuid.uuid4())
    stream = await stack.client.subscribe(f"instance.{instance_uuid}.*")
    info = InstanceInfo(state="paused")
    await publisher.publish(f"instance.{uuid.uuid4()}.power_state", InstanceInfo(state="running"))
    await publisher.publish(f"instance.{instance_uuid}.power_state", info)
    event = await asyncio.wait_for(anext(aiter(stream)), 10)
    assert (event.topic, event.sender_host, event.payload) == (
        f"instance.{instance_uuid}.power_state",
        "h1",
        info,
    )
    assert stack.client.host_manifests["h1"] == default_registry.manifest()
    await stream.aclose()


async def test_a_newer_client_back_levels_arguments_once_it_knows_the_agents_manifest(
    transport: Transport,
) -> None:
    system, actor = await serve_old_release(transport, "h1")
    try:
        client = ComputeClient(transport, registry=NEW_RELEASE, default_timeout=10, is_admin=True)
        # The first call is refused as too new; the client learns the manifest and retries.
        reply = await client.call("h1", "describe", {"widget": WidgetNew(name="w1", colour="red")})
        assert reply == "w1 (1.0)"
        assert client.host_manifests["h1"]["Widget"] == "1.0"
        # From now on it back-levels before sending: no refusal round trip.
        assert await client.call("h1", "describe", {"widget": WidgetNew(name="w2")}) == "w2 (1.0)"
        assert actor.seen == ["w1", "w2"]
    finally:
        await system.aclose(timeout=5)


async def test_version_cap_sends_objects_at_the_capped_version(transport: Transport) -> None:
    system, actor = await serve_old_release(transport, "h1")
    try:
        client = ComputeClient(
            transport,
            registry=NEW_RELEASE,
            version_cap={"Widget": "1.0"},
            default_timeout=10,
            is_admin=True,
        )
        assert client.target_manifest("h1")["Widget"] == "1.0"
        assert await client.call("h1", "describe", {"widget": WidgetNew(name="capped")}) == (
            "capped (1.0)"
        )
        assert actor.seen == ["capped"]
    finally:
        await system.aclose(timeout=5)


async def test_an_agent_refuses_a_too_new_object_with_its_manifest(transport: Transport) -> None:
    system, _ = await serve_old_release(transport, "h1")
    try:
        client = ComputeClient(transport, registry=NEW_RELEASE, default_timeout=10, is_admin=True)
        with pytest.raises(IncompatibleObjectVersion) as refused:
            request = client._request(
                Kind.CALL, "h1", "describe", {"widget": WidgetNew(name="too-new")}, None, 10
            )
            await client._call_once("h1", "describe", request, 10)
        assert refused.value.manifest == OLD_RELEASE.manifest()
    finally:
        await system.aclose(timeout=5)


async def test_fanout_honours_the_version_cap_before_any_agent_was_heard(
    transport: Transport,
) -> None:
    system, actor = await serve_old_release(transport, "h1")
    try:
        client = ComputeClient(
            transport,
            registry=NEW_RELEASE,
            version_cap={"Widget": "1.0"},
            default_timeout=10,
            is_admin=True,
        )
        await client.fanout("describe", {"widget": WidgetNew(name="everyone")})
        for _ in range(200):
            if actor.seen:
                break
            await asyncio.sleep(0.02)
        assert actor.seen == ["everyone"]
    finally:
        await system.aclose(timeout=5)


async def test_an_event_from_a_newer_release_is_skipped_and_the_stream_goes_on(
    transport: Transport,
) -> None:
    old_client = ComputeClient(transport, registry=OLD_RELEASE, default_timeout=10)
    newer_agent = EventPublisher(transport, "h9", NEW_RELEASE)
    async with await old_client.subscribe("host.h9.*") as stream:
        await newer_agent.publish("host.h9.widget", WidgetNew(name="too-new"))
        older_agent = EventPublisher(transport, "h9", OLD_RELEASE)
        await older_agent.publish("host.h9.widget", WidgetOld(name="readable"))
        event = await asyncio.wait_for(anext(aiter(stream)), 10)
        assert event.payload == WidgetOld(name="readable")
        assert stream.skipped == 1


async def test_publishing_a_plain_dict_is_refused_at_the_call_and_nothing_is_sent(
    stack: Stack,
) -> None:
    publisher = EventPublisher(stack.transport, "h1", default_registry)
    instance_uuid = str(uuid.uuid4())
    topic = f"instance.{instance_uuid}.power_state"
    async with await stack.client.subscribe(f"instance.{instance_uuid}.*") as stream:
        with pytest.raises(UnpublishableEvent) as refused:
            await publisher.publish(topic, {"state": "running"})  # type: ignore[arg-type]
        assert str(refused.value) == (
            f"cannot publish a dict on {topic!r}: an event is a versioned object "
            "registered with the publisher's registry"
        )
        assert publisher.published == 0
        await publisher.publish(topic, InstanceInfo(state="paused"))
        event = await asyncio.wait_for(anext(aiter(stream)), 10)
        assert event.payload == InstanceInfo(state="paused")  # the first and only event


async def test_an_object_of_a_class_the_publishers_registry_does_not_hold_is_refused(
    transport: Transport,
) -> None:
    old_agent = EventPublisher(transport, "h9", OLD_RELEASE)
    with pytest.raises(UnpublishableEvent) as refused:
        await old_agent.publish("host.h9.widget", WidgetNew(name="other-release"))
    assert str(refused.value) == (
        f"cannot publish a Widget 1.1 of class {WidgetNew.__module__}.WidgetNew on "
        "'host.h9.widget': "
        "an event is a versioned object registered with the publisher's registry"
    )
    assert old_agent.published == 0
