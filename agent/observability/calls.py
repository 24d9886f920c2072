"""`CallStats`: what a request server did, per method, kept as plain counts.

The RPC server (`agent.rpc.server.RequestServer`, so the agent's `Dispatcher` and the
conductor alike) records every delivery here; the metrics exporter reads it at scrape time
(`virtactor_rpc_calls_total`, `virtactor_rpc_handler_seconds`). Nothing here knows about an
exporter, and recording is a dict look-up, two increments and a bisect.

Method names come off the wire, so a label per name would let any sender grow the exported
series without bound: a method the server refused as unknown is counted as `(unknown)`, a
request that could not be decoded as `-`, and past `max_methods` distinct names the rest as
`(other)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from actors.stats import LatencyHistogram

UNDECODABLE = "-"
UNKNOWN_METHOD = "(unknown)"
OTHER_METHODS = "(other)"
OK = "ok"
DUPLICATE = "duplicate"  # answered from the reply cache, nothing ran

# Refusals: nothing ran, the request itself was wrong or came too late or in a version this
# server does not serve. Logged at WARNING with the reason (the others at INFO).
REFUSALS = frozenset(
    {
        "DecodeError",
        "UnknownManifestDigest",
        "ObjectVersionRefused",
        "IncompatibleRpcVersion",
        "MessageIdConflict",
        "RequestExpired",
        "UnknownMethod",
        "InvalidArguments",
        "PolicyNotAuthorized",
    }
)


@dataclass(slots=True)
class CallStats:
    """Requests by (method, kind, outcome) and handler latency by method.

    `kind` is "call" or "cast" (a fanout arrives as a cast); `outcome` is "ok", "duplicate"
    or the class name of the error answered (or, for a cast, logged).
    """

    max_methods: int = 256
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    latency: dict[str, LatencyHistogram] = field(default_factory=dict)

    def label(self, method: str, outcome: str) -> str:
        """The method's label: bounded however many names senders make up."""
        if outcome == "UnknownMethod":
            return UNKNOWN_METHOD
        if method in self.latency or len(self.latency) < self.max_methods:
            return method
        return OTHER_METHODS

    def record(self, method: str, kind: str, outcome: str, seconds: float) -> None:
        """Count one request; its handler time goes to `method`'s histogram unless it was
        answered from the reply cache."""
        method = self.label(method, outcome)
        key = (method, kind, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        if outcome == DUPLICATE:
            return
        histogram = self.latency.get(method)
        if histogram is None:
            histogram = self.latency[method] = LatencyHistogram()
        histogram.observe(seconds)

    def items(self) -> Iterator[tuple[tuple[str, str, str], int]]:
        """((method, kind, outcome), count) pairs; read on the event loop, like the writes."""
        return iter(self.counts.items())
