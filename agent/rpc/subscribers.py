"""What an agent knows of its event subscribers: the object manifests they announced.

During a rolling upgrade a subscriber may decode events with an older registry than the
agent's. Subscribers announce the manifest they read (`agent.rpc.announcer`) on the events
exchange, `subscribers.announce.<subscriber id>`, every few seconds, each announcement with a
lease; an agent starting asks for announcements at once (`subscribers.solicit.<host>`). The
agent publishes each event at the oldest version any current subscriber reads, and never
above its configured `version_cap` (the explicit pin for subscribers that cannot announce:
those of release 0.1.0). A subscriber whose lease ran out without a new announcement is
forgotten.

    subscriber ──announce(manifest, lease)──> SubscriberWatch ──> SubscriberTable
    agent start ──solicit──> every subscriber announces now      │ target(now)
                                                                  v
                                              EventPublisher.publish back-levels to it

`event_target` is the policy, a pure function; `SubscriberTable` keeps leases and recomputes
the target only when the set of announced manifests changes, never per event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.errors import InvalidRoutingKey
from agent.rpc.envelope import Event, pack, unpack
from agent.rpc.manifest import Manifest
from agent.transport import Subscription, Transport
from agent.transport.topics import check_word
from schemas import DecodeError, DecodeLimits, IncompatibleObjectVersion, ObjectRegistry
from schemas.errors import ObjectVersionError
from schemas.versions import Version, parse_version

if TYPE_CHECKING:
    from agent.rpc.events import EventPublisher

log = logging.getLogger(__name__)

ANNOUNCE_PATTERN = "subscribers.announce.*"
SOLICIT_PATTERN = "subscribers.solicit.*"
# An announcement's lease is this many of its sender's intervals: one or two lost
# announcements do not make an agent forget a subscriber.
LEASE_INTERVALS = 3
# A longer lease would let one announcement pin an agent's events for hours.
MAX_LEASE = 3600.0
# Leases an agent keeps at most; announcements from further subscribers are ignored.
MAX_SUBSCRIBERS = 10_000
# How long an agent holds its first events after asking subscribers to announce.
ANSWER_WAIT = 0.5


def announce_topic(subscriber: str) -> str:
    return f"subscribers.announce.{check_word(subscriber)}"


def solicit_topic(host: str) -> str:
    return f"subscribers.solicit.{check_word(host)}"


class InvalidAnnouncement(DecodeError):
    """A message on the announcements topic that is not a valid announcement: ignored."""

    msg_fmt = "not a subscriber announcement: {reason}"


@dataclass(slots=True, frozen=True)
class Announcement:
    subscriber: str
    manifest: Manifest
    lease: float  # seconds


def announcement(subscriber: str, manifest: Manifest, lease: float) -> bytes:
    """The body announcing that `subscriber` reads `manifest`, for `lease` seconds."""
    return pack(Event(announce_topic(subscriber), subscriber, {"lease": lease}, manifest))


def solicitation(host: str, manifest: Manifest) -> bytes:
    """The body an agent starting publishes to have every subscriber announce at once."""
    return pack(Event(solicit_topic(host), host, None, manifest))


def parse_announcement(body: bytes, registry: ObjectRegistry, limits: DecodeLimits) -> Announcement:
    """Decode and check an announcement; raises `DecodeError` or `InvalidAnnouncement`."""
    event = unpack(body, registry, limits)
    if not isinstance(event, Event):
        raise InvalidAnnouncement(reason=f"a {type(event).__name__.lower()} envelope")
    try:
        expected = announce_topic(event.sender_host)
    except InvalidRoutingKey:
        raise InvalidAnnouncement(
            reason=f"subscriber {event.sender_host!r} is not one routing-key word"
        ) from None
    if event.topic != expected:
        raise InvalidAnnouncement(
            reason=f"topic {event.topic!r} does not name its sender {event.sender_host!r}"
        )
    payload = event.payload
    lease = payload.get("lease") if isinstance(payload, dict) else None
    if not isinstance(lease, int | float) or isinstance(lease, bool) or not 0 < lease <= MAX_LEASE:
        raise InvalidAnnouncement(
            reason=f"lease {lease!r} is not a number of seconds in (0, {MAX_LEASE:.0f}]"
        )
    if not event.manifest:
        raise InvalidAnnouncement(reason=f"subscriber {event.sender_host!r} named no manifest")
    for name, version in event.manifest.items():
        try:
            parse_version(version)
        except ValueError:
            raise InvalidAnnouncement(
                reason=f"manifest entry {name}={version[:20]} is not a version"
            ) from None
    return Announcement(event.sender_host, event.manifest, float(lease))


def event_target(
    own: Mapping[str, str],
    cap: Mapping[str, str] | None,
    announced: Iterable[Mapping[str, str]],
) -> dict[str, str]:
    """The objects events must be lowered to, and their versions: for each object of `own`,
    the oldest of `own`, the `cap` and every `announced` version, when that is older than
    `own`. Objects left at `own`'s version are not named, so an empty result means "publish
    as we are".

    An announced version of another major is ignored: back-levelling cannot reach it, and
    that subscriber could not read any version we can send. A capped version of another
    major, or one that is not a version, raises `ObjectVersionError`: the pin is the
    operator's and must not be dropped silently.
    """
    manifests = list(announced)
    lowered: dict[str, str] = {}
    for name, version in own.items():
        mine = parse_version(version)
        oldest = mine
        capped = cap.get(name) if cap else None
        if capped is not None:
            oldest = min(oldest, _capped(name, capped, mine))
        for manifest in manifests:
            theirs = manifest.get(name)
            if theirs is not None:
                seen = parse_version(theirs)
                if seen.major == mine.major:
                    oldest = min(oldest, seen)
        if oldest != mine:
            lowered[name] = str(oldest)
    return lowered


def _capped(name: str, capped: str, mine: Version) -> Version:
    try:
        version = parse_version(capped)
    except ValueError:
        raise ObjectVersionError(
            objname=name, version=capped, supported=str(mine), reason="malformed version cap"
        ) from None
    if version.major != mine.major:
        raise ObjectVersionError(
            objname=name,
            version=capped,
            supported=str(mine),
            reason="a version cap of another major version",
        )
    return version


@dataclass(slots=True)
class _Lease:
    manifest: Manifest
    expires: float


class SubscriberTable:
    """The announced manifests still under lease, and the versions events go out at.

    Time is passed in (`now`, monotonic seconds), so the table is tested without clocks.
    `target` costs one comparison per event: it is recomputed only when the set of distinct
    announced manifests changes (a subscriber with a new manifest, or a lease that ran out).
    """

    def __init__(self, own: Mapping[str, str], cap: Mapping[str, str] | None, name: str) -> None:
        self.own = dict(own)
        self.cap = dict(cap or {})
        self.name = name  # for the log
        self._leases: dict[str, _Lease] = {}
        self._next_expiry = math.inf
        self._announced: frozenset[str] = frozenset()
        self._target = self._compute()

    def announce(self, subscriber: str, manifest: Manifest, lease: float, now: float) -> bool:
        """Record that `subscriber` reads `manifest` until `now + lease`; False when the
        table is full and a new subscriber was ignored."""
        expires = now + lease
        known = self._leases.get(subscriber)
        if known is None and len(self._leases) >= MAX_SUBSCRIBERS:
            return False
        self._next_expiry = min(self._next_expiry, expires)
        if known is not None and known.manifest.wire == manifest.wire:
            known.expires = expires
            return True
        self._leases[subscriber] = _Lease(manifest, expires)
        self._changed()
        return True

    def target(self, now: float) -> Manifest | None:
        """The versions to lower events to now (only the lowered objects), or None when
        events go out at our own versions."""
        if now >= self._next_expiry:
            self._expire(now)
        return self._target

    def subscribers(self, now: float) -> dict[str, Manifest]:
        """The subscribers under lease at `now`, with their manifests."""
        if now >= self._next_expiry:
            self._expire(now)
        return {name: lease.manifest for name, lease in self._leases.items()}

    def _expire(self, now: float) -> None:
        gone = [name for name, lease in self._leases.items() if lease.expires <= now]
        for name in gone:
            del self._leases[name]
            log.info("%s: subscriber %s stopped announcing; forgotten", self.name, name)
        self._next_expiry = min(
            (lease.expires for lease in self._leases.values()), default=math.inf
        )
        if gone:
            self._changed()

    def _changed(self) -> None:
        announced = frozenset(lease.manifest.wire for lease in self._leases.values())
        if announced == self._announced:
            return
        self._announced = announced
        before = self._target
        self._target = self._compute()
        if _wire(before) != _wire(self._target):
            log.info(
                "%s: events now at %s (%d subscribers announced)",
                self.name,
                _wire(self._target) or "their own versions",
                len(self._leases),
            )

    def _compute(self) -> Manifest | None:
        manifests = {lease.manifest.wire: lease.manifest for lease in self._leases.values()}
        lowered = event_target(self.own, self.cap, manifests.values())
        return Manifest(lowered) if lowered else None


def _wire(target: Manifest | None) -> str:
    return target.wire if target is not None else ""


class SubscriberWatch:
    """An agent's ear for announcements: keeps `publisher.subscribers` current.

    `start()` subscribes to announcements, asks every subscriber to announce now and holds
    the publisher's events for `answer_wait` seconds, so the answers arrive before its first
    event goes out. `aclose()` stops listening (idempotent; also after a failed start).
    A message that is not a valid announcement is logged, counted in `refused`, and ignored.
    """

    def __init__(
        self,
        transport: Transport,
        publisher: EventPublisher,
        *,
        answer_wait: float = ANSWER_WAIT,
        limits: DecodeLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.publisher = publisher
        self.answer_wait = answer_wait
        self.limits = limits or DecodeLimits()
        self.refused = 0
        self._clock = clock
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen, then solicit; returns once the solicitation left (confirmed on AMQP)."""
        host = self.publisher.host
        try:
            self._subscription = await self.transport.subscribe(ANNOUNCE_PATTERN)
            self._task = asyncio.create_task(
                self._listen(self._subscription), name=f"subscribers:{host}"
            )
            self.publisher.hold(self.answer_wait)
            await self.transport.publish_event(
                solicit_topic(host), solicitation(host, self.publisher.manifest)
            )
        except BaseException:
            await self.aclose()
            raise

    async def _listen(self, subscription: Subscription) -> None:
        async for body in subscription:
            self.receive(body)

    def receive(self, body: bytes) -> None:
        """Take one message of the announcements topic."""
        try:
            heard = parse_announcement(body, self.publisher.registry, self.limits)
        except (DecodeError, IncompatibleObjectVersion) as exc:
            self.refused += 1
            log.warning("%s: ignored a subscriber announcement: %s", self.publisher.host, exc)
            return
        table = self.publisher.subscribers
        if not table.announce(heard.subscriber, heard.manifest, heard.lease, self._clock()):
            self.refused += 1
            log.warning(
                "%s: ignored subscriber %s: %d subscribers already announced",
                self.publisher.host,
                heard.subscriber,
                MAX_SUBSCRIBERS,
            )

    async def aclose(self) -> None:
        """Stop listening. What was learnt stays in the table until its leases run out."""
        task, self._task = self._task, None
        subscription, self._subscription = self._subscription, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "%s: the announcement listener failed",
                    self.publisher.host,
                    exc_info=task.exception(),
                )
        if subscription is not None:
            await subscription.aclose()
