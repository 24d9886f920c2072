"""The demo's ledger: everything it started, and how each was cleaned up. The final summary
is read from it, so it cannot claim a clean-up that did not happen."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Entry:
    """One thing the demo started; `cleanup` says how it went away ("" while it has not)."""

    what: str
    detail: str
    cleanup: str = ""


@dataclass(slots=True)
class Ledger:
    entries: list[Entry] = field(default_factory=list)

    def started(self, what: str, detail: str) -> Entry:
        entry = Entry(what, detail)
        self.entries.append(entry)
        return entry

    def left(self) -> list[Entry]:
        """What was started and not cleaned up."""
        return [entry for entry in self.entries if not entry.cleanup]
