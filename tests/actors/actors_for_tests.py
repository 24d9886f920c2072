"""Small actors the runtime's tests drive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from actors import Actor, current_message, handler


class Recorder(Actor):
    """Records what it handles; `hold` blocks until its gate opens, so tests can pile up
    messages behind a running handler."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.running = 0
        self.max_running = 0
        self.gate = asyncio.Event()
        self.holding = asyncio.Event()

    @handler
    async def record(self, value: Any) -> Any:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await asyncio.sleep(0)  # give a second handler every chance to overlap
        self.seen.append(value)
        self.running -= 1
        return value

    @handler
    async def hold(self) -> str:
        self.holding.set()
        await self.gate.wait()
        return "released"

    @handler
    async def context(self) -> Any:
        message = current_message()
        assert message is not None
        return message.context

    @handler
    async def fail(self, error: BaseException) -> None:
        raise error


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `condition()` holds, polling the loop; fail after `within` seconds."""
    step = 0.001
    for _ in range(int(within / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition still false after {within}s: {condition}")
