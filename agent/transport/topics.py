"""Names on the bus and AMQP topic matching.

Routing keys are dot-separated words. Events use `instance.<uuid>.<event>`,
`host.<host>.<event>` and `migration.<uuid>.progress`; requests use `compute.<host>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from agent.errors import InvalidRoutingKey

_WORD = re.compile(r"^[A-Za-z0-9_\-:]+$")

# The object backend's queue, which every conductor consumes (competing consumers): requests
# reach it as `compute.conductor`, like a host's, so no agent may be named that.
CONDUCTOR_QUEUE = "conductor"


@dataclass(slots=True, frozen=True)
class Names:
    """Exchange and queue names under one prefix, so deployments (and tests) stay apart."""

    prefix: str = "virtactor"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def broadcast(self) -> str:
        return f"{self.prefix}.broadcast"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.dead-letters"

    def host_queue(self, host: str) -> str:
        return f"{self.prefix}.compute.{check_word(host)}"


def host_routing_key(host: str) -> str:
    return f"compute.{check_word(host)}"


def check_word(word: str) -> str:
    """A host name or uuid must be one routing-key word: no dots, no wildcards."""
    if not _WORD.match(word):
        raise InvalidRoutingKey(key=word)
    return word


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic-exchange matching: `*` is exactly one word, `#` zero or more words."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
