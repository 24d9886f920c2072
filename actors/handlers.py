"""Declaring message handlers: the `@handler` decorator and the per-class handler table."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

HandlerFunction = Callable[..., Coroutine[Any, Any, Any]]
F = TypeVar("F", bound=HandlerFunction)

_MARK = "__virtactor_message__"


@overload
def handler(name_or_function: F) -> F: ...


@overload
def handler(name_or_function: str | None = None) -> Callable[[F], F]: ...


def handler(name_or_function: F | str | None = None) -> F | Callable[[F], F]:
    """Declare an `async def` method of an `Actor` as the handler of one message name.

    `@handler` uses the method's own name; `@handler("name")` another one. The handler is
    called as `await self.method(**message.args)`. Names starting with `_` are reserved for
    the runtime.
    """
    if callable(name_or_function):
        return _mark(name_or_function, name_or_function.__name__)
    name = name_or_function

    def decorate(function: F) -> F:
        return _mark(function, name or function.__name__)

    return decorate


def _mark(function: F, name: str) -> F:
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"handler {name!r} must be an async def function, got {function!r}")
    if not name or name.startswith("_"):
        raise TypeError(f"handler name {name!r} is reserved or empty: use a public name")
    setattr(function, _MARK, name)
    return function


def collect_handlers(cls: type) -> Mapping[str, HandlerFunction]:
    """The read-only table message name -> handler function of `cls` and its bases.

    A subclass overrides a base's handler by redefining the method (decorated again or not:
    an undecorated override stops being a handler) or by claiming its message name with
    another method. Two methods of one class claiming one name is a `TypeError`.
    """
    by_attribute: dict[str, tuple[str, HandlerFunction]] = {}
    for klass in reversed(cls.__mro__):
        seen: dict[str, str] = {}
        for attribute, value in vars(klass).items():
            name = getattr(value, _MARK, None)
            if name is None:
                by_attribute.pop(attribute, None)
                continue
            if name in seen:
                raise TypeError(
                    f"{klass.__qualname__}: methods {seen[name]!r} and {attribute!r} both "
                    f"handle message {name!r}"
                )
            seen[name] = attribute
            by_attribute[attribute] = (name, value)
    # Bases come first in by_attribute, so a subclass claiming a base's message name wins.
    return MappingProxyType({name: function for name, function in by_attribute.values()})
