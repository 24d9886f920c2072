"""The `Actor` base class: state plus handlers, run one message at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from actors.handlers import HandlerFunction, collect_handlers
from actors.supervision import ActorFailure, RestartStrategy

if TYPE_CHECKING:
    from actors.system import ActorSystem


class Actor:
    """Subclass it, keep state in attributes, and declare handlers with `@handler`.

    The runtime guarantees that at most one of an actor's handlers or hooks runs at any
    time, and messages are handled in arrival order, so the state needs no lock. `system`
    and `address` are set before `on_start` runs (not yet in `__init__`).

    Class attributes tune the defaults of every actor of the class: `restart_strategy` and
    `mailbox_capacity` (None: the system's default). `handlers` is the read-only table
    message name -> handler function, built when the class is created; the RPC layer reads
    the parameters from `inspect.signature` of its functions (the first one is `self`).
    """

    handlers: ClassVar[Mapping[str, HandlerFunction]] = collect_handlers(object)
    restart_strategy: ClassVar[RestartStrategy | None] = None
    mailbox_capacity: ClassVar[int | None] = None

    system: ActorSystem
    address: str

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = collect_handlers(cls)

    async def on_start(self) -> None:
        """Runs before the first message of each incarnation (spawn, then every restart).

        Raising here is a crash: the actor restarts per its strategy.
        """

    async def on_stop(self) -> None:
        """Runs once after a successful `on_start`, when this incarnation ends.

        That is on `stop`/`aclose` once in-flight work is done, and before a restart replaces
        the incarnation. Errors here are logged, never propagated.
        """

    async def on_child_failed(self, failure: ActorFailure) -> None:
        """Runs, as a message in this actor's mailbox, when an actor spawned with this one as
        its parent gave up restarting and stopped. The default does nothing more than the
        system's own report.
        """
