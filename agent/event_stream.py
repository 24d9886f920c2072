"""`EventStream`: one live event subscription of a `ComputeClient`, yielding decoded events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from agent.rpc.announcer import Announcer
from agent.rpc.envelope import Event, unpack
from agent.transport import Subscription
from schemas import DecodeError, IncompatibleObjectVersion

if TYPE_CHECKING:
    from agent.client import ComputeClient


class EventStream:
    """A live event subscription yielding decoded `Event`s; see `ComputeClient.subscribe`.

    `skipped` counts the events it could not read. While it is open, its client's
    `announcer` (if any) tells agents which versions it reads, so none should be skipped.
    """

    def __init__(
        self,
        client: ComputeClient,
        subscription: Subscription,
        announcer: Announcer | None = None,
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._announcer = announcer  # released once, by aclose
        self.skipped = 0

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for body in self._subscription:
            try:
                event = unpack(body, self._client.registry, self._client.limits)
            except (DecodeError, IncompatibleObjectVersion):
                # An event this client cannot read (garbage, or from a newer release that did
                # not know our versions: we do not announce, or it had not heard us yet) is
                # skipped and counted; it must not end the stream.
                self.skipped += 1
                continue
            if isinstance(event, Event):
                self._client.learn_manifest(event.sender_host, event.manifest)
                yield event

    async def aclose(self) -> None:
        """Stop the subscription; the client stops announcing once its last stream closed."""
        announcer, self._announcer = self._announcer, None
        await self._subscription.aclose()
        if announcer is not None:
            await announcer.release()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
