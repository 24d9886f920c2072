"""De-duplication of requests by message id, so a redelivered request never runs twice.

A broker redelivers a request whose acknowledgement was lost (consumer crash, connection cut,
failover); a client re-sends a call after reconnecting. Both carry the original message id. The
first delivery runs; a duplicate that arrives while it runs waits for the same result; one that
arrives later gets the cached reply. A duplicate is the same call: each id is remembered with
its `CallKey` (the method, and a digest of the target and the encoded arguments), and the id
reused for another call is refused with `MessageIdConflict` rather than answered with a reply
that is not its own. Entries expire after `ttl` seconds and the cache holds at
most `capacity` finished entries whose replies weigh at most `max_bytes` together (oldest
evicted first; the newest reply is kept even when it alone is over), so memory stays bounded
however large the replies (console output, diagnostics) are.

With a `ReplyStore`, the replies of finished state-changing requests are also written to disk
before they are sent (and so before the request is acknowledged), and `load()` reads them
back at start: a request redelivered or re-sent to the next agent after a crash is answered
with its first reply instead of running again (agent/rpc/reply_store.py).

With a store the cache also keeps the operation journal's intents (agent/rpc/journal.py):
`begin` records one just before a state-changing handler runs; the reply, when kept,
replaces it in one transaction; a failure answered and not remembered drops it. An intent
left behind (the agent stopped while the handler ran) is resolved at the next start, which
`settle`s its message id with the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.errors import MessageIdConflict
from agent.rpc.reply_store import QUERIES, Intent, ReplyStore, StoredReply

log = logging.getLogger(__name__)

# Pruning the store costs a statement: done once per this many replies written.
PRUNE_EVERY = 256


@dataclass(slots=True, frozen=True)
class CallKey:
    """What one message id stands for: `method`, and `digest` of its target and arguments
    (as encoded: a re-send of the same call has the same bytes)."""

    method: str
    digest: bytes


@dataclass(slots=True, frozen=True)
class Settled:
    """A message id answered by the journal's resolution while a delivery of it waited to
    run (a redelivered cast waiting for the host): that delivery must not run it again."""

    reply: bytes | None


@dataclass(slots=True)
class _Running:
    key: CallKey
    result: asyncio.Future[bytes | None]
    request: bytes  # the encoded request, for its intent
    begun: bool = False  # an intent was recorded


class ReplyCache:
    """Runs each message id's work once and remembers its encoded reply.

    Work in progress is kept apart from finished replies, so one long-running request never
    stops the finished ones from expiring or being evicted.
    """

    def __init__(
        self,
        capacity: int = 10_000,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 64 * 1024 * 1024,
        store: ReplyStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._wall_clock = wall_clock
        self._written = 0
        self.capacity = capacity
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.bytes = 0  # of the finished replies held
        self._clock = clock
        self._running: dict[str, _Running] = {}
        self._settled: dict[str, Settled] = {}
        self._unfinished: set[str] = set()  # intents the last agent left (`load`)
        self._finished: OrderedDict[str, tuple[bytes | None, float, CallKey]] = OrderedDict()
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._running) + len(self._finished)

    async def load(self) -> int:
        """Read back the store's replies still within `ttl`; how many. A store that cannot
        be read is logged: the cache starts empty, as it would without one."""
        if self.store is None:
            return 0
        now, wall = self._clock(), self._wall_clock()
        try:
            stored = await self.store.load(since=wall - self.ttl)
        except Exception as exc:  # sqlite3's own errors: a damaged file must not stop the agent
            log.error("replies not read back from %s: %s", self.store.path, exc)
            return 0
        try:
            # The requests the last agent was stopped in: until the journal has resolved
            # each, a redelivery of one is not refused for its deadline (`left_unfinished`).
            self._unfinished = {intent.message_id for intent in await self.store.unfinished()}
        except Exception as exc:  # sqlite3's own errors
            log.error("intents not read back from %s: %s", self.store.path, exc)
        for entry in stored:
            key = CallKey(entry.method, entry.digest)
            finished_at = now - (wall - entry.finished_at)
            self._finished[entry.message_id] = (entry.reply, finished_at, key)
            if entry.reply is not None:
                self.bytes += len(entry.reply)
        self._bound()
        return len(stored)

    async def run_once(
        self,
        message_id: str,
        key: CallKey,
        work: Callable[[], Awaitable[bytes | None]],
        request: bytes = b"",
    ) -> tuple[bytes | None, bool]:
        """Run `work` unless `message_id` ran (or runs) already; returns (reply, was_duplicate).

        Raises `MessageIdConflict`, running nothing, when `message_id` ran (or runs) for a
        call of another `key`. If `work` raises, nothing is remembered, so a redelivery runs
        it again. Cancelling the first runner cancels the shared work; waiting duplicates then
        see `CancelledError` too. `request` (the encoded request) is what `begin` records.
        """
        self._expire()
        finished = self._finished.get(message_id)
        if finished is not None:
            _check_same_call(message_id, finished[2], key)
            self.duplicates += 1
            return finished[0], True
        running = self._running.get(message_id)
        if running is not None:
            _check_same_call(message_id, running.key, key)
            self.duplicates += 1
            return await asyncio.shield(running.result), True
        result: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._running[message_id] = mine = _Running(key, result, request)
        try:
            reply = await work()
            if self.store is not None and key.method not in QUERIES:
                await self._keep(message_id, key, reply)
        except BaseException as exc:
            del self._running[message_id]
            self._settled.pop(message_id, None)
            if isinstance(exc, asyncio.CancelledError):
                # The intent stays: the agent is stopping with the handler half-way.
                result.cancel()
            else:
                if mine.begun:
                    await self._drop_intent(message_id)
                result.set_exception(exc)
                result.exception()  # consumed here: waiters re-raise their own copy
            raise
        del self._running[message_id]
        result.set_result(reply)
        self._remember(message_id, key, reply)
        self._unfinished.discard(message_id)
        return reply, False

    def left_unfinished(self, message_id: str) -> bool:
        """Whether the last agent was stopped while running `message_id`, and nothing has
        answered it since: it started within its deadline, so a redelivery of it must not be
        refused as expired (that refusal would replace its intent, and the journal would
        then find nothing to finish)."""
        return message_id in self._unfinished

    def running(self, message_id: str) -> bool:
        """Whether a delivery of `message_id` is being served now."""
        return message_id in self._running

    async def begin(
        self, message_id: str, instance: str | None, sender: str | None
    ) -> Settled | None:
        """Record the intent of `message_id`, which runs now (`run_once`), just before its
        handler is asked, if it changes state and there is a store. Returns the `Settled`
        outcome instead, recording nothing, when the journal's resolution answered this
        message id while it waited: it must not run. The intent is committed on return; a
        store that cannot be written is logged and the handler runs unjournaled."""
        settled = self._settled.pop(message_id, None)
        if settled is not None:
            return settled
        running = self._running.get(message_id)
        if self.store is None or running is None or running.key.method in QUERIES:
            return None
        key = running.key
        intent = Intent(
            message_id,
            key.method,
            instance,
            key.digest,
            running.request,
            sender,
            self._wall_clock(),
        )
        try:
            await self.store.begin(intent)
            running.begun = True
        except Exception as exc:  # sqlite3's own errors (disk full, ...)
            log.error("intent of %s not recorded in %s: %s", message_id, self.store.path, exc)
        return None

    async def settle(self, message_id: str, key: CallKey, reply: bytes | None) -> None:
        """Remember `reply` as the answer to `message_id` (`key`) without running anything,
        kept in the store in place of its intent: the journal's resolution of an operation
        the agent was stopped in. A delivery of it waiting to run now gets `Settled` from
        `begin`."""
        if self.store is not None:
            await self._keep(message_id, key, reply)
        if message_id in self._running:
            self._settled[message_id] = Settled(reply)
        self._remember(message_id, key, reply)
        self._unfinished.discard(message_id)

    def _remember(self, message_id: str, key: CallKey, reply: bytes | None) -> None:
        previous = self._finished.pop(message_id, None)
        if previous is not None and previous[0] is not None:
            self.bytes -= len(previous[0])
        self._finished[message_id] = (reply, self._clock(), key)
        if reply is not None:
            self.bytes += len(reply)
        self._bound()

    async def _drop_intent(self, message_id: str) -> None:
        assert self.store is not None
        try:
            await self.store.drop_intent(message_id)
        except Exception as exc:  # sqlite3's own errors
            log.error("intent of %s not dropped from %s: %s", message_id, self.store.path, exc)

    def _bound(self) -> None:
        while len(self._finished) > self.capacity or (
            self.bytes > self.max_bytes and len(self._finished) > 1
        ):
            self._forget_oldest()

    async def _keep(self, message_id: str, key: CallKey, reply: bytes | None) -> None:
        """Write the reply to the store before it is sent; a failure is logged (the request
        is still answered, only not remembered across a restart)."""
        assert self.store is not None
        wall = self._wall_clock()
        entry = StoredReply(message_id, key.method, key.digest, reply, wall)
        try:
            await self.store.put(entry)
            self._written += 1
            if self._written % PRUNE_EVERY == 0:
                await self.store.prune(before=wall - self.ttl, keep=self.capacity)
        except Exception as exc:  # sqlite3's own errors (disk full, ...)
            log.error("reply to %s not kept in %s: %s", message_id, self.store.path, exc)

    def _expire(self) -> None:
        horizon = self._clock() - self.ttl
        while self._finished:
            _reply, finished_at, _key = next(iter(self._finished.values()))
            if finished_at > horizon:
                return
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _message_id, (reply, _finished_at, _key) = self._finished.popitem(last=False)
        if reply is not None:
            self.bytes -= len(reply)


def _check_same_call(message_id: str, first: CallKey, now: CallKey) -> None:
    if first != now:
        raise MessageIdConflict(message_id=message_id, method=now.method, first_method=first.method)
