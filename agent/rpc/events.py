"""Publishing events: versioned objects on the events exchange, under a topic.

Topics are `instance.<uuid>.<event>`, `host.<host>.<event>` and `migration.<uuid>.progress`.
Every event carries the sender's host and object manifest, so a subscriber learns which
versions the agent understands from its heartbeat alone. An event published while serving a
request carries that request's trace as its `traceparent` header (none otherwise: a
heartbeat or a timer's event belongs to no trace).

Objects go out at the oldest version a current subscriber announced it reads, never above
`version_cap` (`agent.rpc.subscribers`): during a rolling upgrade no announcing subscriber
skips an event. An event whose objects are all at versions no target lowers is encoded as
it is, with no back-levelling pass.

Only objects whose class is the one the publisher's registry holds for their name are
published: a subscriber decodes events with a registry too, and anything else (a dict, an
object of an unregistered or other release's class) is a bug of the publishing code, raised
at the call as `UnpublishableEvent` with nothing sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping

from agent.errors import UnpublishableEvent
from agent.observability.tracing import current_trace
from agent.rpc.envelope import Event, pack
from agent.rpc.manifest import Manifest
from agent.rpc.subscribers import SubscriberTable
from agent.transport import Transport
from schemas import ObjectRegistry, VersionedObject
from schemas.fields import Field


class EventPublisher:
    """Publishes `registry`'s objects as events from one host, at the versions its
    subscribers announced (`subscribers`), never above `version_cap`."""

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
        # Raises ObjectVersionError here for a cap no event could be lowered to.
        self.subscribers = SubscriberTable(self.manifest, self.version_cap, name=host)
        self.published = 0
        # By (scope, event) of the topic: ("instance", "power_state"), ("host", "heartbeat").
        self.published_by: dict[tuple[str, str], int] = {}
        self._held_until = 0.0
        # Per class: the names of the objects an event of it may hold (its own included).
        self._reach: dict[type[VersionedObject], frozenset[str]] = {}
        # Per class, for `_lowers_for` only: does that target lower any of them?
        self._lowers: dict[type[VersionedObject], bool] = {}
        self._lowers_for: Manifest | None = None

    def hold(self, seconds: float) -> None:
        """Hold events published in the next `seconds` until then (an agent starting waits
        for its subscribers' announcements before its first event)."""
        self._held_until = max(self._held_until, time.monotonic() + seconds)

    @property
    def target(self) -> Manifest | None:
        """The versions events are lowered to now (only lowered objects), or None."""
        return self.subscribers.target(time.monotonic())

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        """Publish `obj` under `topic`; returns once the bus accepted it.

        Raises `UnpublishableEvent` (nothing sent) unless `obj` is an instance of the class
        the registry holds for its object name. During a `hold` it first waits for the hold
        to end; cancelled meanwhile, it sends nothing.
        """
        self._check_publishable(topic, obj)
        if self._held_until:
            left = self._held_until - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
            else:
                self._held_until = 0.0
        target = self.subscribers.target(time.monotonic())
        if target is not None and not self.back_levels(type(obj), target):
            target = None
        body = pack(Event(topic, self.host, obj, self.manifest), target=target)
        trace = current_trace()
        headers = None if trace is None else trace.headers()
        await self.transport.publish_event(topic, body, headers=headers)
        self.published += 1
        kind = topic_kind(topic)
        self.published_by[kind] = self.published_by.get(kind, 0) + 1

    def back_levels(self, cls: type[VersionedObject], target: Manifest) -> bool:
        """Whether an event of `cls` holds an object `target` lowers (decided once per class
        and target)."""
        if target is not self._lowers_for:
            self._lowers.clear()
            self._lowers_for = target
        lowers = self._lowers.get(cls)
        if lowers is None:
            lowers = self._lowers[cls] = not self._reachable(cls).isdisjoint(target)
        return lowers

    def _reachable(self, cls: type[VersionedObject]) -> frozenset[str]:
        names = self._reach.get(cls)
        if names is None:
            names = self._reach[cls] = frozenset(_object_names(cls, self.registry))
        return names

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


def topic_kind(topic: str) -> tuple[str, str]:
    """The (scope, event) of `topic`, without the uuid or host between them: a bounded label
    pair for counting (`instance.<uuid>.power_state` -> ("instance", "power_state"))."""
    scope, _, rest = topic.partition(".")
    return scope, rest.rpartition(".")[2]


def _object_names(cls: type[VersionedObject], registry: ObjectRegistry) -> set[str]:
    """`cls`'s object name and those of every object its fields may hold, nested or not."""
    seen: set[str] = set()
    todo = [cls.OBJ_NAME]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in registry:
            continue  # named by a field, but not ours: nothing further to follow
        held = registry.lookup(name)
        for field_name in held.obj_fields():
            todo.extend(_field_object_names(getattr(held, field_name)))
    return seen


def _field_object_names(field: Field) -> Iterator[str]:
    # Object fields name their objects; containers (a dict of objects) hold one as element.
    objname = getattr(field, "objname", None)
    if isinstance(objname, str):
        yield objname
    element = getattr(field, "element", None)
    if isinstance(element, Field):
        yield from _field_object_names(element)
