"""The conductor's three methods: a peer's remotable calls run here, against the store.

Each is named exactly as its RPC method and declares its wire arguments after `call`; the
server checks a request's arguments against that signature (`check_call`) before it runs.
The remotable method named in a request is checked the same way, against its local body's
signature and type hints, so a bad request is refused with `InvalidArguments` (or
`NotRemotable`, `UnknownObjectError`, `IncompatibleObjectVersion`) before the store sees it.
The bodies run under `use_object_store(...)`, which the server sets.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from agent.conductor.protocol import updates_carrier
from agent.errors import InvalidArguments
from agent.rpc.methods import check_call
from schemas import (
    NotRemotable,
    ObjectPrimitive,
    ObjectRegistry,
    VersionedObject,
    dispatch_object_action,
    dispatch_object_class_action,
    parse_version,
)


@dataclass(slots=True, frozen=True)
class Call:
    """What a method needs of its request beyond its arguments."""

    registry: ObjectRegistry
    caller: Mapping[str, str]  # the caller's object manifest: {name: newest version it reads}


async def object_class_action(
    call: Call, objname: str, objver: str, objmethod: str, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """Run the remotable classmethod `objname.objmethod(*args, **kwargs)` (its class as this
    registry reads `objver`; a newer minor is `IncompatibleObjectVersion`); its result."""
    cls = call.registry.resolve(objname, objver)
    if cls._obj_remotable.get(objmethod) != "class":
        raise NotRemotable(objname=objname, method=objmethod)
    _check_remotable_call(f"{objname}.{objmethod}", getattr(cls, objmethod), args, kwargs)
    return await dispatch_object_class_action(
        call.registry, objname, objver, objmethod, tuple(args), kwargs
    )


async def object_action(
    call: Call, objinst: VersionedObject, objmethod: str, args: list[Any], kwargs: dict[str, Any]
) -> list[Any]:
    """Run the remotable `objinst.objmethod(*args, **kwargs)`: [the fields it changed, as an
    `updates_carrier`; its result]."""
    cls = type(objinst)
    if cls._obj_remotable.get(objmethod) != "instance":
        raise NotRemotable(objname=cls.OBJ_NAME, method=objmethod)
    _check_remotable_call(f"{cls.OBJ_NAME}.{objmethod}", getattr(cls, objmethod), args, kwargs)
    updates, result = await dispatch_object_action(objinst, objmethod, tuple(args), kwargs)
    return [updates_carrier(objinst, updates), result]


async def object_backport_versions(
    call: Call, objinst: VersionedObject, object_versions: dict[str, str]
) -> ObjectPrimitive:
    """`objinst` at the older of the caller's versions and `object_versions` for each
    object in it (nested ones included): what a peer reads that asked for those versions."""
    for name, version in object_versions.items():
        if not (isinstance(name, str) and isinstance(version, str)):
            reason = f"object_versions maps names to versions, not {name!r} to {version!r}"
            raise InvalidArguments(method="object_backport_versions", reason=reason)
        try:
            parse_version(version)
        except ValueError:
            reason = f"{name} version {version!r} is not 'major.minor'"
            raise InvalidArguments(method="object_backport_versions", reason=reason) from None
    target = dict(call.caller)
    for name, version in object_versions.items():
        mine = target.get(name)
        if mine is None or parse_version(version) < parse_version(mine):
            target[name] = version
    return objinst.to_primitive(manifest=target)


Handler = Callable[..., Coroutine[Any, Any, Any]]
HANDLERS: dict[str, Handler] = {
    handler.__name__: handler
    for handler in (object_class_action, object_action, object_backport_versions)
}


def _check_remotable_call(
    name: str, method: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> None:
    """Refuse arguments the remotable method's local body would not take (names, number,
    types) before it runs: the store never sees a key of the wrong type."""
    body = inspect.unwrap(method)
    if not all(isinstance(key, str) for key in kwargs):
        raise InvalidArguments(method=name, reason="keyword argument names must be strings")
    try:
        bound = inspect.signature(body).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise InvalidArguments(method=name, reason=str(exc)) from None
    named = dict(bound.arguments)
    named.pop(next(iter(inspect.signature(body).parameters)))  # self or cls
    check_call(name, body, named)
