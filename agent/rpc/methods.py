"""Which actor serves which RPC method, and checking a request's arguments before delivery.

The method table is built from the actor classes' handler tables, so a method's RPC name is
exactly its handler's name. Arguments are checked against the handler's signature and type
hints: unknown or missing names, and values of the wrong type (a versioned object of the wrong
class, a string where an integer belongs) are refused with `InvalidArguments` before the actor
sees the message, so a bad request never half-applies.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from actors import Actor
from agent.errors import InvalidArguments, UnknownMethod


class Scope(enum.Enum):
    HOST = "host"
    INSTANCE = "instance"
    TRACKER = "tracker"
    FIREWALL = "firewall"


@dataclass(slots=True, frozen=True)
class _Parameter:
    name: str
    required: bool
    check: Callable[[Any], bool]
    expected: str


@dataclass(slots=True, frozen=True)
class Route:
    method: str
    scope: Scope
    parameters: tuple[_Parameter, ...]

    def check_arguments(self, args: Mapping[str, Any]) -> None:
        _check(self.method, self.parameters, args)


def check_call(method: str, function: Callable[..., Any], args: Mapping[str, Any]) -> None:
    """Check named `args` against `function`'s parameters after its first (self or cls), as
    a handler's are checked: `InvalidArguments` naming `method` for an unknown, missing or
    mistyped one. For functions served outside the actors (the conductor's object methods)."""
    _check(method, _function_parameters(function), args)


@functools.cache
def _function_parameters(function: Callable[..., Any]) -> tuple[_Parameter, ...]:
    return _parameters(function)


def _check(method: str, parameters: tuple[_Parameter, ...], args: Mapping[str, Any]) -> None:
    known = {p.name for p in parameters}
    unexpected = sorted(set(args) - known)
    if unexpected:
        raise InvalidArguments(method=method, reason=f"unexpected argument(s) {unexpected}")
    for parameter in parameters:
        if parameter.name not in args:
            if parameter.required:
                raise InvalidArguments(method=method, reason=f"missing argument {parameter.name!r}")
            continue
        value = args[parameter.name]
        if not parameter.check(value):
            raise InvalidArguments(
                method=method,
                reason=(
                    f"argument {parameter.name!r} must be {parameter.expected}, "
                    f"not {type(value).__name__}"
                ),
            )


class MethodTable:
    """RPC method name -> `Route`, from the host, instance and tracker actor classes.

    A method may be served both per instance and by the host (nova's `get_info` is asked of
    the instance, and of the host for any instance it knows): a request that names an
    instance goes to the instance's actor, one that does not to the host's.
    """

    def __init__(
        self, actors: Mapping[Scope, type[Actor]], exposed: Collection[str] | None = None
    ) -> None:
        """`exposed` names the handlers callable over RPC (all when None): actors also have
        handlers for their own plumbing (events, heartbeats) that no caller may reach."""
        self._routes: dict[str, dict[Scope, Route]] = {}
        for scope, actor_class in actors.items():
            for method, function in actor_class.handlers.items():
                if exposed is not None and method not in exposed:
                    continue
                routes = self._routes.setdefault(method, {})
                if routes and {*routes, scope} != {Scope.HOST, Scope.INSTANCE}:
                    other = next(iter(routes)).value
                    raise TypeError(f"{method!r} is handled by both {other} and {scope.value}")
                routes[scope] = Route(method, scope, _parameters(function))

    def __contains__(self, method: str) -> bool:
        return method in self._routes

    def methods(self, scope: Scope) -> list[str]:
        return sorted(m for m, routes in self._routes.items() if scope in routes)

    def route(self, method: str, for_instance: bool = False) -> Route:
        routes = self._routes.get(method)
        if not routes:
            raise UnknownMethod(method=method)
        if len(routes) == 1:
            return next(iter(routes.values()))
        return routes[Scope.INSTANCE if for_instance else Scope.HOST]


def _parameters(function: Callable[..., Any]) -> tuple[_Parameter, ...]:
    hints = typing.get_type_hints(function)
    parameters = []
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # skip self
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"handler {function.__qualname__} must name its arguments")
        hint = hints.get(parameter.name, Any)
        parameters.append(
            _Parameter(
                name=parameter.name,
                required=parameter.default is parameter.empty,
                check=_checker(hint),
                expected=_describe(hint),
            )
        )
    return tuple(parameters)


def _checker(hint: Any) -> Callable[[Any], bool]:
    if hint is Any or hint is object:
        return lambda value: True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        checks = [_checker(arg) for arg in typing.get_args(hint)]
        return lambda value: any(check(value) for check in checks)
    if hint is None or hint is type(None):
        return lambda value: value is None
    if origin is not None:
        hint = origin  # list[str] -> list: element types are the schemas layer's job
    if hint is float:
        return lambda value: isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return lambda value: isinstance(value, hint)
    return lambda value: True


def _describe(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
