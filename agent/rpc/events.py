"""Publishing events: versioned objects on the events exchange, under a topic.

Topics are `instance.<uuid>.<event>`, `host.<host>.<event>` and `migration.<uuid>.progress`.
Every event carries the sender's host and object manifest, so a subscriber learns which
versions the agent understands from its heartbeat alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.rpc.envelope import Event, pack
from agent.rpc.manifest import Manifest
from agent.transport import Transport
from schemas import VersionedObject


class EventPublisher:
    """Publishes versioned objects as events from one host. `version_cap` pins versions."""

    def __init__(
        self,
        transport: Transport,
        host: str,
        manifest: Mapping[str, str],
        version_cap: Mapping[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.host = host
        self.manifest = Manifest(manifest)
        self.version_cap = dict(version_cap) if version_cap else None
        self.published = 0

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        """Publish `obj` under `topic`; returns once the bus accepted it."""
        body = pack(Event(topic, self.host, obj, self.manifest), target=self.version_cap)
        await self.transport.publish_event(topic, body)
        self.published += 1
