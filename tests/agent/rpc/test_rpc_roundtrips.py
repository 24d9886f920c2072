"""RPC over each transport: calls, casts, fanout, typed errors, deadlines, de-duplication."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from actors import HandlerFailed
from agent.errors import (
    AgentInitializing,
    CallTimeout,
    IncompatibleRpcVersion,
    InstanceInvalidState,
    InstanceNotFound,
    InvalidArguments,
    RequestExpired,
    UnknownMethod,
)
from agent.rpc.envelope import Kind, Request, pack
from schemas import EncodeError, IncompatibleObjectVersion, RequestContext
from schemas.objects import Flavor, Instance, InstanceInfo

from .conftest import Journal, Stack, serve


def make_instance(instance_uuid: str) -> Instance:
    flavor = Flavor(
        flavorid="m1.tiny", name="m1.tiny", memory_mb=64, vcpus=1, root_gb=1, ephemeral_gb=0
    )
    return Instance(
        uuid=instance_uuid,
        name=f"instance-{instance_uuid[:8]}",
        vm_state="active",
        flavor=flavor,
        memory_mb=64,
        vcpus=1,
        root_gb=1,
    )


async def test_an_instance_call_reaches_that_instances_actor_and_returns_an_object(
    stack: Stack,
) -> None:
    instance_uuid = str(uuid.uuid4())
    info = await stack.client.call(
        "h1", "get_info", {"instance": make_instance(instance_uuid)}, instance=instance_uuid
    )
    assert isinstance(info, InstanceInfo)
    assert (info.state, info.max_mem_kb, info.num_cpu) == ("running", 65536, 1)
    assert stack.journal.calls == [(instance_uuid, "get_info")]


async def test_a_host_call_reaches_the_host_actor(stack: Stack) -> None:
    assert await stack.client.call("h1", "set_host_enabled", {"enabled": False}) == "disabled"


async def test_a_typed_error_on_the_agent_is_raised_as_the_same_class_with_its_fields(
    stack: Stack,
) -> None:
    instance_uuid = str(uuid.uuid4())
    args = {"instance": make_instance(instance_uuid)}
    await stack.client.call("h1", "pause", args, instance=instance_uuid)
    with pytest.raises(InstanceInvalidState) as caught:
        await stack.client.call("h1", "pause", args, instance=instance_uuid)
    assert caught.value.message == (
        f"cannot pause instance {instance_uuid} while power_state is 'paused'"
    )
    assert caught.value.state == "paused"


async def test_a_foreign_exception_comes_back_as_handler_failed_naming_its_class(
    stack: Stack,
) -> None:
    instance_uuid = str(uuid.uuid4())
    with pytest.raises(HandlerFailed, match="ZeroDivisionError: division by zero"):
        await stack.client.call("h1", "crash", instance=instance_uuid)


@pytest.mark.parametrize(
    ("method", "args", "instance", "error", "message"),
    [
        ("reboot_everything", {}, None, UnknownMethod, "unknown method 'reboot_everything'"),
        ("pause", {}, "uuid", InvalidArguments, "missing argument 'instance'"),
        (
            "pause",
            {"instance": "not-an-object"},
            "uuid",
            InvalidArguments,
            "argument 'instance' must be Instance, not str",
        ),
        ("pause", {"instance": None}, "not-a-uuid", InvalidArguments, "is not a UUID"),
        ("set_host_enabled", {"enabled": 1}, None, InvalidArguments, "must be bool, not int"),
    ],
)
async def test_bad_requests_are_refused_typed_and_nothing_is_executed(
    stack: Stack,
    method: str,
    args: dict[str, object],
    instance: str | None,
    error: type[Exception],
    message: str,
) -> None:
    if instance == "uuid":
        instance = str(uuid.uuid4())
    with pytest.raises(error, match=message):
        await stack.client.call("h1", method, args, instance=instance)
    assert stack.journal.calls == []
    assert [a for a in stack.system.addresses() if a.startswith("instance:")] == []


async def test_a_request_past_its_deadline_is_not_executed(stack: Stack) -> None:
    instance_uuid = str(uuid.uuid4())
    request = Request(
        message_id=str(uuid.uuid4()),
        kind=Kind.CALL,
        method="pause",
        host="h1",
        instance=instance_uuid,
        context=RequestContext(request_id="req-late", deadline=1.0),
        args={"instance": make_instance(instance_uuid)},
    )
    raw = await stack.transport.call("h1", pack(request), message_id=request.message_id, timeout=5)
    with pytest.raises(RequestExpired, match="expired before it was started"):
        stack.client._raise_or_result("h1", raw)
    assert stack.journal.calls == []


async def test_a_call_whose_handler_outlives_the_deadline_times_out_instead_of_hanging(
    stack: Stack,
) -> None:
    with pytest.raises(CallTimeout):
        await stack.client.call("h1", "slow", instance=str(uuid.uuid4()), timeout=0.5)


async def test_a_redelivered_call_runs_once_and_gets_the_first_reply(stack: Stack) -> None:
    instance_uuid = str(uuid.uuid4())
    request = stack.client._request(
        Kind.CALL, "h1", "pause", {"instance": make_instance(instance_uuid)}, instance_uuid, 10
    )
    body = pack(request)
    first = await stack.transport.call("h1", body, message_id=request.message_id, timeout=5)
    second = await stack.transport.call("h1", body, message_id=request.message_id, timeout=5)
    assert first == second
    assert stack.journal.calls == [(instance_uuid, "pause")]
    assert stack.dispatcher.stats.duplicates == 1


async def test_casts_to_one_instance_run_in_order(stack: Stack) -> None:
    instance_uuid = str(uuid.uuid4())
    args = {"instance": make_instance(instance_uuid)}
    for _ in range(3):
        await stack.client.cast("h1", "get_info", args, instance=instance_uuid)
    await stack.client.cast("h1", "pause", args, instance=instance_uuid)
    await wait_until(lambda: len(stack.journal.calls) == 4)
    assert [call for _, call in stack.journal.calls] == ["get_info"] * 3 + ["pause"]


async def test_fanout_reaches_every_agent(stack: Stack) -> None:
    other_journal = Journal()
    other_system, _ = await serve(stack.transport, "h2", other_journal)
    try:
        await stack.client.fanout("set_host_enabled", {"enabled": False})
        await wait_until(lambda: stack.journal.calls and other_journal.calls)
        assert stack.journal.calls == other_journal.calls == [("host", "set_host_enabled:False")]
    finally:
        await other_system.aclose(timeout=5)


async def test_the_agent_tells_its_object_manifest_on_request(stack: Stack) -> None:
    manifest = await stack.client.get_object_manifest("h1")
    assert manifest["Instance"] == Instance.VERSION
    assert stack.client.host_manifests["h1"] == manifest


async def wait_until(predicate: object, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        # Polls: the condition lives in another actor's state, with no event to wait on.
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("version", ["2.0", "1.9", "one"])
async def test_a_request_for_an_rpc_api_the_agent_does_not_serve_is_refused(
    stack: Stack, version: str
) -> None:
    request = stack.client._request(
        Kind.CALL, "h1", "set_host_enabled", {"enabled": False}, None, 10
    )
    request.rpc_version = version
    raw = await stack.transport.call("h1", pack(request), message_id=request.message_id, timeout=5)
    with pytest.raises(IncompatibleRpcVersion, match=f"RPC API version {version} is not served"):
        stack.client._raise_or_result("h1", raw)
    assert stack.journal.calls == []


async def test_a_handlers_own_version_error_is_not_retried_by_the_client(stack: Stack) -> None:
    with pytest.raises(IncompatibleObjectVersion, match="Instance"):
        await stack.client.call("h1", "stale_save")
    assert stack.journal.calls == [("host", "stale_save")]


async def test_a_result_that_cannot_travel_comes_back_as_a_typed_error(stack: Stack) -> None:
    with pytest.raises(EncodeError):
        await stack.client.call("h1", "unsendable", timeout=5)
    assert stack.journal.calls == [("host", "unsendable")]


async def test_a_retryable_error_is_not_remembered_so_a_redelivery_runs_again(
    stack: Stack,
) -> None:
    request = stack.client._request(Kind.CALL, "h1", "not_ready_once", {}, None, 10)
    body = pack(request)
    first = await stack.transport.call("h1", body, message_id=request.message_id, timeout=5)
    with pytest.raises(AgentInitializing):
        stack.client._raise_or_result("h1", first)
    second = await stack.transport.call("h1", body, message_id=request.message_id, timeout=5)
    assert stack.client._raise_or_result("h1", second) == "ready"
    assert len(stack.journal.calls) == 2


async def test_no_actor_is_kept_for_an_instance_the_host_does_not_have(stack: Stack) -> None:
    for _ in range(5):
        unknown = str(uuid.uuid4())
        with pytest.raises(InstanceNotFound, match=unknown):
            await stack.client.call("h1", "forget", instance=unknown)
    assert [a for a in stack.system.addresses() if a.startswith("instance:")] == []
