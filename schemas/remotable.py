"""Remotable methods: run through an indirection API when one is in use, locally otherwise.

The agent sets an indirection that carries the call over the bus to the object backend; the
backend runs the method's local body there (`dispatch_object_action`). Which indirection is
in use is a ContextVar, so two agents in one process (or one test) never share it.

    class Instance(PersistentObject):
        @remotable_classmethod
        async def get_by_uuid(cls, ctx: RequestContext, uuid: str) -> Instance: ...

        @remotable(changes_only=True)
        async def save(self) -> None: ...

By convention the first argument of a remotable classmethod is the request context; it
becomes `obj_context` of the objects it returns.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from schemas.errors import NotRemotable

if TYPE_CHECKING:
    from schemas.base import VersionedObject
    from schemas.registry import ObjectRegistry

_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., Coroutine[Any, Any, Any]])


class ObjectIndirectionAPI(Protocol):
    """Carries remotable calls elsewhere (the agent's implementation goes over the bus)."""

    async def object_action(
        self, obj: VersionedObject, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        """Run `obj.method(*args, **kwargs)` remotely: (field updates to apply, result)."""
        ...

    async def object_class_action(
        self,
        objname: str,
        objver: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run the classmethod `objname.method(*args, **kwargs)` remotely; its result."""
        ...


_indirection: ContextVar[ObjectIndirectionAPI | None] = ContextVar(
    "virtactor_object_indirection", default=None
)


@contextlib.contextmanager
def use_indirection(api: ObjectIndirectionAPI | None) -> Iterator[ObjectIndirectionAPI | None]:
    """Within the block (and tasks started in it), remotable methods go through `api`.

    `None` makes them run locally, which is what the object backend itself does.
    """
    token = _indirection.set(api)
    try:
        yield api
    finally:
        _indirection.reset(token)


def current_indirection() -> ObjectIndirectionAPI | None:
    """The indirection API in use here, if any."""
    return _indirection.get()


@overload
def remotable(fn: _F, /) -> _F: ...
@overload
def remotable(*, changes_only: bool = False) -> Callable[[_F], _F]: ...
def remotable(fn: _F | None = None, /, *, changes_only: bool = False) -> Any:
    """Mark an async instance method remotable.

    With an indirection in use the call goes to `object_action`, which gets the object (with
    `changes_only`, a copy holding only `OBJ_KEY` and the changed fields, as `save` wants);
    the field updates that come back are applied and the changes reset. Otherwise the body
    runs here. Cancellation propagates to the indirection call unchanged.
    """

    def decorate(func: _F) -> _F:
        @functools.wraps(func)
        async def wrapper(self: VersionedObject, *args: Any, **kwargs: Any) -> Any:
            api = _indirection.get()
            if api is None:
                return await func(self, *args, **kwargs)
            sent = self.obj_changes_only() if changes_only else self
            updates, result = await api.object_action(sent, func.__name__, args, kwargs)
            self._obj_apply_updates(updates)
            return result

        wrapper._remotable_kind = "instance"  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


def remotable_classmethod(
    fn: Callable[Concatenate[Any, _P], Coroutine[Any, Any, _R]],
) -> classmethod[Any, _P, Coroutine[Any, Any, _R]]:
    """Mark an async classmethod remotable: `object_class_action` with an indirection in
    use, the local body otherwise. Returned objects get the first argument (the request
    context) as their `obj_context`."""

    @functools.wraps(fn)
    async def wrapper(cls: type[VersionedObject], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        api = _indirection.get()
        if api is None:
            result = await fn(cls, *args, **kwargs)
        else:
            result = await api.object_class_action(
                cls.OBJ_NAME, cls.VERSION, fn.__name__, tuple(args), dict(kwargs)
            )
        if args:
            _attach_context(result, args[0])
        return result

    wrapper._remotable_kind = "class"  # type: ignore[attr-defined]
    return classmethod(wrapper)


def _attach_context(result: Any, ctx: Any) -> None:
    from schemas.base import VersionedObject

    items = result if isinstance(result, list) else (result,)
    for item in items:
        if isinstance(item, VersionedObject) and item.obj_context is None:
            item.obj_context = ctx


async def dispatch_object_action(
    obj: VersionedObject, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    """Run a remotable method's local body, as the object backend does for a peer's
    `object_action`: (the fields the call changed, with their values; the result).

    Raises NotRemotable for a name that is not a remotable instance method of `obj`.
    """
    cls = type(obj)
    if cls._obj_remotable.get(method) != "instance":
        raise NotRemotable(objname=cls.OBJ_NAME, method=method)
    before = copy.deepcopy(obj._values)
    with use_indirection(None):
        result = await getattr(cls, method).__wrapped__(obj, *args, **kwargs)
    updates = {
        name: value
        for name, value in obj._values.items()
        if name not in before or before[name] != value
    }
    return updates, result


async def dispatch_object_class_action(
    registry: ObjectRegistry,
    objname: str,
    objver: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run a remotable classmethod's local body for a peer's `object_class_action`.

    Raises UnknownObjectError, IncompatibleObjectVersion or NotRemotable.
    """
    cls = registry.resolve(objname, objver)
    if cls._obj_remotable.get(method) != "class":
        raise NotRemotable(objname=objname, method=method)
    with use_indirection(None):
        return await getattr(cls, method).__wrapped__(cls, *args, **kwargs)
