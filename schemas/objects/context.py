"""`RequestContext`: who asked, under which request id, and until when."""

from __future__ import annotations

from schemas import fields
from schemas.base import VersionedObject
from schemas.registry import default_registry


@default_registry.register
class RequestContext(VersionedObject):
    """Travels with every request; `deadline` is a unix time (float) or None for none."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    request_id: str = fields.String()
    global_request_id: str | None = fields.String(nullable=True, default=None)
    user_id: str | None = fields.String(nullable=True, default=None)
    project_id: str | None = fields.String(nullable=True, default=None)
    roles: list[str] = fields.List(fields.String(), default=[])
    is_admin: bool = fields.Boolean(default=False)
    deadline: float | None = fields.Float(nullable=True, default=None)

    def time_left(self, now: float) -> float | None:
        """Seconds until the deadline at unix time `now` (negative once past); None if none."""
        return None if self.deadline is None else self.deadline - now

    def expired(self, now: float) -> bool:
        """Whether the deadline has passed at unix time `now`."""
        return self.deadline is not None and now >= self.deadline
