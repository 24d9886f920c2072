"""The serving side of RPC: one delivery in, one effect and (for calls) one reply out.

For each delivery the `Dispatcher`:
1. decodes the envelope strictly (size, depth and length limits; unknown objects and wrong
   field types are decode errors). An object newer than this agent knows is answered with
   `IncompatibleObjectVersion` carrying our manifest, so the caller can back-level and retry;
2. runs the rest once per message id (`ReplyCache`): a redelivered request gets the first
   reply and never a second execution; the id reused for another call (method, target or
   encoded arguments differ) is refused with `MessageIdConflict`, and nothing runs;
3. refuses, with a typed error and no effect, a request past its deadline, an unknown method,
   a caller the policy does not allow that method (`PolicyNotAuthorized`, checked before the
   request is routed: agent/rpc/policy.py), bad arguments, or an instance call before the
   host finished adopting its guests (the caller retries; an instance cast, whose sender
   hears nothing, waits unacknowledged until the host is ready, and is redelivered if the
   agent stops first);
   a request of an RPC API version this agent does not serve is refused before step 2, so
   that refusal is not remembered: the same message may come again at an older version;
4. asks the owning actor (instance methods: that instance's actor, got or spawned; host
   methods: the host actor; claims: the tracker) with the request's deadline; a
   state-changing instance request's intent is recorded first, so an agent stopped while
   it runs resolves it at the next start (agent/rpc/journal.py, `replay`);
5. encodes the reply with every object back-levelled to the caller's manifest.

Each request is served in the trace its `traceparent` header names (a new one when it names
none): the server binds it (`agent.observability.tracing`) and attaches it to the decoded
request context (`RequestContext.obj_trace`), so the actor handling the request, and any call
it makes, continue it. With spans configured (`spans`), the server opens a server span per
request, child of the incoming traceparent, and serves the request in the span's trace. The
reply carries that trace in its headers.

A request that cannot be answered (a cast that fails to decode or reuses a message id) is
dead-lettered; a cast whose handler fails is logged and acknowledged, as its effect was
attempted once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from actors import (
    FIREWALL_ADDRESS,
    HOST_ADDRESS,
    TRACKER_ADDRESS,
    Actor,
    ActorSystem,
    instance_address,
)
from actors.host import Readiness
from agent.errors import (
    AgentInitializing,
    IncompatibleRpcVersion,
    InstanceNotFound,
    InvalidArguments,
    MessageIdConflict,
    ObjectVersionRefused,
    RequestExpired,
)
from agent.observability.calls import DUPLICATE, OK, REFUSALS, UNDECODABLE, CallStats
from agent.observability.requests import done, serving
from agent.observability.spans import NO_SPANS, Span, Spans
from agent.observability.tracing import TraceParent, bind_trace, unbind_trace
from agent.rpc.dedup import CallKey, ReplyCache
from agent.rpc.envelope import (
    RPC_API_VERSION,
    Kind,
    Reply,
    Request,
    pack,
    request_digest,
    unpack,
)
from agent.rpc.manifest import Manifest
from agent.rpc.manifest_store import ManifestStore
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.policy import Policy
from agent.rpc.remote_errors import error_to_wire
from agent.transport import Delivery, Outcome
from schemas import (
    DecodeError,
    DecodeLimits,
    IncompatibleObjectVersion,
    ObjectRegistry,
    RequestContext,
    parse_version,
)
from schemas.errors import SchemaError, VirtactorError

log = logging.getLogger(__name__)

# Answered by the dispatcher itself: how a client asks for this agent's object manifest.
GET_OBJECT_MANIFEST = "get_object_manifest"


@dataclass(slots=True)
class ServerStats:
    requests: int = 0
    duplicates: int = 0
    errors: int = 0
    dead_lettered: int = 0


class _Served:
    """What became of one delivery, for its log line and `CallStats`."""

    __slots__ = ("bound", "error", "method", "outcome", "span", "trace")

    def __init__(self, trace: TraceParent, span: Span | None) -> None:
        self.method = UNDECODABLE
        # Until something says otherwise; a cancelled handler leaves this.
        self.outcome = "cancelled"
        self.error: VirtactorError | None = None
        self.bound: Token[Any] | None = None
        self.trace = trace  # the trace the request is served in
        self.span = span

    def failed(self, error: VirtactorError) -> None:
        self.outcome = type(error).__name__
        self.error = error


def _log_served(delivery: Delivery, served: _Served, kind: str, elapsed: float) -> None:
    """One line per request: method, outcome and duration; a refusal, or a cast that failed
    (nobody else hears of it), at WARNING with the reason."""
    error = served.error
    refused = served.outcome in REFUSALS
    level = logging.WARNING if refused or (error is not None and kind == "cast") else logging.INFO
    if not log.isEnabledFor(level):
        return
    what = "refused" if refused else served.outcome
    reason = "" if error is None else f": {error}"
    log.log(
        level,
        "%s %s %s %s in %.1f ms%s",
        kind,
        served.method,
        delivery.message_id,
        what,
        elapsed * 1000,
        reason,
        extra={
            "rpc_method": served.method,
            "rpc_kind": kind,
            "outcome": served.outcome,
            "duration_ms": round(elapsed * 1000, 3),
            "message_id": delivery.message_id,
        },
    )


def _end_span(span: Span, served: _Served, kind: str) -> None:
    span.rename(served.method)
    span.set_attribute("rpc.method", served.method)
    span.set_attribute("virtactor.rpc.kind", kind)
    span.set_attribute("virtactor.rpc.outcome", served.outcome)
    if served.outcome not in (OK, DUPLICATE):
        span.failed(served.outcome if served.error is None else str(served.error))
    span.end()


class _UncachedReply(Exception):
    """Carries a reply out of the reply cache's `run_once` without it being remembered
    (`duplicate`: the reply is one the cache already has, settled by the journal)."""

    def __init__(self, reply: bytes | None, duplicate: bool = False) -> None:
        super().__init__("uncached reply")
        self.reply = reply
        self.duplicate = duplicate


# Set while the journal serves again a request the agent was stopped in (`Dispatcher.replay`).
_REPLAYING: ContextVar[bool] = ContextVar("virtactor_replaying", default=False)


def check_rpc_version(requested: str) -> None:
    """Serve a request of our RPC API major version and a minor no newer than ours: a newer
    minor may name methods or arguments this agent does not know."""
    if requested == RPC_API_VERSION:
        return  # every peer of the same release: no parsing on the hot path
    try:
        wanted = parse_version(requested)
    except ValueError:
        raise IncompatibleRpcVersion(requested=requested, served=RPC_API_VERSION) from None
    served = parse_version(RPC_API_VERSION)
    if wanted.major != served.major or wanted.minor > served.minor:
        raise IncompatibleRpcVersion(requested=requested, served=RPC_API_VERSION)


class RequestServer:
    """Steps 1-3 and 5 of the module docstring for any request queue: decode, run once per
    message id, refuse what cannot run, reply back-levelled. Subclasses serve the methods
    (`_serve`): the `Dispatcher` asks actors, the conductor runs remotable object methods."""

    def __init__(
        self,
        *,
        registry: ObjectRegistry,
        manifest: Mapping[str, str],
        limits: DecodeLimits,
        cache: ReplyCache | None = None,
        manifests: ManifestStore | None = None,
        wall_clock: Callable[[], float] = time.time,
        spans: Spans = NO_SPANS,
    ) -> None:
        self.registry = registry
        self.manifest = Manifest(manifest)
        self.limits = limits
        self.cache = ReplyCache() if cache is None else cache  # an empty cache is falsy
        # Callers' manifests read in full, kept so their digests resolve after a restart.
        self.manifests = manifests
        self.wall_clock = wall_clock
        self.stats = ServerStats()
        self.calls = CallStats()  # per method, for the metrics exporter
        self.spans = spans

    async def handle(self, delivery: Delivery) -> Outcome:
        self.stats.requests += 1
        started = time.perf_counter()
        incoming = TraceParent.from_headers(delivery.headers)
        if self.spans.enabled:
            span = self.spans.server("rpc", incoming, {"messaging.message.id": delivery.message_id})
            served = _Served(span.trace, span)
        else:
            served = _Served(TraceParent.new() if incoming is None else incoming, None)
        traced = bind_trace(served.trace)
        try:
            outcome = await self._handle(delivery, served)
            if outcome.reply is None:
                return outcome
            return Outcome(reply=outcome.reply, headers=served.trace.headers())
        finally:
            # Also when cancelled: the line says so, and the request is unbound either way.
            elapsed = time.perf_counter() - started
            kind = "call" if delivery.reply_expected else "cast"
            self.calls.record(served.method, kind, served.outcome, elapsed)
            _log_served(delivery, served, kind, elapsed)
            if served.span is not None:
                _end_span(served.span, served, kind)
            if served.bound is not None:
                done(served.bound)
            unbind_trace(traced)

    async def _handle(self, delivery: Delivery, served: _Served) -> Outcome:
        try:
            envelope = unpack(delivery.body, self.registry, self.limits)
            if not isinstance(envelope, Request):
                raise DecodeError(reason=f"expected a call or cast, got {type(envelope).__name__}")
        except IncompatibleObjectVersion as exc:
            # Refused before anything ran, with our manifest: the caller may back-level and
            # send again (only this refusal, never a handler's own version error, says so).
            return self._refuse(
                delivery, ObjectVersionRefused(exc.message, **exc.fields), "incompatible", served
            )
        except DecodeError as exc:
            return self._refuse(delivery, exc, "undecodable", served)
        served.method = envelope.method
        envelope.sender = delivery.sender
        if isinstance(envelope.context, RequestContext):
            envelope.context.obj_trace = served.trace
            if delivery.sender is not None:
                envelope.context.obj_caller = delivery.sender
        served.bound = serving(envelope.context)
        message_id = delivery.message_id or envelope.message_id
        if self.manifests is not None and not envelope.compact:
            await self.manifests.remember(envelope.manifest)
        try:
            check_rpc_version(envelope.rpc_version)
        except IncompatibleRpcVersion as exc:
            # Refused before the reply cache, like an undecodable message: nothing ran, so the
            # caller may send the same message again at the version named (a cast has nobody
            # to tell: it is dead-lettered).
            return self._refuse(delivery, exc, "incompatible-rpc-version", served)
        key = CallKey(envelope.method, request_digest(delivery.body))
        try:
            reply, duplicate = await self.cache.run_once(
                message_id, key, lambda: self._execute(envelope, served), delivery.body
            )
        except _UncachedReply as uncached:
            reply, duplicate = uncached.reply, uncached.duplicate
        except MessageIdConflict as exc:
            return self._refuse(delivery, exc, "message-id-conflict", served)
        if duplicate:
            self.stats.duplicates += 1
            served.outcome = DUPLICATE
        return Outcome(reply=reply if delivery.reply_expected else None)

    def _refuse(
        self, delivery: Delivery, exc: VirtactorError, reason: str, served: _Served
    ) -> Outcome:
        served.failed(exc)
        self.stats.errors += 1
        if not delivery.reply_expected:
            self.stats.dead_lettered += 1
            return Outcome(dead_letter=reason)
        reply = Reply(delivery.message_id, error=error_to_wire(exc), manifest=self.manifest)
        return Outcome(reply=pack(reply))

    async def _execute(self, request: Request, served: _Served) -> bytes | None:
        try:
            result = await self._deliver(request)
        except VirtactorError as exc:
            self.stats.errors += 1
            served.failed(exc)
            if request.kind is Kind.CAST:
                reply_body = None  # nobody to answer: the request's log line says it failed
            else:
                reply_body = pack(self._reply(request, error=error_to_wire(exc)))
            if exc.retryable:
                # Not remembered: a redelivery of this message may well succeed (the host has
                # adopted its guests, libvirt is back), so it must run again.
                raise _UncachedReply(reply_body) from None
            return reply_body
        served.outcome = OK
        if request.kind is Kind.CAST:
            return None
        reply = self._reply(request, result=result)
        # A peer of the same release needs no back-levelling walk.
        same = request.manifest.wire == self.manifest.wire
        try:
            return pack(reply, target=None if same else request.manifest)
        except SchemaError as exc:
            # The effect happened but its result cannot travel (or cannot be back-levelled to
            # the caller's versions): say so, typed, rather than leaving the caller to time out.
            log.error("result of %s %s cannot be sent: %s", request.message_id, request.method, exc)
            served.failed(exc)
            return pack(self._reply(request, error=error_to_wire(exc)))

    def _reply(self, request: Request, **outcome: Any) -> Reply:
        # A caller that named its manifest by digest has ours in full from an earlier reply.
        return Reply(request.message_id, manifest=self.manifest, compact=request.compact, **outcome)

    def encode_reply(
        self, request: Request, result: Any = None, error: VirtactorError | None = None
    ) -> bytes | None:
        """The reply `request` gets for `result` (or `error`), encoded at the caller's
        versions, as its handler's would be; None for a cast."""
        if request.kind is Kind.CAST:
            return None
        if error is not None:
            return pack(self._reply(request, error=error_to_wire(error)))
        return pack(self._reply(request, result=result), target=request.manifest)

    async def replay(self, body: bytes, message_id: str, sender: str | None) -> bytes | None:
        """Serve `body` again under `message_id`, as it first arrived from `sender`, before
        the host is ready and past its deadline: the journal's forward run of an operation
        the agent was stopped in. The reply is kept as any (`run_once`); returns it."""
        token = _REPLAYING.set(True)
        try:
            delivery = Delivery(body, message_id, reply_expected=True, sender=sender)
            return (await self.handle(delivery)).reply
        finally:
            _REPLAYING.reset(token)

    async def _deliver(self, request: Request) -> Any:
        deadline = getattr(request.context, "deadline", None) if request.context else None
        remaining = None if deadline is None else deadline - self.wall_clock()
        if _REPLAYING.get() or self.cache.left_unfinished(request.message_id):
            remaining = None  # it started within its deadline, before the agent stopped
        if remaining is not None and remaining <= 0:
            raise RequestExpired(message_id=request.message_id, method=request.method)
        if request.method == GET_OBJECT_MANIFEST:
            return dict(self.manifest)
        return await self._serve(request, remaining)

    async def _serve(self, request: Request, remaining: float | None) -> Any:
        """Run `request` (not expired: `remaining` seconds are left of its deadline, if it
        has one) and return its result; a `VirtactorError` is the caller's answer."""
        raise NotImplementedError


