"""`MigrationSlots`: how many live migrations a host runs at once, per direction.

Outgoing jobs queue (the source's migration actor waits for a slot, its record `queued`);
incoming ones are refused at once with the retryable `MigrationBusy`, and their source asks
again later: a busy destination delays a migration, it never fails it. An incoming slot is
taken by `pre_live_migration` and given back when the guest is adopted or the preparation
rolled back; one whose source never comes back (it crashed mid-way) is freed after
`incoming_timeout` seconds.

Used on the event loop only: taking a slot has no await between the check and the take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from actors.migration.errors import MigrationBusy


class MigrationSlots:
    def __init__(
        self,
        host: str,
        max_outgoing: int,
        max_incoming: int,
        incoming_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.max_incoming = max_incoming
        self.incoming_timeout = incoming_timeout
        self._outgoing = asyncio.Semaphore(max_outgoing)
        self._incoming: dict[str, float] = {}  # migration uuid -> when its slot was taken
        self._clock = clock

    @asynccontextmanager
    async def outgoing(self) -> AsyncIterator[None]:
        """Hold an outgoing slot for the body, waiting for one first."""
        async with self._outgoing:
            yield

    @property
    def incoming(self) -> int:
        self._expire()
        return len(self._incoming)

    def take_incoming(self, migration: str, instance: str) -> None:
        """An incoming slot for `migration` (again: kept); `MigrationBusy` when none is free."""
        self._expire()
        if migration in self._incoming:
            return
        if len(self._incoming) >= self.max_incoming:
            raise MigrationBusy(uuid=instance, host=self.host, running=len(self._incoming))
        self._incoming[migration] = self._clock()

    def give_back_incoming(self, migration: str) -> None:
        self._incoming.pop(migration, None)

    def _expire(self) -> None:
        limit = self._clock() - self.incoming_timeout
        for migration, taken in list(self._incoming.items()):
            if taken < limit:
                del self._incoming[migration]
