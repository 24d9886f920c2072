"""`ReplyStore`: the replies of finished state-changing requests, kept on disk so that "run once
per message id" survives the agent's restart.

An agent killed after an operation finished but before its reply left (or before the
request's acknowledgement reached the broker) is sent the same request again: by the broker,
which redelivers it, or by the caller, which re-sends it under the same message id. Without
this store the new agent would run it a second time; with it, the request is answered with
the first run's reply.

One SQLite file per agent (`[rpc] reply_store`, by default `_replies.<host>.sqlite` in the
instances path), written through aiosqlite's own thread (never on the event loop), in WAL
mode with `synchronous=NORMAL`: a row committed survives the process being killed at any
moment (what this is for); the last rows may be lost if the whole machine loses power.

Only replies of methods that change something are kept (`QUERIES` are answered again
instead: reading twice is harmless, and they are most of the traffic). The rows follow the
in-memory cache's bounds: older than its `ttl`, or beyond its `capacity`, they are pruned.

The same file is the operation journal (agent/rpc/journal.py): an `Intent` row is written
before a state-changing instance handler runs and is deleted in the transaction that writes
the request's reply, so a row left at start is an operation the agent was stopped in.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

# Methods that only read: their replies are not kept across restarts.
QUERIES = frozenset(
    {
        "get_available_resource",
        "get_available_nodes",
        "get_host_uptime",
        "get_host_ip_addr",
        "list_instances",
        "list_instance_uuids",
        "instance_exists",
        "get_info",
        "get_per_instance_usage",
        "get_all_bw_counters",
        "get_all_volume_usage",
        "get_num_instances",
        "get_host_stats",
        "get_host_cpu_stats",
        "legacy_nwinfo",
        "get_diagnostics",
        "get_instance_diagnostics",
        "block_stats",
        "interface_stats",
        "get_console_output",
        "get_volume_connector",
        "default_root_device_name",
        "default_device_names_for_instance",
        "get_device_name_for_instance",
        "get_instance_disk_info",
        "instance_on_disk",
        "macs_for_instance",
        "network_binding_host_id",
        "dhcp_options_for_instance",
        "get_compute_node",
        "get_object_manifest",
    }
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    message_id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    digest BLOB NOT NULL,
    reply BLOB,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS intents (
    message_id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    instance TEXT,
    digest BLOB NOT NULL,
    request BLOB NOT NULL,
    sender TEXT,
    started_at REAL NOT NULL,
    step TEXT NOT NULL
)
"""


@dataclass(slots=True, frozen=True)
class StoredReply:
    message_id: str
    method: str
    digest: bytes
    reply: bytes | None
    finished_at: float  # wall-clock seconds


@dataclass(slots=True, frozen=True)
class Intent:
    """An operation begun and not yet answered: `request` is its encoded body as it arrived
    (so it can be served again), `sender` the identity the transport verified for it, `step`
    how far it got ("asked": its handler was asked to run)."""

    message_id: str
    method: str
    instance: str | None
    digest: bytes
    request: bytes
    sender: str | None
    started_at: float  # wall-clock seconds
    step: str = "asked"


class ReplyStore:
    """The replies file at `path`; `open()` before use, `aclose()` after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open (or make) the file. One that is not a database of replies is moved aside to
        `<name>.damaged` and a new one made: the agent starts either way, as it would have
        without the replies."""
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        try:
            await self._open()
        except sqlite3.DatabaseError as exc:
            await self.aclose()
            aside = self.path.with_name(f"{self.path.name}.damaged")
            log.error("reply store %s is unreadable (%s): moved to %s", self.path, exc, aside)
            await asyncio.to_thread(self.path.replace, aside)
            await self._open()

    async def _open(self) -> None:
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def load(self, since: float) -> list[StoredReply]:
        """The replies finished at or after `since` (wall clock), oldest first."""
        db = self._need()
        query = (
            "SELECT message_id, method, digest, reply, finished_at FROM replies "
            "WHERE finished_at >= ? ORDER BY finished_at"
        )
        async with db.execute(query, (since,)) as rows:
            return [StoredReply(*row) async for row in rows]

    async def put(self, entry: StoredReply) -> None:
        """Keep `entry`, and drop its message id's intent in the same transaction."""
        db = self._need()
        await db.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
            (entry.message_id, entry.method, entry.digest, entry.reply, entry.finished_at),
        )
        await db.execute("DELETE FROM intents WHERE message_id = ?", (entry.message_id,))
        await db.commit()

    async def begin(self, intent: Intent) -> None:
        """Record `intent` (replacing an older one of its message id), committed on return."""
        db = self._need()
        await db.execute(
            "INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                intent.message_id,
                intent.method,
                intent.instance,
                intent.digest,
                intent.request,
                intent.sender,
                intent.started_at,
                intent.step,
            ),
        )
        await db.commit()

    async def drop_intent(self, message_id: str) -> None:
        """Forget the intent of `message_id` with no reply kept (its failure was answered
        and is not remembered: a redelivery runs it again)."""
        db = self._need()
        await db.execute("DELETE FROM intents WHERE message_id = ?", (message_id,))
        await db.commit()

    async def unfinished(self) -> list[Intent]:
        """The intents left without a reply, oldest first."""
        db = self._need()
        query = (
            "SELECT message_id, method, instance, digest, request, sender, started_at, step "
            "FROM intents ORDER BY started_at"
        )
        async with db.execute(query) as rows:
            return [Intent(*row) async for row in rows]

    async def prune(self, before: float, keep: int) -> None:
        """Drop the replies finished before `before`, and all but the newest `keep`."""
        db = self._need()
        await db.execute("DELETE FROM replies WHERE finished_at < ?", (before,))
        await db.execute(
            "DELETE FROM replies WHERE message_id NOT IN "
            "(SELECT message_id FROM replies ORDER BY finished_at DESC LIMIT ?)",
            (keep,),
        )
        await db.commit()

    def _need(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"reply store {self.path} is not open")
        return self._db
