"""The conductor: serves remotable object methods to agents over the bus, from one store.

    agent: instance.save() ── BusIndirection ──> queue `conductor` ──> ConductorServer
                                                  (every conductor       │ decode, once per id,
                                                   consumes it)          │ checks, deadline
                                                                         v
                                    the method's local body under use_object_store(store)
                                    ──> reply back-levelled to the caller's manifest

`ConductorServer` is the RPC serving of agent/rpc/server.py (strict decode, the reply cache,
RPC API and object version refusals, deadlines, typed errors, replies at the caller's
versions) with the three methods of `agent.conductor.actions` instead of actors. Requests
run concurrently, each in its own task, as many at once as the transport's prefetch allows:
nothing serialises them but the store.

`Conductor` is one conductor on a transport: `start()` consumes the queue (no fanouts reach
it), `aclose()` stops consuming and lets requests under way finish. Several conductors, in
one process or many, consume the same queue as competing consumers; they must share one
database, as nothing else is shared between them (each keeps its own reply cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.conductor.actions import HANDLERS, Call
from agent.conductor.db import create_engine
from agent.conductor.protocol import CONDUCTOR_QUEUE
from agent.conductor.schema import HEAD_REVISION, MIGRATIONS, schema_revision, upgrade_db
from agent.conductor.store import SqlObjectStore
from agent.config import AgentConfig
from agent.errors import DatabaseNotUpgraded, UnknownMethod
from agent.observability.spans import NO_SPANS, Spans
from agent.rpc.dedup import ReplyCache
from agent.rpc.envelope import Request
from agent.rpc.manifest_store import ManifestStore
from agent.rpc.methods import check_call
from agent.rpc.server import RequestServer
from agent.transport import Transport
from schemas import DecodeLimits, ObjectRegistry, ObjectStore, default_registry, use_object_store

log = logging.getLogger(__name__)


class ConductorServer(RequestServer):
    """Serves `object_class_action`, `object_action` and `object_backport_versions` from
    `store`; `get_object_manifest` as every server does. See the module docstring."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        registry: ObjectRegistry = default_registry,
        limits: DecodeLimits | None = None,
        cache: ReplyCache | None = None,
        manifests: ManifestStore | None = None,
        wall_clock: Callable[[], float] = time.time,
        spans: Spans = NO_SPANS,
    ) -> None:
        super().__init__(
            registry=registry,
            manifest=registry.manifest(),
            limits=limits or DecodeLimits(),
            cache=cache,
            manifests=manifests,
            wall_clock=wall_clock,
            spans=spans,
        )
        self.store = store

    async def _serve(self, request: Request, remaining: float | None) -> Any:
        # The deadline bounds the start only, as for the agent's handlers: a store write
        # once begun is finished and answered, never abandoned half-way.
        handler = HANDLERS.get(request.method)
        if handler is None or request.instance is not None:
            raise UnknownMethod(method=request.method)
        check_call(request.method, handler, request.args)
        call = Call(self.registry, request.manifest)
        with use_object_store(self.store, self.registry):
            return await handler(call, **request.args)


class Conductor:
    """One conductor serving `queue` on `transport` from `store`. See the module docstring."""

    def __init__(
        self,
        transport: Transport,
        store: ObjectStore,
        *,
        registry: ObjectRegistry = default_registry,
        limits: DecodeLimits | None = None,
        cache: ReplyCache | None = None,
        queue: str = CONDUCTOR_QUEUE,
        spans: Spans = NO_SPANS,
    ) -> None:
        """`spans`: a server span per request served (`[tracing]`), in the caller's trace."""
        self.transport = transport
        self.store = store
        self.queue = queue
        self.server = ConductorServer(
            store, registry=registry, limits=limits, cache=cache, spans=spans
        )
        self._serving = False

    async def start(self) -> None:
        """Consume the queue (declaring it, unbound from fanouts); the transport is started."""
        await self.transport.serve(self.queue, self.server.handle, fanout=False)
        self._serving = True
        log.info("conductor serving %s", self.queue)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop consuming; requests under way finish (up to `timeout`) and are answered.
        Requests still queued stay for the other conductors, or the next one to start."""
        if self._serving:
            self._serving = False
            await self.transport.unserve(self.queue, timeout)

    async def __aenter__(self) -> Conductor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def database_location(config: AgentConfig) -> str:
    """`[conductor] database_url`, or by default a SQLite file in `[agent] instances_path`."""
    if config.conductor.database_url:
        return config.conductor.database_url
    return str(Path(config.agent.instances_path) / "_conductor.sqlite")


@contextlib.asynccontextmanager
async def running_conductor(
    transport: Transport,
    config: AgentConfig,
    *,
    registry: ObjectRegistry = default_registry,
    upgrade: bool = False,
    spans: Spans = NO_SPANS,
) -> AsyncIterator[Conductor]:
    """A conductor serving on `transport` (started) from the database `config` names, until
    the block ends; then it stops consuming, lets requests under way finish, and closes the
    database. With `upgrade`, the database is brought to this release's schema first (the
    embedded conductor: nobody else would); without, one that is behind is refused with
    `DatabaseNotUpgraded` before anything is served."""
    url = database_location(config)
    if upgrade:
        await upgrade_db(url)
    engine = create_engine(url)
    try:
        if not upgrade:
            await check_schema(engine)
        conductor = Conductor(
            transport,
            SqlObjectStore(engine, registry),
            registry=registry,
            limits=DecodeLimits(max_size=config.rpc.max_message_bytes),
            cache=ReplyCache(
                capacity=config.rpc.reply_cache_entries,
                ttl=config.rpc.reply_cache_seconds,
                max_bytes=config.rpc.reply_cache_bytes,
            ),
            spans=spans,
        )
        async with conductor:
            yield conductor
    finally:
        await engine.dispose()


async def check_schema(engine: AsyncEngine) -> None:
    """Refuse a database this release's migrations have not reached (`DatabaseNotUpgraded`).

    A revision our scripts do not know is a newer release's: revisions only add columns and
    tables, which this release ignores, so a rollback keeps serving the upgraded database.
    """
    found = await schema_revision(engine)
    if found == HEAD_REVISION:
        return
    if found is not None and found not in await asyncio.to_thread(_known_revisions):
        log.info(
            "object database at revision %s, newer than this release's %s", found, HEAD_REVISION
        )
        return
    raise DatabaseNotUpgraded(
        url=engine.url.render_as_string(hide_password=True), found=found, needed=HEAD_REVISION
    )


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
