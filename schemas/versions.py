"""Object versions ("major.minor") and the parent-version -> child-version relationship maps."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")


class Version(NamedTuple):
    """A parsed object version; compares as a tuple, so `target < (1, 1)` reads naturally."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_version(text: str) -> Version:
    """Parse canonical "major.minor" text (no leading zeros, no spaces) or raise ValueError."""
    match = _VERSION_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an object version of the form 'major.minor'")
    return Version(int(match[1]), int(match[2]))


def child_version_for(
    relationships: Sequence[tuple[str, str]], parent_target: Version
) -> Version | None:
    """The child version a parent at `parent_target` carries, per its relationship map.

    The map lists (parent version, child version) pairs in ascending order; the last pair
    whose parent version is not newer than the target wins. None means the field did not
    exist yet at that parent version, so it must be dropped.
    """
    chosen: Version | None = None
    for parent, child in relationships:
        if parse_version(parent) > parent_target:
            break
        chosen = parse_version(child)
    return chosen