def _always_ready() -> Readiness:
    readiness = Readiness()
    readiness.set_ready()
    return readiness


_ALWAYS_READY = _always_ready()


class Dispatcher(RequestServer):
    """Turns deliveries for one host into actor asks. See the module docstring."""

    def __init__(
        self,
        *,
        host: str,
        system: ActorSystem,
        methods: MethodTable,
        instance_factory: Callable[[str], Actor],
        registry: ObjectRegistry,
        manifest: Mapping[str, str],
        limits: DecodeLimits,
        is_ready: Readiness | None = None,
        cache: ReplyCache | None = None,
        manifests: ManifestStore | None = None,
        wall_clock: Callable[[], float] = time.time,
        spans: Spans = NO_SPANS,
        policy: Policy | None = None,
    ) -> None:
        super().__init__(
            registry=registry,
            manifest=manifest,
            limits=limits,
            cache=cache,
            manifests=manifests,
            wall_clock=wall_clock,
            spans=spans,
        )
        self.host = host
        self.system = system
        self.methods = methods
        self.instance_factory = instance_factory
        self.is_ready = is_ready or _ALWAYS_READY
        # Who may call what (agent/rpc/policy.py); its defaults when none is given.
        self.policy = Policy() if policy is None else policy

    async def _serve(self, request: Request, remaining: float | None) -> Any:
        route = self.methods.route(request.method, for_instance=request.instance is not None)
        # Before anything else looks at the request: a refused caller learns nothing more.
        self.policy.authorize(request.method, route.scope, request.context, request.sender)
        target = self._target(request, route.scope)
        route.check_arguments(request.args)
        spawned = False
        if route.scope is Scope.INSTANCE:
            if not self.is_ready() and not _REPLAYING.get():
                if request.kind is not Kind.CAST:
                    raise AgentInitializing(host=self.host)  # the caller retries
                await self._ready_for_cast(request, remaining)
            uuid = target.partition(":")[2]
            spawned = target not in self.system
            ref = self.system.get_or_spawn(target, lambda: self.instance_factory(uuid))
        else:
            ref = self.system.lookup(target)
        monotonic_deadline = None if remaining is None else time.monotonic() + remaining
        if route.scope is Scope.INSTANCE:
            # The operation journal's intent, just before the handler may touch the guest.
            settled = await self.cache.begin(request.message_id, request.instance, request.sender)
            if settled is not None:  # answered at start by the journal while this waited
                raise _UncachedReply(settled.reply, duplicate=True)
        try:
            # The deadline bounds the start only: once a handler runs, its request is settled
            # (acked, answered) when the effect is complete, never half-way.
            return await ref.ask(
                request.method,
                request.args,
                start_deadline=monotonic_deadline,
                context=request.context,
            )
        except InstanceNotFound:
            if spawned:
                # Spawned for this request only, for an instance this host does not have: do
                # not keep an actor per unknown uuid a caller ever named.
                await self.system.stop(target)
            raise

    async def _ready_for_cast(self, request: Request, remaining: float | None) -> None:
        """Wait, unacknowledged, until the host adopted its guests: nobody would hear of a
        cast refused now. Stopping the agent meanwhile leaves it in the queue for the next
        start; a cast whose deadline passes first is refused as expired."""
        log.info(
            "cast %s %s waits for host %s to adopt its guests",
            request.message_id,
            request.method,
            self.host,
        )
        try:
            async with asyncio.timeout(remaining):
                await self.is_ready.wait()
        except TimeoutError:
            raise RequestExpired(message_id=request.message_id, method=request.method) from None

    @staticmethod
    def _target(request: Request, scope: Scope) -> str:
        if scope is Scope.HOST:
            return HOST_ADDRESS
        if scope is Scope.TRACKER:
            return TRACKER_ADDRESS
        if scope is Scope.FIREWALL:
            return FIREWALL_ADDRESS
        if request.instance is None:
            raise InvalidArguments(method=request.method, reason="no target instance given")
        try:
            return instance_address(str(UUID(request.instance)))
        except ValueError:
            reason = f"instance {request.instance!r} is not a UUID"
            raise InvalidArguments(method=request.method, reason=reason) from None
