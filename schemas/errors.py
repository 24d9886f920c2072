"""The root of virtactor's exception tree, and the errors of the schemas layer.

Every error virtactor raises on purpose derives from `VirtactorError`. Errors carry their fields
as attributes and render their message from a template, so a remote peer can rebuild them
from (class name, fields) and a log line names the thing and the value that was wrong.

    VirtactorError
    ├── SchemaError                  (schemas/)  an object or value does not fit its schema
    │   ├── ObjectFieldError         a value does not fit Object.field
    │   ├── UnknownFieldError        no such field
    │   ├── UnsetFieldError          read of an unset field without default (AttributeError)
    │   ├── ReadOnlyFieldError       second assignment of a read-only field
    │   ├── UnknownObjectError       no such object name in the registry
    │   ├── IncompatibleObjectVersion  a newer minor version; carries our manifest (retryable)
    │   ├── ObjectVersionError       another major version, or an impossible back-level target
    │   ├── EncodeError              a value the wire cannot carry
    │   ├── DecodeError              bytes that are not a valid message (any decode failure
    │   │                            except IncompatibleObjectVersion, which is not a subclass)
    │   ├── NotRemotable             a remote call to a method that is not remotable
    │   ├── NoObjectStore            a local remotable body with no store in use
    │   ├── ObjectNotFound           the store has no such object
    │   └── UnexpectedStateError     a compare-and-set save found another value
    │       ├── UnexpectedTaskStateError   (expected_task_state)
    │       └── UnexpectedVMStateError     (expected_vm_state)
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


class ObjectFieldError(SchemaError):
    """A value does not fit a field: names `Object.field`, the expected type and the value."""

    objname: str
    field: str
    expected: str
    value: Any
    msg_fmt = "{objname}.{field}: expected {expected}, got {value!r}"


class UnknownFieldError(SchemaError):
    """A name that is not a field of the object (constructor keyword, wire data, lookup)."""

    objname: str
    field: str
    msg_fmt = "{objname} has no field {field!r}"


class UnsetFieldError(SchemaError, AttributeError):
    """Reading a field that was never set and has no default.

    Also an `AttributeError`, so `getattr(obj, name, fallback)` and `hasattr` behave.
    """

    objname: str
    field: str
    msg_fmt = "{objname}.{field} is not set and has no default"


class ReadOnlyFieldError(SchemaError):
    """Changing a read-only field that already holds a value."""

    objname: str
    field: str
    current: Any
    msg_fmt = "{objname}.{field} is read-only and already set to {current!r}"


class UnknownObjectError(SchemaError):
    """An object name the registry does not know."""

    objname: str
    msg_fmt = "unknown object type {objname!r}"


class IncompatibleObjectVersion(SchemaError):
    """A peer sent an object of a version this side cannot read.

    Raised for a newer minor version of a known object. It carries the receiver's whole
    `manifest` ({object name: newest version}), so the sender can encode again back-levelled
    to it; hence `retryable`. Not a `DecodeError`: callers catch it on its own.
    """

    objname: str
    objver: str
    supported: str
    manifest: dict[str, str]
    msg_fmt = "{objname} version {objver} is newer than the supported {supported}"
    retryable = True


class ObjectVersionError(SchemaError):
    """A version that cannot be bridged: another major version, or a back-level target newer
    than the sender's own. Not retryable: no manifest makes the two sides agree."""

    objname: str
    version: str
    supported: str
    reason: str
    msg_fmt = "{objname} version {version} is not supported (this side has {supported}): {reason}"


class EncodeError(SchemaError):
    """A value that the codec cannot put on the wire."""

    reason: str
    msg_fmt = "cannot encode: {reason}"


class DecodeError(SchemaError):
    """Bytes that are not a valid message: garbage, over a limit, or objects that do not validate.

    `reason` says what was wrong; the underlying error, if any, is the `__cause__`.
    """

    reason: str
    msg_fmt = "cannot decode: {reason}"


class NotRemotable(SchemaError):
    """A remote call named a method that is not a remotable method of the object."""

    objname: str
    method: str
    msg_fmt = "{objname}.{method} is not a remotable method"


class NoObjectStore(SchemaError):
    """A remotable method ran locally but no object store is in use."""

    objname: str
    method: str
    msg_fmt = (
        "{objname}.{method} needs an object store or an indirection API; "
        "wrap the call in use_object_store(...) or use_indirection(...)"
    )


class ObjectNotFound(SchemaError):
    """The object store holds no object of that name and key."""

    objname: str
    key: str
    msg_fmt = "{objname} {key!r} could not be found"


class UnexpectedStateError(SchemaError):
    """A compare-and-set save found a field at another value than the caller expected:
    nothing was changed (nova's `expected_task_state`)."""

    objname: str
    key: str
    field: str
    expected: list[Any]
    actual: Any
    msg_fmt = "{objname} {key}: {field} is {actual!r}, expected one of {expected!r}; nothing saved"


class UnexpectedTaskStateError(UnexpectedStateError):
    """`save(expected_task_state=...)` found another task_state."""


class UnexpectedVMStateError(UnexpectedStateError):
    """`save(expected_vm_state=...)` found another vm_state."""


def unexpected_state(
    objname: str, key: str, field: str, expected: list[Any], actual: Any
) -> UnexpectedStateError:
    """The narrowest error for a compare-and-set on `field` that found `actual`."""
    cls = {"task_state": UnexpectedTaskStateError, "vm_state": UnexpectedVMStateError}.get(
        field, UnexpectedStateError
    )
    return cls(objname=objname, key=key, field=field, expected=expected, actual=actual)
