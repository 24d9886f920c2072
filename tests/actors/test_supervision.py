"""Supervision: restarts with exponential back-off, the give-up limit, and the report."""

from __future__ import annotations

import asyncio

import pytest

from actors import (
    Actor,
    ActorFailure,
    ActorNotFound,
    ActorStopped,
    ActorSystem,
    BlockingExecutor,
    HandlerFailed,
    RestartStrategy,
    handler,
    restart_delay,
)

FAST = RestartStrategy(max_restarts=3, window=60.0, min_backoff=0.001, max_backoff=0.004)


class Corrupted(Exception):
    """A handler error the strategy below declares fatal."""


def test_restart_delay_doubles_per_recent_restart_up_to_the_cap() -> None:
    strategy = RestartStrategy(max_restarts=10, window=60, min_backoff=0.5, max_backoff=3.0)
    delays = [restart_delay(strategy, [100.0] * n, now=110.0) for n in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_restart_delay_gives_up_at_max_restarts_within_the_window() -> None:
    strategy = RestartStrategy(max_restarts=2, window=10, min_backoff=1, max_backoff=8)
    assert restart_delay(strategy, [1.0, 2.0], now=5.0) is None
    assert restart_delay(strategy, [1.0, 2.0], now=11.5) == 2.0  # 1.0 fell out of the window
    assert restart_delay(strategy, [1.0, 2.0], now=20.0) == 1.0


def test_a_strategy_with_no_restarts_gives_up_at_the_first_crash() -> None:
    assert restart_delay(RestartStrategy(max_restarts=0), [], now=0.0) is None


def test_an_inconsistent_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="need 0 <= min_backoff <= max_backoff, got 2, 1"):
        RestartStrategy(min_backoff=2, max_backoff=1)


class FlakyStart(Actor):
    """Fails on_start a set number of times across incarnations (counted by the test)."""

    def __init__(self, attempts: list[int], failures: int) -> None:
        self.attempts = attempts
        self.failures = failures

    async def on_start(self) -> None:
        self.attempts.append(len(self.attempts))
        if len(self.attempts) <= self.failures:
            raise OSError(f"libvirt not ready (attempt {len(self.attempts)})")

    @handler
    async def ping(self) -> str:
        return "pong"


async def test_a_crash_in_on_start_restarts_the_actor_and_queued_messages_wait(
    system: ActorSystem,
) -> None:
    attempts: list[int] = []
    ref = system.spawn("host", lambda: FlakyStart(attempts, 2), restart_strategy=FAST)
    assert await ref.ask("ping") == "pong"
    assert attempts == [0, 1, 2]
    assert system.stats_of("host").restarts == 2


class Counter(Actor):
    restart_strategy = RestartStrategy(
        max_restarts=2, window=60, min_backoff=0.001, max_backoff=0.001, fatal=(Corrupted,)
    )

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.count = 0

    async def on_start(self) -> None:
        self.log.append("start")

    async def on_stop(self) -> None:
        self.log.append("stop")

    @handler
    async def increment(self) -> int:
        self.count += 1
        return self.count

    @handler
    async def corrupt(self) -> None:
        raise Corrupted("state lost")


async def test_a_fatal_handler_error_answers_the_asker_then_restarts_with_fresh_state(
    system: ActorSystem,
) -> None:
    log: list[str] = []
    ref = system.spawn("instance:1", lambda: Counter(log))
    assert await ref.ask("increment") == 1
    with pytest.raises(HandlerFailed) as caught:
        await ref.ask("corrupt")
    assert caught.value.exc_type == "Corrupted"
    assert await ref.ask("increment") == 1
    assert log == ["start", "stop", "start"]
    assert system.stats_of("instance:1").restarts == 1


async def test_an_actor_past_its_restart_limit_stops_and_is_reported(
    executor: BlockingExecutor,
) -> None:
    failures: list[ActorFailure] = []
    attempts: list[int] = []
    async with ActorSystem(executor=executor, on_give_up=failures.append) as system:
        ref = system.spawn("host", lambda: FlakyStart(attempts, 100), restart_strategy=FAST)
        with pytest.raises(ActorStopped):
            await ref.ask("ping")
        assert attempts == [0, 1, 2, 3]  # the first start and three restarts
        (failure,) = failures
        assert (failure.address, failure.restarts) == ("host", 3)
        assert str(failure.error) == "libvirt not ready (attempt 4)"
        assert "host" not in system
        assert system.stats.gave_up == 1
        with pytest.raises(ActorNotFound):
            system.lookup("host")


async def test_a_parent_is_told_when_its_child_gives_up(system: ActorSystem) -> None:
    told: asyncio.Queue[ActorFailure] = asyncio.Queue()

    class Parent(Actor):
        async def on_child_failed(self, failure: ActorFailure) -> None:
            await told.put(failure)

        @handler
        async def start_child(self) -> None:
            self.system.spawn(
                "migration:1",
                lambda: FlakyStart([], 100),
                restart_strategy=RestartStrategy(max_restarts=0),
                parent=self.address,
            )

    parent = system.spawn("host", Parent)
    await parent.ask("start_child")
    failure = await asyncio.wait_for(told.get(), timeout=5)
    assert (failure.address, failure.restarts) == ("migration:1", 0)
    assert isinstance(failure.error, OSError)


async def test_a_restart_of_an_instance_spawned_actor_reuses_that_instance(
    system: ActorSystem,
) -> None:
    attempts: list[int] = []
    actor = FlakyStart(attempts, 1)
    ref = system.spawn("host", actor, restart_strategy=FAST)
    assert await ref.ask("ping") == "pong"
    assert attempts == [0, 1]
