"""`Undo`: the steps that reverse a half-done operation, run in reverse if it fails.

    with Undo("spawn", uuid) as undo:
        create_overlay(path)
        undo.push("remove the root overlay", path.unlink)
        define(xml)
        undo.push("undefine the domain", undefine, uuid)
        start(uuid)
        undo.commit()            # done: nothing to reverse

If the block raises before `commit`, every pushed step runs, last first. A step that fails
is logged and the others still run; the error that stopped the operation is the one that
propagates, never a clean-up's. Blocking: run the whole block in the executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class Undo:
    """Reversal steps of `operation` on `subject` (named in the logs); see the module."""

    def __init__(self, operation: str, subject: str) -> None:
        self.operation = operation
        self.subject = subject
        self._steps: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self.failed_steps: list[str] = []

    def push(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` (described as `what`) if the operation fails from here on."""
        self._steps.append((what, fn, args))

    def commit(self) -> None:
        """The operation succeeded: forget every step."""
        self._steps.clear()

    def rollback(self) -> None:
        """Run the pushed steps now, last first; failures are logged, not raised."""
        while self._steps:
            what, fn, args = self._steps.pop()
            try:
                fn(*args)
            except Exception:
                self.failed_steps.append(what)
                log.exception(
                    "%s of %s: could not %s while undoing it",
                    self.operation,
                    self.subject,
                    what,
                    extra={"instance_uuid": self.subject},
                )

    def __enter__(self) -> Undo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.rollback()
