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
again, and what `FACTS` reads besides) with the pure per-method resolvers of `RESOLVERS`
(`agent/rpc/resolvers.py`):

- `DONE`: the effect is there (the guest paused for `pause`, the volume recorded at its
  device for `attach_volume`): the request is answered as its handler would have answered
  it, with the instance now (a snapshot with its image's path: `DONE_REPLIES`);
- `RUN_AGAIN`: the effect is not there, or only part of it, and serving the request again
  completes it without doing anything twice (the handler of each such method is idempotent
  forward: docs/recovery.md): it is served again now, under its message id, past its
  deadline (it started within it) and the reply its handler gives is kept;
- `INTERRUPTED`: the state does not say, or running again is not safe (a reboot of a
  guest that runs, a snapshot cut short), and any method without a resolver (rescue,
  resize, ...): answered `OperationInterrupted`, which is not retryable: the answer for
  that message id is final; whether the effect happened is for the caller to look at
  before it sends a new request under a new id.

Either way the outcome is kept as the message id's reply: the caller's request sent again
(or redelivered by the broker) is answered with it and never runs a second time. A
redelivered cast already waiting for the host when its intent is resolved is not run
(`Settled`), or, for `RUN_AGAIN`, is itself the run.
"""

from __future__ import annotations

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
from agent.rpc.resolvers import (
    DONE_REPLIES,
    FACTS,
    NOTHING_FOUND,
    RESOLVERS,
    Found,
    Verdict,
    verdict,
)
from agent.rpc.server import Dispatcher
from schemas.errors import SchemaError, VirtactorError
from schemas.objects.instance import Instance

log = logging.getLogger(__name__)


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
