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
from agent.rpc.journal import Resolved, instance_asks, instance_records, resolve_unfinished
from agent.rpc.manifest import Manifest
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.reply_store import Intent, ReplyStore
from agent.rpc.resolvers import RESOLVERS, Found, Verdict, verdict
from agent.rpc.server import Dispatcher
from agent.transport import Delivery, Outcome
from schemas import DecodeLimits, default_registry
from schemas.objects import Instance
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.network import NetworkInfo
from tests.actors.instance.fakes import (
    FakeInstanceDriver,
    RecordingSink,
    file_volume,
    image_meta,
    instance,
    make_actor,
    vif,
)

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
    for method in ("rescue", "unrescue", "set_admin_password", "inject_file", "soft_delete"):
        assert method not in RESOLVERS
        assert verdict(method, {}, instance(UUID, vm_state="active")) is Verdict.INTERRUPTED


def test_a_swap_is_done_when_the_new_volume_is_recorded_and_never_run_again() -> None:
    args = {
        "old_connection_info": file_volume(volume_id="vol-1"),
        "new_connection_info": file_volume("/var/lib/volumes/vol-2", volume_id="vol-2"),
        "mountpoint": "/dev/vdb",
    }
    assert verdict(
        "swap_volume", args, instance(UUID, block_device_mappings=mapped(vdb="vol-2"))
    ) is (Verdict.DONE)
    old = instance(UUID, block_device_mappings=mapped(vdb="vol-1"))
    assert verdict("swap_volume", args, old) is Verdict.INTERRUPTED
    assert verdict("swap_volume", args, None) is Verdict.INTERRUPTED


def test_a_reboot_is_run_again_only_when_hard_and_its_guest_does_not_run() -> None:
    hard = {"reboot_type": "HARD"}
    for power in ("shutdown", "crashed"):
        assert verdict("reboot", hard, instance(UUID, power_state=power)) is Verdict.RUN_AGAIN
    # Running: no state tells a reboot that happened from one that did not.
    assert verdict("reboot", hard, instance(UUID, power_state="running")) is Verdict.INTERRUPTED
    assert verdict("reboot", hard, instance(UUID, power_state="paused")) is Verdict.INTERRUPTED
    assert verdict("reboot", hard, None) is Verdict.INTERRUPTED
    for soft in ({"reboot_type": "SOFT"}, {}):
        for power in ("shutdown", "running"):
            record = instance(UUID, power_state=power, task_state="rebooting")
            assert verdict("reboot", soft, record) is Verdict.INTERRUPTED


def test_a_suspend_is_done_only_with_the_guest_shut_off_and_its_managed_save_image() -> None:
    saved, none = Found(managed_save=True), Found(managed_save=False)
    off = instance(UUID, power_state="shutdown")
    running = instance(UUID, power_state="running")
    assert verdict("suspend", {}, off, saved) is Verdict.DONE
    assert verdict("suspend", {}, off, none) is Verdict.INTERRUPTED
    assert verdict("suspend", {}, off) is Verdict.INTERRUPTED  # not read: not known
    assert verdict("suspend", {}, running, none) is Verdict.RUN_AGAIN
    assert verdict("suspend", {}, instance(UUID, power_state="paused"), saved) is (
        Verdict.INTERRUPTED
    )
    assert verdict("suspend", {}, None, saved) is Verdict.INTERRUPTED
    assert verdict("resume", {}, running, none) is Verdict.DONE
    assert verdict("resume", {}, off, saved) is Verdict.RUN_AGAIN
    assert verdict("resume", {}, off, none) is Verdict.INTERRUPTED
    assert verdict("resume", {}, None) is Verdict.INTERRUPTED


def test_a_snapshot_is_done_only_when_its_whole_image_was_found() -> None:
    args = {"image_id": "img-1"}
    record = instance(UUID)
    found = Found(snapshot_image="/images/img-1.qcow2")
    assert verdict("snapshot", args, record, found) is Verdict.DONE
    assert verdict("snapshot", args, record) is Verdict.INTERRUPTED
    assert verdict("snapshot", args, None, found) is Verdict.INTERRUPTED


def test_an_interface_is_done_by_whether_the_record_has_its_port() -> None:
    port = vif(port_id="3c4d5e6f-0000-4000-8000-000000000002", mac="fa:16:3e:00:00:02")
    attached = instance(UUID, network_info=NetworkInfo(objects=[vif(), port]))
    without = instance(UUID, network_info=NetworkInfo(objects=[vif()]))
    assert verdict("attach_interface", {"vif": port}, attached) is Verdict.DONE
    assert verdict("attach_interface", {"vif": port}, without) is Verdict.RUN_AGAIN
    assert verdict("attach_interface", {"vif": port}, None) is Verdict.RUN_AGAIN
    assert verdict("detach_interface", {"vif": port}, without) is Verdict.DONE
    assert verdict("detach_interface", {"vif": port}, attached) is Verdict.RUN_AGAIN
    assert verdict("detach_interface", {"vif": port}, None) is Verdict.RUN_AGAIN


