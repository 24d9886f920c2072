"""The dead-letter sink: messages that could not be delivered are logged and counted here.

Nothing the runtime accepted is dropped silently: a message to a missing or stopped actor,
one still queued when its actor stopped, and one whose deadline passed before its handler
started all end here, one log line each.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from actors.message import Message

_log = logging.getLogger(__name__)


class DeadLetterReason(StrEnum):
    NOT_FOUND = "not_found"  # no actor at the address
    STOPPED = "stopped"  # the actor was stopping or stopped
    EXPIRED = "expired"  # the deadline passed before the handler started


@dataclass(frozen=True, slots=True)
class DeadLetter:
    address: str
    method: str
    reason: DeadLetterReason
    context: Any


class DeadLetters:
    """Counts undeliverable messages by reason and keeps the last `keep` of them."""

    def __init__(self, keep: int = 100) -> None:
        self.total = 0
        self.by_reason: Counter[DeadLetterReason] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)

    def record(self, address: str, message: Message, reason: DeadLetterReason) -> None:
        letter = DeadLetter(address, message.method, reason, message.context)
        self.total += 1
        self.by_reason[reason] += 1
        self.recent.append(letter)
        _log.warning(
            "dead letter: %s to %s (%s)",
            message.method,
            address,
            reason.value,
            extra={"actor": address, "method": message.method, "context": message.context},
        )
