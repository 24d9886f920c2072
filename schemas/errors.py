"""The root of virtactor's exception tree, and the errors of the schemas layer.

Every error virtactor raises on purpose derives from `VirtactorError`. Errors carry their fields
as attributes and render their message from a template, so a remote peer can rebuild them
from (class name, fields) and a log line names the thing and the value that was wrong.

    VirtactorError
    ├── SchemaError                  (schemas/)  an object or value does not fit its schema
    │   ├── ...                      field validation, unknown objects, version mismatches
    │   └── DecodeError              bytes that are not a valid message
    ├── ActorError                   (actors/)   mailboxes, asks, supervision
    └── ...                          (agent/)    hypervisor, instances, RPC

Each layer defines its own subclasses next to its code; `agent.errors` re-exports the tree.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VirtactorError(Exception):
    """Base of every error virtactor raises on purpose.

    Subclasses set `msg_fmt`, a `str.format` template over the keyword fields given to the
    constructor; the fields stay available as attributes (`err.uuid`) and in `err.fields`.
    `retryable` says whether the same request may succeed if sent again unchanged.
    """

    msg_fmt: ClassVar[str] = "an unexpected error occurred"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.fields: dict[str, Any] = fields
        for name, value in fields.items():
            setattr(self, name, value)
        if message is None:
            try:
                message = self.msg_fmt.format(**fields)
            except (KeyError, IndexError, ValueError):
                # A template/field mismatch must never hide the original error.
                message = f"{self.msg_fmt} {fields!r}"
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))


def _rebuild(cls: type[VirtactorError], message: str, fields: dict[str, Any]) -> VirtactorError:
    return cls(message, **fields)


class SchemaError(VirtactorError):
    """An object, field or value does not fit its declared schema."""

    msg_fmt = "schema error"
