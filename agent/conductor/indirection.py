"""`BusIndirection`: an agent's remotable object calls, carried to a conductor over the bus.

    with use_indirection(agent.objects):
        instance = await Instance.get_by_uuid(ctx, uuid)   # object_class_action
        instance.host = "cmp-2"
        await instance.save()                               # object_action, changes only

It implements `schemas.ObjectIndirectionAPI` with a `ComputeClient` addressing the
conductors' queue, so a call gets what every call gets: its objects back-levelled to the
versions the conductors advertised (and the `version_cap`), a refusal for our versions or
RPC API version answered by sending again, typed errors rebuilt as their classes
(`ObjectNotFound`, `UnexpectedTaskStateError`, ...). It applies nothing itself: `schemas`
applies the updates it returns.

Deadlines: a call's deadline is that of the request context it belongs to (the object's
`obj_context`, or a class call's first argument, when it is a `RequestContext` with a
deadline), else `timeout` seconds. While no conductor answers (no queue yet: `Unroutable`;
no reply: `CallTimeout`) the call is sent again, with back-off, under the same message id (a
conductor that ran it answers from its reply cache), until the deadline; then
`ConductorUnavailable` (retryable) is raised. Any other error is raised as it came.
Cancelling the caller cancels the call; a conductor that already started it finishes it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from agent.client import ComputeClient
from agent.conductor.protocol import (
    CONDUCTOR_QUEUE,
    OBJECT_ACTION,
    OBJECT_BACKPORT_VERSIONS,
    OBJECT_CLASS_ACTION,
    carried_updates,
)
from agent.errors import CallTimeout, ConductorUnavailable, RequestExpired, Unroutable
from schemas import DecodeError, RequestContext, VersionedObject

# Back-off between attempts while no conductor serves the queue.
RETRY_MIN = 0.05
RETRY_MAX = 2.0
# One attempt waits at most this long for its reply before it is sent again: a request a
# conductor lost (it died holding it, unacknowledged) is then served by another in time.
ATTEMPT_TIMEOUT = 10.0


class BusIndirection:
    """`ObjectIndirectionAPI` over the bus. See the module docstring."""

    def __init__(
        self,
        client: ComputeClient,
        *,
        timeout: float = 60.0,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
        queue: str = CONDUCTOR_QUEUE,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.queue = queue
        self.retries = 0  # attempts sent again, all calls together

    async def object_action(
        self, obj: VersionedObject, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        """Run `obj.method(*args, **kwargs)` on a conductor: (the fields it changed, with
        their values, at our version of the object; its result)."""
        reply = await self._call(
            OBJECT_ACTION,
            {"objinst": obj, "objmethod": method, "args": list(args), "kwargs": kwargs},
            obj.OBJ_NAME,
            method,
            obj.obj_context,
        )
        if not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[0], type(obj))):
            reason = f"{OBJECT_ACTION} answered {reply!r:.120}, not [{obj.OBJ_NAME}, result]"
            raise DecodeError(reason=reason)
        return carried_updates(reply[0]), reply[1]

    async def object_class_action(
        self,
        objname: str,
        objver: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run the classmethod `objname.method(*args, **kwargs)` on a conductor; its result."""
        arguments = {
            "objname": objname,
            "objver": objver,
            "objmethod": method,
            "args": list(args),
            "kwargs": kwargs,
        }
        context = args[0] if args else None
        return await self._call(OBJECT_CLASS_ACTION, arguments, objname, method, context)

    async def object_backport_versions(
        self, obj: VersionedObject, object_versions: dict[str, str]
    ) -> VersionedObject:
        """`obj` back-levelled by a conductor to `object_versions` (and our own versions)."""
        arguments = {"objinst": obj, "object_versions": dict(object_versions)}
        result = await self._call(
            OBJECT_BACKPORT_VERSIONS, arguments, obj.OBJ_NAME, "backport", obj.obj_context
        )
        if not isinstance(result, VersionedObject):
            reason = f"{OBJECT_BACKPORT_VERSIONS} answered {result!r:.120}, not an object"
            raise DecodeError(reason=reason)
        return result

    def _budget(self, context: Any) -> float:
        """The seconds a call made for `context` may take (its deadline's, else ours)."""
        if isinstance(context, RequestContext) and context.deadline is not None:
            return context.deadline - time.time()
        return self.timeout

    async def _call(
        self, method: str, arguments: dict[str, Any], objname: str, objmethod: str, context: Any
    ) -> Any:
        budget = self._budget(context)
        deadline = time.monotonic() + budget
        message_id = str(uuid.uuid4())
        delay = self.retry_min
        reason = "its deadline had passed before it was sent"
        while (left := deadline - time.monotonic()) > 0:
            try:
                return await self.client.call(
                    self.queue,
                    method,
                    arguments,
                    timeout=min(left, self.attempt_timeout),
                    message_id=message_id,
                )
            except Unroutable:
                reason = "no conductor is serving its queue"
            except CallTimeout:
                reason = "no conductor answered"
                delay = 0.0  # the attempt itself waited: send it again at once
            except RequestExpired:
                # A copy of it reached a conductor only after its deadline and never ran; that
                # conductor remembers the refusal under this id, so go on under a new one.
                reason = "no conductor took it before its deadline"
                message_id = str(uuid.uuid4())
            self.retries += 1
            await asyncio.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(max(delay * 2, self.retry_min), self.retry_max)
        raise ConductorUnavailable(
            objname=objname, method=objmethod, timeout=max(budget, 0.0), reason=reason
        )
