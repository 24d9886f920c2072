"""`RequestContext`: who asked, under which request id, and until when."""

from __future__ import annotations

from typing import Any

from schemas import fields
from schemas.base import VersionedObject
from schemas.registry import default_registry

# Not fields: what a receiver attaches to the context it decoded, never encoded with it.
_TRANSIENT = ("obj_trace", "obj_caller")


@default_registry.register
class RequestContext(VersionedObject):
    """Travels with every request; `deadline` is a unix time (float) or None for none.

    `obj_trace` is not a field: the W3C trace context the request runs in, which travels in
    the message's headers (agent/observability/tracing.py). The server that decoded the
    context attaches it here, so code working for the request (an actor's handler, a call
    it makes to another agent) finds it where it finds the context. Unset until then: read
    it with `getattr(context, "obj_trace", None)`.

    `obj_caller`, likewise never encoded: the identity whose signature the transport verified
    on the request (docs/security.md), attached by the server that decoded it, so every log
    line the request causes names its caller. Unset on an unsigned bus.
    """

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = _TRANSIENT

    obj_trace: Any
    obj_caller: str | None

    request_id: str = fields.String()
    global_request_id: str | None = fields.String(nullable=True, default=None)
    user_id: str | None = fields.String(nullable=True, default=None)
    project_id: str | None = fields.String(nullable=True, default=None)
    roles: list[str] = fields.List(fields.String(), default=[])
    is_admin: bool = fields.Boolean(default=False)
    deadline: float | None = fields.Float(nullable=True, default=None)

    def for_request(self, request_id: str, deadline: float | None) -> RequestContext:
        """A copy of this context for one request, with no changes recorded.

        The per-call path of a client: the identity fields were checked once when this
        template was built, so only the two new values are checked here.
        """
        if type(request_id) is not str:
            raise TypeError(f"request_id must be a str, not {type(request_id).__name__}")
        if deadline is not None:
            deadline = float(deadline)
        values = {**self._values, "request_id": request_id, "deadline": deadline}
        return RequestContext._obj_adopt(values, None)

    def time_left(self, now: float) -> float | None:
        """Seconds until the deadline at unix time `now` (negative once past); None if none."""
        return None if self.deadline is None else self.deadline - now

    def expired(self, now: float) -> bool:
        """Whether the deadline has passed at unix time `now`."""
        return self.deadline is not None and now >= self.deadline
