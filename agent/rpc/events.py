"""Publishing events: versioned objects on the events exchange, under a topic.

Topics are `instance.<uuid>.<event>`, `host.<host>.<event>` and `migration.<uuid>.progress`.
Every event carries the sender's host and object manifest, so a subscriber learns which
versions the agent understands from its heartbeat alone.

Only objects whose class is the one the publisher's registry holds for their name are
published: a subscriber decodes events with a registry too, and anything else (a dict, an
object of an unregistered or other release's class) is a bug of the publishing code, raised
at the call as `UnpublishableEvent` with nothing sent.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.errors import UnpublishableEvent
from agent.rpc.envelope import Event, pack
from agent.rpc.manifest import Manifest
from agent.transport import Transport
from schemas import ObjectRegistry, VersionedObject


class EventPublisher:
    """Publishes `registry`'s objects as events from one host. `version_cap` pins versions."""

    def __init__(
        self,
        transport: Transport,
        host: str,
        registry: ObjectRegistry,
        version_cap: Mapping[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.host = host
        self.registry = registry
        self.manifest = Manifest(registry.manifest())
        self.version_cap = dict(version_cap) if version_cap else None
        self.published = 0

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        """Publish `obj` under `topic`; returns once the bus accepted it.

        Raises `UnpublishableEvent` (nothing sent) unless `obj` is an instance of the class
        the registry holds for its object name.
        """
        self._check_publishable(topic, obj)
        body = pack(Event(topic, self.host, obj, self.manifest), target=self.version_cap)
        await self.transport.publish_event(topic, body)
        self.published += 1

    def _check_publishable(self, topic: str, obj: object) -> None:
        if isinstance(obj, VersionedObject):
            cls: type = type(obj)
            name = obj.OBJ_NAME
            if name in self.registry and self.registry.lookup(name) is cls:
                return
            what = f"{name} {obj.VERSION} of class {cls.__module__}.{cls.__qualname__}"
        else:
            cls = type(obj)
            builtin = cls.__module__ == "builtins"
            what = cls.__qualname__ if builtin else f"{cls.__module__}.{cls.__qualname__}"
        raise UnpublishableEvent(value_type=what, topic=topic)
