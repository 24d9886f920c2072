"""Errors across the wire: a failure on the agent is re-raised as the same class in the caller.

On the wire an error is (class name, message, fields, retryable). The caller looks the class
name up among the `VirtactorError` subclasses it knows and rebuilds the exception with the same
fields; a name it does not know becomes `RemoteError`, keeping the type name and message, so a
newer agent's new error class never breaks an older client.

"Knows" means "has imported": this module imports every module that defines errors the agent
can raise (the tree drawn in `agent.errors`), so that a client, which never loads the Guest
layer or libvirt, still rebuilds each one as its own class. None of them needs libvirt;
tests/agent/rpc/test_error_classes.py checks both in a fresh interpreter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import actors.errors
import actors.firewall.errors
import actors.instance.errors
import actors.instance.recovery
import actors.migration.errors
import actors.tracker.errors
import agent.conductor.errors
import agent.config
import agent.rpc.manifest
import agent.virt.errors
import agent.virt.firewall.errors
import agent.virt.guest.errors
import agent.virt.qemu_img
import schemas.objects.security_group_errors
from agent.errors import RemoteError
from schemas.errors import VirtactorError

ERROR_MODULES = (
    actors.errors,
    actors.firewall.errors,
    actors.instance.errors,
    actors.instance.recovery,
    actors.migration.errors,
    actors.tracker.errors,
    agent.conductor.errors,
    agent.config,
    agent.rpc.manifest,
    agent.virt.errors,
    agent.virt.firewall.errors,
    agent.virt.guest.errors,
    agent.virt.qemu_img,
    schemas.objects.security_group_errors,
)


@dataclass(slots=True, frozen=True)
class WireError:
    exc_type: str
    message: str
    fields: Mapping[str, Any]
    retryable: bool

    def to_primitive(self) -> list[Any]:
        return [self.exc_type, self.message, dict(self.fields), self.retryable]

    @classmethod
    def from_primitive(cls, value: Any) -> WireError:
        if not (isinstance(value, list) and len(value) == 4):
            raise ValueError(
                f"an error on the wire is [type, message, fields, retryable], not {value!r}"
            )
        exc_type, message, fields, retryable = value
        if not (
            isinstance(exc_type, str)
            and isinstance(message, str)
            and isinstance(fields, dict)
            and isinstance(retryable, bool)
        ):
            raise ValueError(f"malformed error on the wire: {value!r}")
        return cls(exc_type, message, fields, retryable)


def error_to_wire(exc: BaseException) -> WireError:
    """Describe `exc` for the caller. Only a `VirtactorError` keeps its fields."""
    if isinstance(exc, VirtactorError):
        return WireError(type(exc).__name__, exc.message, dict(exc.fields), exc.retryable)
    return WireError(type(exc).__name__, str(exc), {}, False)


class ErrorRegistry:
    """Maps error class names to classes: every `VirtactorError` subclass known at creation."""

    def __init__(self, extra: Iterable[type[VirtactorError]] = ()) -> None:
        self._classes: dict[str, type[VirtactorError]] = {}
        for cls in _all_subclasses(VirtactorError):
            self._classes.setdefault(cls.__name__, cls)
        for cls in extra:
            self._classes[cls.__name__] = cls

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def rebuild(self, wire: WireError) -> VirtactorError:
        cls = self._classes.get(wire.exc_type)
        if cls is not None:
            try:
                return cls(wire.message, **wire.fields)
            except TypeError:
                pass  # the class's constructor changed between releases: fall through
        return RemoteError(exc_type=wire.exc_type, exc_message=wire.message)


def _all_subclasses(cls: type[VirtactorError]) -> list[type[VirtactorError]]:
    found: list[type[VirtactorError]] = []
    stack = [cls]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.__subclasses__())
    return found
