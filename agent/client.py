"""`ComputeClient`: how a control plane (or a test) talks to agents.

One client serves many hosts. It remembers the object manifest each host advertised (in its
replies, its `Service` heartbeat events, or on request) and back-levels arguments to it, never
above the deployment-wide `version_cap`. If an agent still refuses an object as too new, the
client learns the manifest from the refusal and retries once, back-levelled. So for the RPC
API version (`rpc_version_cap`, then what each host serves: `agent.rpc.api_version`).

Errors raised on the agent come back as the same exception class (`InstanceNotFound`,
`InstanceInvalidState`, ...), or `RemoteError` for a class this client does not know. A call
an agent refuses as still adopting its guests (`AgentInitializing`) is retried within its
deadline; a caller re-sends a timed-out call safely under its idempotency key (`call`).

Every request carries a W3C `traceparent` header (docs/observability.md, "Tracing"): sent
while serving a request (an agent's handler calling another agent or the conductor), the
trace of that request, under a new span id; from anywhere else, the trace bound with
`agent.observability.tracing.bind_trace`, or a new one. With `spans` on, each call, cast
and fanout is a client span, and the request carries the span's traceparent.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from agent.config import AgentConfig
from agent.driver_calls import DriverCalls
from agent.errors import AgentInitializing, CallTimeout, ObjectVersionRefused, RemoteError
from agent.event_stream import EventStream
from agent.observability.requests import request_context
from agent.observability.spans import NO_SPANS, Span, Spans, spans_from_config
from agent.observability.tracing import TraceParent, current_trace, outgoing_trace
from agent.rpc.announcer import ANNOUNCE_INTERVAL, Announcer
from agent.rpc.api_version import RpcVersions, capped_rpc_version, negotiated, version_for
from agent.rpc.envelope import RPC_API_VERSION, Event, Kind, Reply, Request, pack, unpack
from agent.rpc.manifest import Manifest, UnknownManifestDigest
from agent.rpc.remote_errors import ErrorRegistry
from agent.rpc.server import GET_OBJECT_MANIFEST
from agent.security.settings import client_identity, message_security
from agent.transport import AmqpSettings, AmqpTransport, InProcessBus, Transport
from agent.transport.amqp_tls import broker_context
from schemas import (
    DecodeError,
    DecodeLimits,
    ObjectRegistry,
    RequestContext,
    default_registry,
    obj_manifest,
)

# The back-off between attempts of a call an agent refused as still adopting its guests.
INITIALIZING_RETRY_MIN = 0.05
INITIALIZING_RETRY_MAX = 1.0


def _left(deadline: float) -> float:
    """Seconds left until `deadline` (monotonic), never zero: a transport needs a timeout."""
    return max(deadline - time.monotonic(), 0.001)


def _older(a: str, b: str) -> str:
    major_a, minor_a = (int(x) for x in a.split("."))
    major_b, minor_b = (int(x) for x in b.split("."))
    return a if (major_a, minor_a) <= (major_b, minor_b) else b


def _lowered(base: Mapping[str, str], *limits: Mapping[str, str]) -> dict[str, str]:
    """`base`, each object lowered to the oldest version any of `limits` names for it."""
    target = dict(base)
    for limit in limits:
        for name, version in limit.items():
            if name in target:
                target[name] = _older(target[name], version)
    return target


class ComputeClient(DriverCalls):
    """The typed client for the agents on one transport. See the module docstring."""

    @classmethod
    async def connect(cls, url: str | None = None, **options: Any) -> ComputeClient:
        """A client on its own AMQP connection to `url`; with no URL, on a new in-process
        bus (useful only with agents started on that same bus: pass it to the constructor)."""
        transport: Transport
        if url:
            transport = AmqpTransport(
                AmqpSettings(
                    url=url,
                    prefix=options.pop("prefix", "virtactor"),
                    security=options.pop("security", None),
                    ssl_context=options.pop("ssl_context", None),
                )
            )
        else:
            transport = InProcessBus()
        await transport.start()
        try:
            client = cls(transport, **options)
        except BaseException:
            await transport.aclose()
            raise
        client._owns_transport = True
        return client

    @classmethod
    async def from_config(cls, config: AgentConfig) -> ComputeClient:
        """A client of the deployment `config` describes: on its own connection to `[amqp]
        url` (with its `prefix`), pinned by `[rpc] version_cap` and `rpc_version_cap`, its
        deadline `[rpc] call_timeout` and its message bound `max_message_bytes`; its calls
        are client spans when `[tracing]` names an exporter (closed with the client). Its
        requests' context says who it is as `[client]` does (user_id, project_id, roles,
        is_admin)."""
        spans = spans_from_config(config.tracing)
        try:
            client = await cls.connect(
                config.amqp.url or None,
                version_cap=config.rpc.version_cap,
                rpc_version_cap=config.rpc.rpc_version_cap or None,
                default_timeout=config.rpc.call_timeout,
                limits=DecodeLimits(max_size=config.rpc.max_message_bytes),
                spans=spans,
                user_id=config.client.user_id or None,
                project_id=config.client.project_id or None,
                roles=config.client.roles,
                is_admin=config.client.is_admin,
                **(
                    {
                        "prefix": config.amqp.prefix,
                        "security": message_security(
                            config.security, client_identity(config.security, config.agent.host)
                        ),
                        "ssl_context": broker_context(
                            config.amqp.url,
                            config.amqp.ca_file,
                            config.amqp.cert_file,
                            config.amqp.key_file,
                        ),
                    }
                    if config.amqp.url
                    else {}
                ),
            )
        except BaseException:
            await spans.aclose()
            raise
        client._owns_spans = True
        return client

    async def aclose(self) -> None:
        """Close the transport if this client opened it (`connect`), and the spans if it
        made them (`from_config`: the last ones are exported first)."""
        if self._owns_transport:
            await self.transport.aclose()
        if self._owns_spans:
            await self.spans.aclose()

    def __init__(
        self,
        transport: Transport,
        *,
        registry: ObjectRegistry | None = None,
        version_cap: Mapping[str, str] | None = None,
        rpc_version_cap: str | None = None,
        default_timeout: float = 60.0,
        limits: DecodeLimits | None = None,
        user_id: str | None = None,
        project_id: str | None = None,
        roles: Sequence[str] = (),
        is_admin: bool = False,
        announce_interval: float | None = ANNOUNCE_INTERVAL,
        spans: Spans = NO_SPANS,
    ) -> None:
        """`user_id`, `project_id`, `roles` and `is_admin` go in every request's context:
        what an agent's policy reads (docs/security.md, "Authorisation"; the host's methods
        need `is_admin` or the "admin" role by default)."""
        self.transport = transport
        self.spans = spans
        self._owns_spans = False
        self.registry = registry or default_registry
        self.manifest = Manifest(obj_manifest(self.registry))
        self.version_cap = dict(version_cap or {})
        # Raises InvalidRpcVersionCap for a cap this release cannot speak.
        self.rpc_versions = RpcVersions(capped_rpc_version(RPC_API_VERSION, rpc_version_cap))
        self.default_timeout = default_timeout
        self.limits = limits or DecodeLimits()
        self.user_id = user_id
        self.project_id = project_id
        self.roles = tuple(roles)
        self.is_admin = is_admin
        # Checked once here; each request copies it with its own id and deadline.
        self._context = RequestContext(
            request_id="-",
            user_id=user_id,
            project_id=project_id,
            roles=list(self.roles),
            is_admin=is_admin,
        )
        # Hosts that have had our manifest in full and answered: calls to them name it by
        # digest (docs/rpc.md, "Manifest digests").
        self._digest_hosts: set[str] = set()
        self._full_only: set[str] = set()  # agents of a release that cannot read digests
        self.host_manifests: dict[str, Manifest] = {}
        # host -> target_manifest(host), cached; None when it is our own (nothing to back-level)
        self._targets: dict[str, Manifest | None] = {}
        self.errors = ErrorRegistry()
        self._owns_transport = False
        # While a stream is open, our manifest is announced every `announce_interval`
        # seconds, so agents publish events at versions we read (None: never announced).
        self.announcer = (
            None
            if announce_interval is None
            else Announcer(transport, self.manifest, announce_interval)
        )
        # The typed calls' options (`with_options`): None is the default deadline and a
        # fresh message id per call.
        self.call_timeout: float | None = None
        self.call_message_id: str | None = None

    def with_options(
        self, *, timeout: float | None = None, message_id: str | None = None
    ) -> ComputeClient:
        """This client, for typed calls with their own deadline (`timeout` seconds) or
        idempotency key (`message_id`, see `call`): `client.with_options(timeout=300).spawn(
        host, instance, image_meta)`. The copy shares everything else (transport, learnt
        manifests) and never closes the transport. A key names one call: make a copy per
        call that uses one."""
        view = copy.copy(self)
        view._owns_transport = False
        view._owns_spans = False
        view.call_timeout = timeout
        view.call_message_id = message_id
        return view

    def target_manifest(self, host: str) -> Manifest:
        """The versions to send `host`: ours, lowered to what it advertised and to the cap."""
        return self._target(host) or self.manifest

    def _target(self, host: str) -> Manifest | None:
        if host in self._targets:
            return self._targets[host]
        manifest = Manifest(
            _lowered(self.manifest, self.host_manifests.get(host, {}), self.version_cap)
        )
        cached = None if manifest.wire == self.manifest.wire else manifest
        self._targets[host] = cached
        return cached

    def learn_manifest(self, host: str, manifest: Mapping[str, str]) -> None:
        if not manifest:
            return
        if not isinstance(manifest, Manifest):
            manifest = Manifest(manifest)
        known = self.host_manifests.get(host)
        if known is None or known.wire != manifest.wire:
            self.host_manifests[host] = manifest
            self._targets.pop(host, None)
            # Another agent answers for that host now: it may serve our RPC version again.
            self.rpc_versions.forget(host)

    def new_context(self, timeout: float, request_id: str | None = None) -> RequestContext:
        # A context is never saved anywhere: it carries no change list, which would only
        # weigh on the wire.
        context = self._context.for_request(
            request_id or f"req-{uuid.uuid4()}", time.time() + timeout
        )
        cause = request_context()
        if isinstance(cause, RequestContext):
            # Made while serving a request (an agent's handler calling the conductor or
            # another agent): name that request, so the callee's log lines can be found
            # from it (docs/observability.md, "Request ids").
            context.global_request_id = cause.global_request_id or cause.request_id
            context.obj_reset_changes()
        return context

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
        message_id: str | None = None,
    ) -> Any:
        """Ask `host` to run `method` and return its result; raise its error, typed.

        `timeout` (the client's default when None) bounds the whole call, retries included:
        an agent still adopting its guests (`AgentInitializing`) is asked again with a short
        back-off until it is ready or too little time is left, then its last refusal is
        raised. No reply in time raises `CallTimeout`; the agent may still run the call.

        `message_id` is an idempotency key (a fresh one when None). Sent again with the same
        key, the same method and the same arguments, a call that ran (or runs) is answered
        from the agent's reply cache instead of running twice: after a `CallTimeout`, that is
        how to learn what the first attempt did. A key names one call: different arguments
        under it are refused. Cancelling stops only the wait.
        """
        timeout = self.default_timeout if timeout is None else timeout
        if not self.spans.enabled:
            request = self._request(Kind.CALL, host, method, args, instance, timeout, message_id)
            return await self._call(host, method, request, time.monotonic() + timeout)
        span = self._span(Kind.CALL, host, method)
        try:
            request = self._request(
                Kind.CALL, host, method, args, instance, timeout, message_id, span.trace
            )
            return await self._call(host, method, request, time.monotonic() + timeout)
        except BaseException as exc:
            span.failed(_reason(exc))
            raise
        finally:
            span.end()

    async def _call(self, host: str, method: str, request: Request, deadline: float) -> Any:
        """`call`'s attempts of `request` until answered, refused for good or `deadline`."""
        backoff = INITIALIZING_RETRY_MIN
        while True:
            try:
                return await negotiated(
                    self.rpc_versions,
                    host,
                    request,
                    lambda: self._negotiated(host, method, request, deadline),
                )
            except AgentInitializing:
                # Refused before running, and not remembered by the agent: the same request
                # (same id) is safe to send again while the deadline leaves room for it.
                if deadline - time.monotonic() <= backoff:
                    raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, INITIALIZING_RETRY_MAX)

    async def _negotiated(self, host: str, method: str, request: Request, deadline: float) -> Any:
        """One call of `request`, sent again once if the agent refused it for our manifest."""
        request.compact = host in self._digest_hosts
        try:
            return await self._call_once(host, method, request, _left(deadline))
        except ObjectVersionRefused as exc:
            # The agent refused it before running anything and told us what it understands:
            # send once more, back-levelled (`pack` lowers to what we just learnt), under the
            # same id: a refusal is not remembered.
            self.learn_manifest(host, exc.manifest)
            self._digest_hosts.discard(host)
            request.compact = False
        except _DigestRefused as refused:
            # The agent could not read our manifest's digest: it restarted or forgot it
            # (`UnknownManifestDigest`), or it is of a release before digests (a plain
            # `DecodeError`). Send the same message in full: same id, so had it run after
            # all, the agent would answer from its reply cache instead of running it again.
            self._digest_hosts.discard(host)
            request.compact = False
            result = await self._call_once(host, method, request, _left(deadline))
            if not isinstance(refused.error, UnknownManifestDigest):
                self._full_only.add(host)
                self._digest_hosts.discard(host)
            return result
        return await self._call_once(host, method, request, _left(deadline))

    async def cast(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        ttl: float | None = None,
    ) -> None:
        """Queue `method` for `host` without waiting for it; returns once safely queued."""
        ttl = self.default_timeout if ttl is None else ttl
        span = self._span(Kind.CAST, host, method) if self.spans.enabled else None
        try:
            trace = None if span is None else span.trace
            request = self._request(Kind.CAST, host, method, args, instance, ttl, None, trace)
            body = pack(request, target=self._target(host))
            await self.transport.cast(
                host, body, message_id=request.message_id, ttl=ttl, headers=_headers(request)
            )
        except BaseException as exc:
            if span is not None:
                span.failed(_reason(exc))
            raise
        finally:
            if span is not None:
                span.end()

    async def fanout(
        self, method: str, args: Mapping[str, Any] | None = None, *, ttl: float | None = None
    ) -> None:
        """Queue a host-scoped `method` for every agent, at the oldest level any advertised
        and never above the version cap (which holds even before any agent was heard)."""
        ttl = self.default_timeout if ttl is None else ttl
        target = _lowered(self.manifest, self.version_cap, *self.host_manifests.values())
        span = self._span(Kind.CAST, "*", method) if self.spans.enabled else None
        try:
            trace = None if span is None else span.trace
            request = self._request(Kind.CAST, "*", method, args, None, ttl, None, trace)
            request.rpc_version = version_for(method, self.rpc_versions.for_all())
            body = pack(request, Manifest(target))
            await self.transport.fanout(
                body, message_id=request.message_id, ttl=ttl, headers=_headers(request)
            )
        except BaseException as exc:
            if span is not None:
                span.failed(_reason(exc))
            raise
        finally:
            if span is not None:
                span.end()

    async def get_object_manifest(self, host: str, timeout: float | None = None) -> dict[str, str]:
        """Ask `host` which object versions it understands, and remember the answer."""
        manifest = await self.call(host, GET_OBJECT_MANIFEST, timeout=timeout)
        self.learn_manifest(host, manifest)
        return dict(manifest)

    async def subscribe(self, pattern: str) -> EventStream:
        """Events whose topic matches `pattern` (`instance.*.power_state`, `host.#`, ...).

        The subscription is live when this returns; iterate the stream, then `aclose()` it (or
        use it as an async context manager). A `Service` heartbeat teaches the client its
        sender's manifest.

        While any stream is open, the client announces the object manifest it reads
        (`announce_interval`; docs/rpc.md, "Events for older subscribers"): agents of a newer
        release then publish at versions it reads. The first announcement has left when
        this returns; an agent acts on it as soon as it arrives.
        """
        subscription = await self.transport.subscribe(pattern)
        if self.announcer is not None:
            try:
                await self.announcer.acquire()
            except BaseException:
                await subscription.aclose()
                raise
        return EventStream(self, subscription, self.announcer)

    async def events(self, pattern: str) -> AsyncIterator[Event]:
        """`subscribe(pattern)` as a plain async iterator, closed when the iteration stops."""
        async with await self.subscribe(pattern) as stream:
            async for event in stream:
                yield event

    async def _call_once(self, host: str, method: str, request: Request, timeout: float) -> Any:
        body = pack(request, target=self._target(host))
        try:
            raw = await self.transport.call(
                host,
                body,
                message_id=request.message_id,
                timeout=timeout,
                headers=_headers(request),
            )
        except CallTimeout:
            raise CallTimeout(host=host, method=method, timeout=timeout) from None
        return self._raise_or_result(host, raw, request.compact)

    def _raise_or_result(self, host: str, raw: bytes, compact: bool = False) -> Any:
        reply = unpack(raw, self.registry, self.limits)
        if not isinstance(reply, Reply):
            raise RemoteError(exc_type="DecodeError", exc_message="the reply was not a reply")
        if not reply.manifest:
            # Named by a digest we have not seen (the agent was upgraded): full next time,
            # and the agent answers in full.
            self._digest_hosts.discard(host)
        else:
            self.learn_manifest(host, reply.manifest)
        if reply.error is not None:
            error = self.errors.rebuild(reply.error)
            if compact and isinstance(error, DecodeError):
                raise _DigestRefused(error)
            raise error
        if reply.manifest and host not in self._full_only:
            # It ran the call, so it read our manifest (in full, or by a digest it knew):
            # digests from now on.
            self._digest_hosts.add(host)
        return reply.result

    def _request(
        self,
        kind: Kind,
        host: str,
        method: str,
        args: Mapping[str, Any] | None,
        instance: str | None,
        timeout: float,
        message_id: str | None = None,
        trace: TraceParent | None = None,
    ) -> Request:
        """The request to send; it carries `trace` (a client span's), or when None the
        current trace under a new span id (a new trace when there is none)."""
        message_id = message_id or str(uuid.uuid4())
        return Request(
            message_id=message_id,
            kind=kind,
            method=method,
            host=host,
            instance=instance,
            context=self.new_context(timeout, request_id=f"req-{message_id}"),
            args=dict(args or {}),
            manifest=self.manifest,
            rpc_version=version_for(method, self.rpc_versions.for_host(host)),
            trace=outgoing_trace() if trace is None else trace,
        )

    def _span(self, kind: Kind, host: str, method: str) -> Span:
        """A client span for a request of `method` to `host` ("*": every agent), child of
        the current trace."""
        attributes = {
            "rpc.method": method,
            "virtactor.rpc.kind": "call" if kind is Kind.CALL else "cast",
            "virtactor.host": host,
        }
        return self.spans.client(method, current_trace(), attributes)


def _headers(request: Request) -> dict[str, str] | None:
    return None if request.trace is None else request.trace.headers()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return f"{type(exc).__name__}: {exc}"


class _DigestRefused(Exception):
    """A call sent with our manifest's digest came back refused as undecodable."""

    def __init__(self, error: DecodeError) -> None:
        super().__init__(str(error))
        self.error = error
