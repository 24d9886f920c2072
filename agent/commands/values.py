"""A call's arguments from the command line: `key=value` and `key=@file.json`, read as JSON
(a bare word is a string), then turned into the versioned objects the handler's parameters
expect (`instance={"uuid": ...}` becomes an `Instance`).

Pure functions of their inputs (the handler, the words typed): nothing is sent here. Every
problem found is raised at once, a line each, as `UsageError`.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.commands.common import UsageError
from agent.rpc.catalogue import CATALOGUE, Entry, Status
from schemas import SchemaError, VersionedObject, default_registry
from schemas._objfields import ListOfObjectsField, ObjectField
from schemas.objectlist import ObjectList
from schemas.objects import Instance


def parse_pairs(
    words: Sequence[str], read: Callable[[Path], str] = Path.read_text
) -> dict[str, Any]:
    """{key: value} of `key=value` words. A value is a JSON literal (`3`, `true`, `null`,
    `"text"`, `[...]`, `{...}`) or else the word itself as a string; `key=@path` is the JSON
    document in the file at `path`."""
    pairs: dict[str, Any] = {}
    problems: list[str] = []
    for word in words:
        key, sep, text = word.partition("=")
        if not sep or not key.isidentifier():
            problems.append(f"argument {word!r}: expected key=value or key=@file.json")
            continue
        if key in pairs:
            problems.append(f"argument {key!r}: given twice")
            continue
        if text.startswith("@"):
            try:
                pairs[key] = json.loads(read(Path(text[1:])))
            except OSError as exc:
                problems.append(f"argument {key}: cannot read {text[1:]!r}: {exc.strerror or exc}")
            except ValueError as exc:
                problems.append(f"argument {key}: {text[1:]!r} is not JSON: {exc}")
            continue
        pairs[key] = _literal(text)
    if problems:
        raise UsageError(*problems)
    return pairs


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def entry_for(method: str, arguments: Mapping[str, Any], instance: str | None) -> Entry | None:
    """The catalogue's implemented entry for `method`; for a method both scopes serve
    (`get_info`), the instance actor's when the call names an instance (`--instance` or an
    `instance` argument), else the host's. None for a method the catalogue does not list
    (the agent decides: it refuses an unknown one with `UnknownMethod`)."""
    entries = [e for e in CATALOGUE if e.method == method and e.status is not Status.PLANNED]
    if len(entries) > 1:
        by_instance = instance is not None or "instance" in arguments
        wanted = "instance" if by_instance else "host"
        entries = [e for e in entries if e.scope == wanted] or entries
    return entries[0] if entries else None


def parameter_types(entry: Entry) -> dict[str, Any]:
    """{parameter: its type hint} of the entry's handler, `self` and the result left out."""
    hints = typing.get_type_hints(entry.handler())
    hints.pop("return", None)
    return hints


def built_arguments(
    entry: Entry | None, arguments: Mapping[str, Any], instance: str | None
) -> dict[str, Any]:
    """`arguments` with each JSON object given for an object parameter built as that object
    (nested object fields too), checked field by field. With `--instance` and no `instance`
    argument, a handler taking `instance: Instance` gets `Instance(uuid=...)`."""
    if entry is None:
        return dict(arguments)
    hints = parameter_types(entry)
    given = dict(arguments)
    if instance is not None and "instance" not in given and _object_class(hints.get("instance")):
        given["instance"] = {"uuid": instance}
    built: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in given.items():
        hint = hints.get(name)
        if hint is None:
            built[name] = value  # the agent refuses it, naming it (InvalidArguments)
            continue
        built[name] = _for_parameter(name, hint, value, problems)
    if problems:
        raise UsageError(*problems)
    return built


def instance_address(arguments: Mapping[str, Any], instance: str | None) -> str | None:
    """The uuid that addresses the call: `--instance`, else the `instance` argument's."""
    if instance is not None:
        return instance
    target = arguments.get("instance")
    if isinstance(target, Instance) and target.obj_attr_is_set("uuid"):
        return target.uuid
    return None


def _for_parameter(name: str, hint: Any, value: Any, problems: list[str]) -> Any:
    cls = _object_class(hint)
    if cls is not None and (isinstance(value, dict) or _list_for(cls, value)):
        return _build(cls, value, name, problems)
    if cls is not None and value is not None:
        problems.append(f"{name}: expected {_shape(cls)}, got {value!r}")
        return value
    if _accepts_text(hint) and not isinstance(value, str) and _scalar(value):
        # A bare `nodename=1` meant the text "1": the parameter only takes text.
        return json.dumps(value)
    return value


def _object_class(hint: Any) -> type[VersionedObject] | None:
    """The versioned-object class a hint names (`Instance`, `NetworkInfo | None`), if any."""
    candidates = typing.get_args(hint) if _is_union(hint) else (hint,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, VersionedObject):
            return candidate
    return None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _accepts_text(hint: Any) -> bool:
    candidates = typing.get_args(hint) if _is_union(hint) else (hint,)
    return str in candidates and all(c in (str, type(None)) for c in candidates)


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def _shape(cls: type[VersionedObject]) -> str:
    if issubclass(cls, ObjectList):
        return f"{cls.OBJ_NAME} as a JSON list (or object) of its items"
    return f"{cls.OBJ_NAME} as a JSON object of its fields"


def _list_for(cls: type[VersionedObject], value: Any) -> bool:
    return issubclass(cls, ObjectList) and isinstance(value, list)


def _build(cls: type[VersionedObject], value: Any, where: str, problems: list[str]) -> Any:
    """`cls` from its field dict (an object list also from a plain list), each field set on
    its own so every bad one is reported, named `where.field`."""
    if issubclass(cls, ObjectList) and isinstance(value, list):
        value = {"objects": value}
    if not isinstance(value, dict):
        problems.append(f"{where}: expected {_shape(cls)}, got {value!r}")
        return value
    obj = cls()
    for name, given in value.items():
        field = cls._obj_fields.get(name)
        if field is None:
            problems.append(f"{where}: UnknownFieldError: {cls.OBJ_NAME} has no field {name!r}")
            continue
        item = given
        if isinstance(field, ObjectField) and isinstance(given, dict | list):
            child = default_registry.lookup(field.objname)
            item = _build(child, given, f"{where}.{name}", problems)
        elif isinstance(field, ListOfObjectsField) and isinstance(given, list):
            child = default_registry.lookup(field.objname)
            item = [
                _build(child, each, f"{where}.{name}[{index}]", problems)
                if isinstance(each, dict)
                else each
                for index, each in enumerate(given)
            ]
        try:
            setattr(obj, name, item)
        except SchemaError as exc:
            problems.append(f"{where}: {type(exc).__name__}: {exc.message}")
    return obj
