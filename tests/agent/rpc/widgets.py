"""Two releases of one object, `Widget`, each in the registry of its own release: 1.0 with a
name, 1.1 adding a colour (dropped when back-levelled). The mixed-version RPC and event tests
share them."""

from __future__ import annotations

from typing import Any

from schemas import ObjectRegistry, VersionedObject, fields
from schemas.objects import RequestContext
from schemas.versions import Version

OLD_RELEASE = ObjectRegistry()
NEW_RELEASE = ObjectRegistry()
for registry in (OLD_RELEASE, NEW_RELEASE):
    registry.register(RequestContext)


@OLD_RELEASE.register
class WidgetOld(VersionedObject):
    OBJ_NAME = "Widget"
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    name: str = fields.String()


@NEW_RELEASE.register
class WidgetNew(VersionedObject):
    OBJ_NAME = "Widget"
    # 1.0: Initial version
    # 1.1: Added colour
    VERSION = "1.1"
    __slots__ = ()

    name: str = fields.String()
    colour: str = fields.String(default="plain")

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 1):
            primitive.pop("colour", None)
