"""The contract between agents and conductors: the queue, the methods, and how the field
updates of an object call travel.

    object_class_action(objname, objver, objmethod, args, kwargs) -> result
    object_action(objinst, objmethod, args, kwargs)               -> [updates, result]
    object_backport_versions(objinst, object_versions)            -> objinst, back-levelled

Requests go to the queue `CONDUCTOR_QUEUE`, which every conductor consumes, in the RPC
envelope (agent/rpc/envelope.py); replies come back at the caller's manifest.

`updates` (the fields the call changed, with their values) travels as an object of the
caller's class holding its key and those fields, marked changed: the reply back-levels it to
the caller's manifest like any object, so a field the caller's version lacks is dropped and a
converted one converted, where a plain {field: value} map would carry fields the caller
cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.transport.topics import CONDUCTOR_QUEUE
from schemas import VersionedObject

OBJECT_CLASS_ACTION = "object_class_action"
OBJECT_ACTION = "object_action"
OBJECT_BACKPORT_VERSIONS = "object_backport_versions"

__all__ = [
    "CONDUCTOR_QUEUE",
    "OBJECT_ACTION",
    "OBJECT_BACKPORT_VERSIONS",
    "OBJECT_CLASS_ACTION",
    "carried_updates",
    "updates_carrier",
]


def updates_carrier(obj: VersionedObject, updates: Mapping[str, Any]) -> VersionedObject:
    """An object of `obj`'s class holding its key field and `updates`, only those changed."""
    key = obj.OBJ_KEY
    values = dict(updates)
    if key is not None and key not in values and obj.obj_attr_is_set(key):
        values[key] = getattr(obj, key)
    carrier = type(obj)(**values)
    if key is not None and key not in updates:
        carrier.obj_reset_changes([key])
    return carrier


def carried_updates(carrier: VersionedObject) -> dict[str, Any]:
    """The {field: value} updates an `updates_carrier` holds, as the caller's class reads them."""
    return carrier.obj_get_changes()
