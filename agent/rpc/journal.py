"""The operation journal: what becomes, at the next start, of an operation the agent was
stopped in.

Before a state-changing instance handler is asked to run, the dispatcher records its
`Intent` (message id, method, instance, the request's digest and encoded body, the sender
the transport verified, when it started) in the reply store's SQLite file
(`ReplyCache.begin`); the reply, when kept, replaces it in the same transaction; a failure
that is answered and not remembered (a retryable one) drops it. So an intent found at start
is an operation whose handler ran, or was about to, when the agent stopped, and whose caller
never heard how it ended.

After adoption, before the host serves instance requests, `resolve_unfinished` weighs each
one against the instance as it is now (`current_record`: its record, the power state read
again) with the pure per-method resolvers of `RESOLVERS`:

- `DONE`: the effect is there (the guest paused for `pause`, the volume recorded at its
  device for `attach_volume`): the request is answered with the instance now, as its
  handler would have answered it;
- `RUN_AGAIN`: the effect is not there, or only part of it, and serving the request again
  completes it without doing anything twice (the handler of each such method is idempotent
  forward: docs/recovery.md): it is served again now, under its message id, past its
  deadline (it started within it) and the reply its handler gives is kept;
- `INTERRUPTED`: any method without a resolver (reboot, snapshot, rescue, resize, ...):
  answered `OperationInterrupted`, which is not retryable: the answer for that message id is
  final; whether the effect happened is for the caller to look at before it sends a new
  request under a new id.

Either way the outcome is kept as the message id's reply: the caller's request sent again
(or redelivered by the broker) is answered with it and never runs a second time. A
redelivered cast already waiting for the host when its intent is resolved is not run
(`Settled`), or, for `RUN_AGAIN`, is itself the run.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from actors import Actor, ActorSystem, instance_address
from agent.errors import OperationInterrupted
from agent.rpc.dedup import CallKey
from agent.rpc.envelope import Reply, Request, pack, unpack
from agent.rpc.remote_errors import error_to_wire
from agent.rpc.reply_store import Intent, ReplyStore
from agent.rpc.server import Dispatcher
from schemas.errors import SchemaError, VirtactorError
from schemas.objects.enums import PowerState, VMState
from schemas.objects.instance import Instance
from schemas.objects.network import VIF
from schemas.objects.volume import VolumeConnection

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    DONE = "done"
    RUN_AGAIN = "run again"
    INTERRUPTED = "interrupted"


@dataclass(slots=True, frozen=True)
class Found:
    """What the state says beyond the record, read only for the methods whose resolver
    needs it (`FACTS`): whether libvirt holds a managed save image of the guest, the path
    of a snapshot's whole image (its partial files already removed)."""

    managed_save: bool | None = None
    snapshot_image: str | None = None


NOTHING_FOUND = Found()

# A resolver: the request's arguments, the instance now (None: the agent knows none) and
# what else was found (`FACTS`).
Resolver = Callable[[Mapping[str, Any], Instance | None, Found], Verdict]


