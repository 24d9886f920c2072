"""`RecordSaver`: how actors keep their objects' records in the object backend.

An actor's record (an instance's `Instance`, the host's `Service`) is saved through the
object indirection the agent hands in (over the bus, to the conductor): `save()` sends the
changed fields, `create()` the whole record (merged into what the backend holds). The
hypervisor is the truth of what runs and the actor's own record goes on without the backend:
a save that fails (no conductor answers within `timeout`, or any typed error) is logged and
reported as not done, and the actor saves its whole record again at its next resync, so the
backend's record converges once the backend is back. A failed save never undoes an
operation's effect on the hypervisor.

After a failure, saves are not tried for `retry_interval` seconds (reported as not done at
once), so an outage of the backend costs one `timeout`, not one per state change; a resync
(`force`) always tries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from actors.message import current_context
from schemas.errors import VirtactorError
from schemas.objects.context import RequestContext
from schemas.remotable import ObjectIndirectionAPI, use_indirection
from schemas.store import PersistentObject

log = logging.getLogger(__name__)


class RecordSaver:
    """Saves records through `objects` (None: the agent keeps no records; saving is a no-op
    that reports success), each save bounded by `timeout` seconds."""

    def __init__(
        self,
        objects: ObjectIndirectionAPI | None,
        timeout: float = 5.0,
        retry_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0 or retry_interval < 0:
            raise ValueError(
                f"timeout must be > 0 and retry_interval >= 0 seconds, got {timeout} and "
                f"{retry_interval}"
            )
        self.objects = objects
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.failures = 0
        # Saves tried or skipped, by (object name, outcome): "ok", "timeout", "skipped" (within
        # `retry_interval` of a failure) or the class name of the error.
        self.outcomes: dict[tuple[str, str], int] = {}
        self._clock = clock
        self._quiet_until = 0.0  # after a failure: no save is tried before this time

    async def save(
        self, record: PersistentObject, *, whole: bool = False, force: bool = False
    ) -> bool:
        """Save `record`'s changed fields (`whole`: every set field); whether it was saved.
        Within `retry_interval` of a failure nothing is tried, unless `force`. Cancellation
        propagates; every other failure is logged and returns False."""
        if self.objects is None:
            return True
        if not force and self._clock() < self._quiet_until:
            self._count(record, "skipped")
            return False
        # The save's own deadline travels with it (the message expires in the broker when we
        # stop waiting), so a save given up on is never applied after a later one. A save a
        # request caused names that request (its global id), so the conductor's log lines
        # for it can be found from the request's.
        cause = current_context()
        record.obj_context = RequestContext(
            request_id=f"save-{uuid.uuid4()}",
            global_request_id=_global_request_id(cause),
            deadline=time.time() + self.timeout,
        )
        try:
            async with asyncio.timeout(self.timeout):
                with use_indirection(self.objects):
                    if whole:
                        await record.create()
                    else:
                        await record.save()
        except (VirtactorError, TimeoutError) as exc:
            self.failures += 1
            failure = type(exc).__name__ if isinstance(exc, VirtactorError) else "timeout"
            self._count(record, failure)
            self._quiet_until = self._clock() + self.retry_interval
            log.warning(
                "%s %s not saved to the object backend (saved again at the next resync): %s",
                record.OBJ_NAME,
                record._obj_key(),
                exc or "timed out",
            )
            return False
        self._quiet_until = 0.0
        self._count(record, "ok")
        return True

    def _count(self, record: PersistentObject, outcome: str) -> None:
        key = (record.OBJ_NAME, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


def _global_request_id(cause: Any) -> str | None:
    """The id that ties a save to the request that caused it: that request's global id, or
    its own id when it came with none; None outside a request (a resync, a timer)."""
    if not isinstance(cause, RequestContext):
        return None
    return cause.global_request_id or cause.request_id