def test_a_metadata_change_is_done_when_the_record_holds_what_its_diff_says() -> None:
    record = instance(UUID, metadata={"role": "db", "tier": "1"})
    assert verdict("change_instance_metadata", {"diff": {"role": ["+", "db"]}}, record) is (
        Verdict.DONE
    )
    assert verdict("change_instance_metadata", {"diff": {"zone": ["-"]}}, record) is Verdict.DONE
    for diff in ({"role": ["+", "web"]}, {"tier": ["-"]}, {"role": ["db"]}, {}):
        assert verdict("change_instance_metadata", {"diff": diff}, record) is Verdict.RUN_AGAIN
    assert verdict("change_instance_metadata", {"diff": {"a": ["-"]}}, None) is Verdict.RUN_AGAIN


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


def encoded(message_id: str, method: str, **args: object) -> bytes:
    request = Request(
        message_id,
        Kind.CALL,
        method,
        "compute-journal",
        UUID,
        None,
        {"instance": instance(UUID), **args},
        Manifest(default_registry.manifest()),
    )
    return pack(request)


async def resolved_by_an_actor(
    tmp_path: Path, driver: FakeInstanceDriver, requests: list[tuple[str, str, bytes]], *then: str
) -> tuple[list[Resolved], list[Intent]]:
    """The intents of `requests` (message id, method, encoded request) resolved against a
    real instance actor over `driver`, whose guest it spawned and was then asked `then`
    (requests whose replies were never kept); and the intents left."""
    store = await opened(tmp_path / "replies.sqlite")
    try:
        for at, (message_id, method, body) in enumerate(requests):
            digest = request_digest(body)
            await store.begin(Intent(message_id, method, UUID, digest, body, None, float(at)))
        async with ActorSystem(executor=BlockingExecutor(1, "journal-test")) as system:
            ref, _ = make_actor(system, driver, RecordingSink(), uuid=UUID)
            await ref.ask("spawn", {"instance": instance(UUID), "image_meta": image_meta()})
            for method in then:
                await ref.ask(method, {"instance": instance(UUID)})
            dispatcher = await journal_dispatcher(system, store)

            def factory(uuid: str) -> InstanceActor:
                raise AssertionError(f"the actor of {uuid} is there")

            records, asks = instance_records(system, factory), instance_asks(system, factory)
            resolved = await resolve_unfinished(store, dispatcher, records, asks)
        return resolved, await store.unfinished()
    finally:
        await store.aclose()


def answer_of(resolved: Resolved) -> Reply:
    answer = unpack(resolved.reply or b"", default_registry, DecodeLimits())
    assert isinstance(answer, Reply)
    return answer


async def test_snapshots_are_weighed_by_their_files_and_leave_no_partial_one(
    tmp_path: Path,
) -> None:
    driver = FakeInstanceDriver()
    driver.images["img-whole"] = "/images/img-whole.qcow2"
    driver.images[".img-cut.part"] = "/images/.img-cut.qcow2.part-0badc0de"
    requests = [
        (message_id, "snapshot", encoded(message_id, "snapshot", image_id=image_id))
        for message_id, image_id in [("m-whole", "img-whole"), ("m-cut", "img-cut")]
    ]
    resolved, left = await resolved_by_an_actor(tmp_path, driver, requests)
    assert [(r.intent.message_id, r.verdict) for r in resolved] == [
        ("m-whole", Verdict.DONE),
        ("m-cut", Verdict.INTERRUPTED),
    ]
    assert left == []
    assert answer_of(resolved[0]).result == "/images/img-whole.qcow2"
    refusal = answer_of(resolved[1]).error
    assert refusal is not None and refusal.exc_type == "OperationInterrupted"
    assert ".img-cut.part" not in driver.images  # the partial file removed
    assert driver.calls("img-cut") == ["remove_partial_snapshot", "snapshot_image"]


async def test_a_suspend_is_answered_done_by_the_managed_save_its_actor_finds(
    tmp_path: Path,
) -> None:
    driver = FakeInstanceDriver()
    request = ("m-suspend", "suspend", encoded("m-suspend", "suspend"))
    resolved, left = await resolved_by_an_actor(tmp_path, driver, [request], "suspend")
    assert [r.verdict for r in resolved] == [Verdict.DONE]
    assert left == []
    result = answer_of(resolved[0]).result
    assert (result.vm_state, result.power_state) == ("suspended", "shutdown")
    assert driver.calls(UUID).count("has_managed_save") == 1
