"""The object backend's errors, apart from the database code, so that every client knows
them by class without loading SQLAlchemy (agent/rpc/remote_errors.py imports this module).

    VirtactorError
    └── StoreError                  the object store could not do what was asked
        ├── DatabaseUnavailable     the database did not answer (retryable)
        ├── DatabaseError           the database refused a statement
        ├── NotStored               an object the backend keeps no table for
        ├── FieldNotQueryable       a query on a field stored as JSON
        └── StoreContention         a compare-and-set that kept losing its race (retryable)
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class StoreError(VirtactorError):
    msg_fmt = "object store error: {reason}"


class DatabaseUnavailable(StoreError):
    """The database did not answer (down, unreachable, locked past the busy timeout)."""

    url: str
    reason: str
    msg_fmt = "the object database at {url} is unavailable: {reason}"
    retryable = True


class DatabaseError(StoreError):
    """The database refused a statement for a reason no narrower error names."""

    url: str
    reason: str
    msg_fmt = "the object database at {url} refused a statement: {reason}"


class NotStored(StoreError):
    objname: str
    msg_fmt = "{objname} objects are not stored by the object backend (no table)"


class FieldNotQueryable(StoreError):
    objname: str
    field: str
    msg_fmt = "{objname}.{field} is stored as JSON and cannot be matched in a query"


class StoreContention(StoreError):
    objname: str
    key: str
    msg_fmt = "{objname} {key}: the state kept changing under a compare-and-set; nothing saved"
    retryable = True
