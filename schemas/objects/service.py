"""`Service`: one running agent (or other binary) and its heartbeat."""

from __future__ import annotations

from datetime import datetime

from schemas import fields
from schemas.errors import ObjectNotFound
from schemas.objects.context import RequestContext
from schemas.registry import default_registry
from schemas.remotable import remotable_classmethod
from schemas.store import PersistentObject


@default_registry.register
class Service(PersistentObject):
    """A service on a host: whether it is enabled and when it last reported."""

    # 1.0: Initial version
    # 1.1: Added the remotable destroy
    VERSION = "1.1"
    __slots__ = ()
    OBJ_KEY = "uuid"

    uuid: str = fields.UUID(read_only=True)
    host: str = fields.String()
    binary: str = fields.String()  # "virtactor-compute"
    topic: str | None = fields.String(nullable=True, default=None)
    disabled: bool = fields.Boolean(default=False)
    disabled_reason: str | None = fields.String(nullable=True, default=None)
    forced_down: bool = fields.Boolean(default=False)
    report_count: int = fields.Integer(default=0)
    version: int = fields.Integer(default=0)  # the service's RPC/object compatibility level
    last_seen_up: datetime | None = fields.DateTime(nullable=True, default=None)

    @remotable_classmethod
    async def get_by_host_and_binary(
        cls, ctx: RequestContext | None, host: str, binary: str
    ) -> Service:
        """The service `binary` on `host`, or ObjectNotFound."""
        for service in await cls._obj_find(
            "get_by_host_and_binary", {"host": host, "binary": binary}
        ):
            return service
        raise ObjectNotFound(objname=cls.OBJ_NAME, key=f"{host}/{binary}")
