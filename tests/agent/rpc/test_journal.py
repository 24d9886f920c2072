"""The operation journal's parts: intents kept beside the replies (recorded before a handler
runs, replaced by its reply in one transaction, dropped with an unremembered failure, left
by a cancelled one), and the per-method resolvers as pure functions of the instance now."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors import ActorSystem, BlockingExecutor
from actors.host import Readiness
from actors.instance import InstanceActor
from agent.rpc.catalogue import exposed_methods
from agent.rpc.dedup import CallKey, ReplyCache, Settled
from agent.rpc.envelope import Kind, Reply, Request, pack, request_digest, unpack
from agent.rpc.journal import RESOLVERS, Verdict, resolve_unfinished, verdict
from agent.rpc.manifest import Manifest
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.reply_store import Intent, ReplyStore
from agent.rpc.server import Dispatcher
from agent.transport import Delivery, Outcome
from schemas import DecodeLimits, default_registry
from schemas.objects import Instance
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from tests.actors.instance.fakes import file_volume, instance

KEY = CallKey("pause", b"digest")
UUID = "2b3c4d5e-0000-4000-8000-000000000001"


async def opened(path: Path) -> ReplyStore:
    store = ReplyStore(path)
    await store.open()
    return store


async def test_an_intent_begun_while_the_handler_runs_is_replaced_by_its_reply(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "replies.sqlite")
    cache = ReplyCache(store=store, wall_clock=lambda: 1000.0)
    seen: list[list[Intent]] = []

    async def work() -> bytes:
        assert await cache.begin("m-1", UUID, "nova") is None
        seen.append(await store.unfinished())
        return b"paused"

    assert await cache.run_once("m-1", KEY, work, b"request") == (b"paused", False)
    assert seen == [[Intent("m-1", "pause", UUID, b"digest", b"request", "nova", 1000.0)]]
    assert await store.unfinished() == []
    assert [entry.message_id for entry in await store.load(since=0)] == ["m-1"]
    await store.aclose()


async def test_a_failure_not_remembered_drops_its_intent_and_a_query_records_none(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "replies.sqlite")
    cache = ReplyCache(store=store)

    async def fails() -> bytes:
        await cache.begin("m-1", UUID, None)
        assert len(await store.unfinished()) == 1
        raise RuntimeError("libvirt went away")

    with pytest.raises(RuntimeError, match="libvirt went away"):
        await cache.run_once("m-1", KEY, fails, b"request")

    async def query() -> bytes:
        await cache.begin("m-2", UUID, None)
        return b"info"

    await cache.run_once("m-2", CallKey("get_info", b"d"), query, b"request")
    assert await store.unfinished() == []
    await store.aclose()


async def test_an_intent_of_a_handler_cancelled_by_the_stopping_agent_is_left_for_the_next(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "replies.sqlite")
    cache = ReplyCache(store=store)
    begun = asyncio.Event()

    async def hangs() -> bytes:
        await cache.begin("m-1", UUID, None)
        begun.set()
        await asyncio.Event().wait()
        raise AssertionError("never resumed")

    running = asyncio.create_task(cache.run_once("m-1", KEY, hangs, b"request"))
    await begun.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await store.aclose()

    reopened = await opened(tmp_path / "replies.sqlite")
    assert [intent.message_id for intent in await reopened.unfinished()] == ["m-1"]
    await reopened.aclose()


async def test_a_settled_message_id_is_answered_and_a_delivery_waiting_to_run_it_is_told(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "replies.sqlite")
    cache = ReplyCache(store=store)
    waiting = asyncio.Event()
    go = asyncio.Event()
    told: list[Settled | None] = []

    async def redelivered() -> bytes | None:
        waiting.set()
        await go.wait()  # as a cast waits for the host to be ready
        settled = await cache.begin("m-1", UUID, None)
        told.append(settled)
        if settled is not None:
            raise NotRun(settled)  # as the dispatcher does: the handler is not asked
        return b"ran"

    delivery = asyncio.create_task(cache.run_once("m-1", KEY, redelivered, b"request"))
    await waiting.wait()
    assert cache.running("m-1")
    await cache.settle("m-1", KEY, b"paused")
    go.set()
    with pytest.raises(NotRun):
        await delivery
    assert told == [Settled(b"paused")]
    assert await cache.run_once("m-1", KEY, redelivered) == (b"paused", True)
    await store.aclose()

    second = ReplyCache(store=await opened(tmp_path / "replies.sqlite"))
    assert await second.load() == 1
    assert second.store is not None
    await second.store.aclose()


class NotRun(Exception):
    pass


def mapped(**devices: str) -> BlockDeviceMappingList:
    return BlockDeviceMappingList(
        objects=[
            BlockDeviceMapping(device_name=f"/dev/{device}", volume_id=volume)
            for device, volume in devices.items()
        ]
    )


def test_a_pause_is_done_when_the_guest_is_paused_and_run_again_when_it_still_runs() -> None:
    assert verdict("pause", {}, instance(UUID, power_state="paused")) is Verdict.DONE
    assert verdict("pause", {}, instance(UUID, power_state="running")) is Verdict.RUN_AGAIN
    assert verdict("unpause", {}, instance(UUID, power_state="running")) is Verdict.DONE
    assert verdict("power_off", {}, instance(UUID, power_state="running")) is Verdict.RUN_AGAIN
    assert verdict("pause", {}, None) is Verdict.RUN_AGAIN


def test_an_attach_is_done_only_when_that_volume_is_recorded_at_that_device() -> None:
    args = {"connection_info": file_volume(volume_id="vol-1"), "mountpoint": "/dev/vdb"}
    recorded = instance(UUID, block_device_mappings=mapped(vdb="vol-1"))
    other = instance(UUID, block_device_mappings=mapped(vdb="vol-2"))
    assert verdict("attach_volume", args, recorded) is Verdict.DONE
    assert verdict("attach_volume", {**args, "mountpoint": "vdb"}, recorded) is Verdict.DONE
    assert verdict("attach_volume", args, other) is Verdict.RUN_AGAIN
    assert verdict("attach_volume", args, instance(UUID)) is Verdict.RUN_AGAIN
    assert verdict("detach_volume", args, recorded) is Verdict.RUN_AGAIN
    assert verdict("detach_volume", args, instance(UUID)) is Verdict.DONE


def test_a_spawn_is_done_when_active_destroy_runs_again_and_the_rest_are_interrupted() -> None:
    assert verdict("spawn", {}, instance(UUID, vm_state="active")) is Verdict.DONE
    assert verdict("spawn", {}, instance(UUID, vm_state="error")) is Verdict.RUN_AGAIN
    assert verdict("spawn", {}, None) is Verdict.RUN_AGAIN
    assert verdict("destroy", {}, None) is Verdict.RUN_AGAIN
    for method in ("reboot", "snapshot", "rescue", "change_instance_metadata", "suspend"):
        assert method not in RESOLVERS
        assert verdict(method, {}, instance(UUID, vm_state="active")) is Verdict.INTERRUPTED


async def journal_dispatcher(system: ActorSystem, store: ReplyStore) -> Dispatcher:
    return Dispatcher(
        host="compute-journal",
        system=system,
        methods=MethodTable({Scope.INSTANCE: InstanceActor}, exposed=exposed_methods()),
        instance_factory=lambda uuid: InstanceActor(uuid, None, None),  # type: ignore[arg-type]
        registry=default_registry,
        manifest=default_registry.manifest(),
        limits=DecodeLimits(),
        cache=ReplyCache(store=store),
    )


def encoded_pause(message_id: str, kind: Kind = Kind.CALL) -> bytes:
    request = Request(
        message_id,
        kind,
        "pause",
        "compute-journal",
        UUID,
        None,
        {"instance": instance(UUID)},
        Manifest(default_registry.manifest()),
    )
    return pack(request)


async def test_intents_left_are_answered_done_or_interrupted_under_their_message_ids(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "replies.sqlite")
    body = encoded_pause("m-paused")
    digest = request_digest(body)
    await store.begin(Intent("m-paused", "pause", UUID, digest, body, None, 1.0))
    await store.begin(Intent("m-garbled", "pause", UUID, b"d", b"\xc1 not msgpack", None, 2.0))
    asked: list[str] = []

    async def paused(uuid: str) -> Instance:
        asked.append(uuid)
        return instance(UUID, vm_state="paused", power_state="paused")

    async with ActorSystem(executor=BlockingExecutor(1, "journal-test")) as system:
        dispatcher = await journal_dispatcher(system, store)
        resolved = await resolve_unfinished(store, dispatcher, paused)

        async def never() -> bytes:
            raise AssertionError("a resolved message id ran again")

        done, _ = await dispatcher.cache.run_once("m-paused", CallKey("pause", digest), never)
        garbled, _ = await dispatcher.cache.run_once("m-garbled", CallKey("pause", b"d"), never)
    assert [(r.intent.message_id, r.verdict) for r in resolved] == [
        ("m-paused", Verdict.DONE),
        ("m-garbled", Verdict.INTERRUPTED),
    ]
    assert asked == [UUID]
    assert await store.unfinished() == []
    await store.aclose()
    assert done is not None and garbled is not None
    answer = unpack(done, default_registry, DecodeLimits())
    assert isinstance(answer, Reply) and answer.result.power_state == "paused"
    refusal = unpack(garbled, default_registry, DecodeLimits())
    assert isinstance(refusal, Reply) and refusal.error is not None
    assert (refusal.error.exc_type, refusal.error.retryable) == ("OperationInterrupted", False)
    assert refusal.error.message == (
        f"pause 'm-garbled' of instance {UUID} was interrupted by an agent restart; "
        "whether it took effect is not known"
    )


async def test_a_redelivered_cast_waiting_for_the_host_is_not_run_once_its_intent_is_done(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "replies.sqlite")
    body = encoded_pause("m-cast", Kind.CAST)
    await store.begin(Intent("m-cast", "pause", UUID, request_digest(body), body, None, 1.0))

    async def paused(uuid: str) -> Instance:
        return instance(UUID, vm_state="paused", power_state="paused")

    async with ActorSystem(executor=BlockingExecutor(1, "journal-test")) as system:
        dispatcher = await journal_dispatcher(system, store)
        dispatcher.is_ready = Readiness()  # the host still adopting its guests
        redelivered = asyncio.create_task(
            dispatcher.handle(Delivery(body, "m-cast", reply_expected=False))
        )
        await asyncio.sleep(0.05)  # decoded, and waiting for the host to be ready
        assert dispatcher.cache.running("m-cast")
        resolved = await resolve_unfinished(store, dispatcher, paused)
        dispatcher.is_ready.set_ready()
        outcome = await redelivered
    assert [r.verdict for r in resolved] == [Verdict.DONE]
    assert outcome == Outcome()  # acknowledged
    # Not run: this actor, with no driver, would have refused it (NotSupported).
    assert (dispatcher.stats.duplicates, dispatcher.stats.errors) == (1, 0)
    assert await store.unfinished() == []
    await store.aclose()