def _power_is(*done: PowerState) -> Resolver:
    """Done when the guest is in one of the `done` power states; else run again (the
    method is one libvirt applies at once or not at all)."""

    def resolve(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
        if record is not None and record.power_state in done:
            return Verdict.DONE
        return Verdict.RUN_AGAIN

    return resolve


def _device(args: Mapping[str, Any]) -> str:
    return "/dev/" + str(args.get("mountpoint", "")).removeprefix("/dev/")


def _volume_at(record: Instance | None, device: str) -> str | None:
    """The volume id the record maps at `device`, "" for a mapping without one, None if none."""
    if record is None or not record.obj_attr_is_set("block_device_mappings"):
        return None
    for mapping in record.block_device_mappings or []:
        if mapping.device_name == device:
            return mapping.volume_id or ""
    return None


def _attached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record maps this volume at the device; else the attach sent again
    completes what reached libvirt (or attaches it) and records it."""
    connection = args.get("connection_info")
    wanted = connection.data.volume_id if isinstance(connection, VolumeConnection) else None
    if wanted and _volume_at(record, _device(args)) == wanted:
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _detached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record maps nothing at the device (the mapping goes once libvirt let
    the disk go); else the detach sent again finishes it."""
    if record is not None and _volume_at(record, _device(args)) is None:
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _spawned(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the instance is active (a spawn stopped after its domain was defined is
    finished at adoption); else the spawn sent again starts over from its marked leftover."""
    if record is not None and record.vm_state == VMState.ACTIVE:
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _run_again(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    return Verdict.RUN_AGAIN


def _rebooted(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """A guest that runs after a reboot is no proof the reboot happened (one stopped before
    libvirt was asked runs too, and no state tells the two apart): interrupted. A HARD
    reboot whose guest does not run (stopped between pulling the plug and starting it
    again) is run again: from there it starts the guest from its definition, which is the
    whole of its effect, and cannot boot it twice. A SOFT one is not: the record keeps its
    reboot task, which refuses a soft reboot sent again (`poll_rebooting_instances`
    finishes it with a hard one)."""
    if record is None or args.get("reboot_type", "SOFT") != "HARD":
        return Verdict.INTERRUPTED
    if record.power_state in (PowerState.SHUTDOWN, PowerState.CRASHED):
        return Verdict.RUN_AGAIN
    return Verdict.INTERRUPTED


def _suspended(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the guest is shut off and libvirt holds its managed save image; run again
    while it still runs (the managed save was not made, or not finished: libvirt keeps the
    guest running then); anything else (shut off with no image, paused) interrupted."""
    if record is None:
        return Verdict.INTERRUPTED
    if record.power_state == PowerState.SHUTDOWN and found.managed_save:
        return Verdict.DONE
    if record.power_state == PowerState.RUNNING:
        return Verdict.RUN_AGAIN
    return Verdict.INTERRUPTED


def _resumed(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the guest runs; run again while it is shut off with its managed save image
    (the start that restores it was not made); anything else interrupted (shut off with no
    image: nothing is left to resume from)."""
    if record is None:
        return Verdict.INTERRUPTED
    if record.power_state == PowerState.RUNNING:
        return Verdict.DONE
    if record.power_state == PowerState.SHUTDOWN and found.managed_save:
        return Verdict.RUN_AGAIN
    return Verdict.INTERRUPTED


def _snapshot_written(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the snapshot's image is there (renamed into place only once qemu-img
    finished: whole); otherwise interrupted, its partial files already removed. Never run
    again: the image would hold the disk as it is at the restart, not as it was asked."""
    if record is not None and found.snapshot_image is not None:
        return Verdict.DONE
    return Verdict.INTERRUPTED


def _port(args: Mapping[str, Any]) -> str | None:
    vif = args.get("vif")
    return vif.id if isinstance(vif, VIF) and vif.obj_attr_is_set("id") else None


def _has_port(record: Instance | None, port: str) -> bool:
    if record is None or not record.obj_attr_is_set("network_info"):
        return False
    return any(vif.id == port for vif in record.network_info or [])


def _interface_attached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record has the port (it is recorded once libvirt attached it); else
    the attach sent again completes what reached libvirt (the same MAC) and records it."""
    port = _port(args)
    if port is not None and _has_port(record, port):
        return Verdict.DONE
    return Verdict.RUN_AGAIN


def _interface_detached(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record no longer has the port (it goes once libvirt let the device
    go); else the detach sent again finishes it."""
    port = _port(args)
    if record is None or port is None or _has_port(record, port):
        return Verdict.RUN_AGAIN
    return Verdict.DONE


def _metadata_changed(args: Mapping[str, Any], record: Instance | None, found: Found) -> Verdict:
    """Done when the record's metadata holds every key the diff sets, at its value, and
    none it removes; else run again (applying a diff twice is applying it once; a diff its
    handler refuses is refused again)."""
    diff = args.get("diff")
    if record is None or not isinstance(diff, Mapping) or not diff:
        return Verdict.RUN_AGAIN
    metadata = record.metadata if record.obj_attr_is_set("metadata") else {}
    for key, change in diff.items():
        if change == ["-"]:
            wanted = None
        elif isinstance(change, list) and len(change) == 2 and change[0] == "+":
            wanted = change[1]
        else:
            return Verdict.RUN_AGAIN
        if metadata.get(key) != wanted:
            return Verdict.RUN_AGAIN
    return Verdict.DONE


RESOLVERS: dict[str, Resolver] = {
    "pause": _power_is(PowerState.PAUSED),
    "unpause": _power_is(PowerState.RUNNING),
    "power_on": _power_is(PowerState.RUNNING),
    "resume": _resumed,
    "power_off": _power_is(PowerState.SHUTDOWN),
    "reboot": _rebooted,
    "suspend": _suspended,
    "snapshot": _snapshot_written,
    "attach_volume": _attached,
    "detach_volume": _detached,
    "attach_interface": _interface_attached,
    "detach_interface": _interface_detached,
    "change_instance_metadata": _metadata_changed,
    "spawn": _spawned,
    # Idempotent: a guest already gone is success, answered as deleted.
    "destroy": _run_again,
}


@dataclass(slots=True, frozen=True)
class Fact:
    """A `Found` field, read by asking the instance actor's `handler` with `arguments` of
    the request's."""

    field: str
    handler: str
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda args: {}


# What is read, besides the record, for the methods whose resolver needs more. Asking
# `settle_interrupted_snapshot` also removes the snapshot's partial files: whatever the
# verdict, an interrupted snapshot leaves none.
FACTS: dict[str, Fact] = {
    "suspend": Fact("managed_save", "has_managed_save"),
    "resume": Fact("managed_save", "has_managed_save"),
    "snapshot": Fact(
        "snapshot_image",
        "settle_interrupted_snapshot",
        lambda args: {"image_id": str(args.get("image_id", ""))},
    ),
}

# The reply of a method answered done, when its handler answers with something else than
# the instance: a snapshot with its image's path.
DONE_REPLIES: dict[str, Callable[[Instance | None, Found], Any]] = {
    "snapshot": lambda record, found: found.snapshot_image,
}


def verdict(
    method: str,
    args: Mapping[str, Any],
    record: Instance | None,
    found: Found = NOTHING_FOUND,
) -> Verdict:
    """What to do with an interrupted `method` called with `args`, the instance being
    `record` now and `found` what else was read for it. Methods without a resolver are
    `INTERRUPTED`."""
    resolver = RESOLVERS.get(method)
    return Verdict.INTERRUPTED if resolver is None else resolver(args, record, found)


@dataclass(slots=True, frozen=True)
class Resolved:
    """How one intent was resolved; `reply` is the encoded reply kept for its message id
    (None for a cast, or a run again left to the delivery already waiting to run it)."""

    intent: Intent
    verdict: Verdict
    reply: bytes | None


CurrentRecord = Callable[[str], Awaitable[Instance | None]]
# Ask the actor of an instance (uuid) a handler (name) with arguments; its answer.
AskInstance = Callable[[str, str, dict[str, Any]], Awaitable[Any]]


def instance_asks(system: ActorSystem, factory: Callable[[str], Actor]) -> AskInstance:
    """Ask each instance's actor (got, or spawned with `factory`)."""

    async def ask(uuid: str, handler: str, args: dict[str, Any]) -> Any:
        ref = system.get_or_spawn(instance_address(uuid), lambda: factory(uuid))
        return await ref.ask(handler, args)

    return ask


def instance_records(system: ActorSystem, factory: Callable[[str], Actor]) -> CurrentRecord:
    """`current_record` of each instance's actor (got, or spawned with `factory`)."""
    ask = instance_asks(system, factory)

    async def current(uuid: str) -> Instance | None:
        record: Instance | None = await ask(uuid, "current_record", {})
        return record

    return current


async def resolve_unfinished(
    store: ReplyStore,
    dispatcher: Dispatcher,
    current_record: CurrentRecord,
    ask_instance: AskInstance | None = None,
) -> list[Resolved]:
    """Resolve every intent left in `store`, oldest first, one at a time (see the module
    docstring); returns how each was. `ask_instance` reads what the resolvers need besides
    the record (`FACTS`); without it nothing more is found. An intent that cannot be weighed
    (its request no longer decodes, its instance's state cannot be read) is `INTERRUPTED`.
    A run again takes as long as its handler (each bounds its own waits). Cancelling leaves
    the intents not yet resolved for the next start."""
    if not store.is_open:
        return []  # no store, no journal (an agent's adoption run without its start)
    try:
        unfinished = await store.unfinished()
    except sqlite3.Error as exc:  # an unreadable journal must not keep the host from serving
        log.error("journal of %s not read: %s", store.path, exc)
        return []
    resolved = []
    for intent in unfinished:
        try:
            done = await _resolve(intent, dispatcher, current_record, ask_instance)
        except VirtactorError as exc:
            # Its answer could not be made (a result that does not encode at the caller's
            # versions): answered as interrupted, so no intent keeps the host from serving.
            log.error("intent %s not resolved: %s", intent.message_id, exc)
            done = await _interrupted(intent, dispatcher)
        log.warning(
            "%s %s of instance %s was interrupted by the agent's restart: resolved %s",
            intent.method,
            intent.message_id,
            intent.instance,
            done.verdict.value,
            extra={
                "message_id": intent.message_id,
                "rpc_method": intent.method,
                "instance_uuid": intent.instance,
            },
        )
        resolved.append(done)
    return resolved


async def _found(
    method: str, args: Mapping[str, Any], uuid: str, ask_instance: AskInstance | None
) -> Found:
    fact = FACTS.get(method)
    if fact is None or ask_instance is None:
        return NOTHING_FOUND
    value = await ask_instance(uuid, fact.handler, fact.arguments(args))
    return Found(**{fact.field: value})


async def _resolve(
    intent: Intent,
    dispatcher: Dispatcher,
    current_record: CurrentRecord,
    ask_instance: AskInstance | None,
) -> Resolved:
    cache = dispatcher.cache
    key = CallKey(intent.method, intent.digest)
    try:
        request = unpack(intent.request, dispatcher.registry, dispatcher.limits)
        if not isinstance(request, Request):
            raise TypeError(f"intent {intent.message_id} holds a {type(request).__name__}")
    except (SchemaError, TypeError) as exc:
        log.error("intent %s cannot be read back: %s", intent.message_id, exc)
        return await _interrupted(intent, dispatcher)
    record: Instance | None = None
    found = NOTHING_FOUND
    outcome = Verdict.INTERRUPTED
    if intent.instance is not None and intent.method in RESOLVERS:
        try:
            uuid = str(UUID(intent.instance))
            record = await current_record(uuid)
            found = await _found(intent.method, request.args, uuid, ask_instance)
            outcome = verdict(intent.method, request.args, record, found)
        except (VirtactorError, ValueError) as exc:
            log.error("instance of intent %s not read: %s", intent.message_id, exc)
    if outcome is Verdict.RUN_AGAIN:
        if cache.running(intent.message_id):
            # A redelivery waits for the host to be ready: it is the run, and its intent.
            return Resolved(intent, outcome, None)
        reply = await dispatcher.replay(intent.request, intent.message_id, intent.sender)
        return Resolved(intent, outcome, reply)
    if outcome is Verdict.DONE:
        answer = DONE_REPLIES.get(intent.method)
        result = record if answer is None else answer(record, found)
        reply = dispatcher.encode_reply(request, result=result)
    else:
        reply = dispatcher.encode_reply(request, error=_interruption(intent))
    await cache.settle(intent.message_id, key, reply)
    return Resolved(intent, outcome, reply)


def _interruption(intent: Intent) -> OperationInterrupted:
    return OperationInterrupted(
        method=intent.method, message_id=intent.message_id, instance=intent.instance
    )


async def _interrupted(intent: Intent, dispatcher: Dispatcher) -> Resolved:
    """Answer `intent` `OperationInterrupted` without reading its request back (a caller
    that sent a cast ignores the reply)."""
    wire = error_to_wire(_interruption(intent))
    reply = pack(Reply(intent.message_id, error=wire, manifest=dispatcher.manifest))
    await dispatcher.cache.settle(intent.message_id, CallKey(intent.method, intent.digest), reply)
    return Resolved(intent, Verdict.INTERRUPTED, reply)
