"""Mixed operations through broker faults: nothing lost, nothing applied twice.

    .venv/bin/python -m bench.broker_faults [--operations 1000] [--cuts 5] [--restarts 2]

One agent on libvirt's test driver over the real RabbitMQ (a prefix of its own), a client
doing `--operations` operations on a few instances — spawn, pause, unpause, get_info,
change_instance_metadata (a new key each), destroy — 8 at a time, while the broker's
connections are closed `--cuts` times (`rabbitmqctl close_all_connections`) and the broker
application restarted `--restarts` times (`rabbitmqctl stop_app; start_app`), at random
moments. Each operation is sent under its own message id, and sent again under the same id
whenever it ends in a transport error or a timeout (as a control plane that must know the
outcome does), until it is answered.

It counts, per message id, how many times the agent ran it (an instrumented dispatcher), and
checks the instances' metadata at the end against the keys whose call was answered:

- lost: operations never answered within `--give-up` seconds, and metadata keys answered
  but missing;
- applied twice: message ids the agent ran more than once;
- typed errors: the errors each attempt ended in, by class (all are virtactor's own).

It restarts the broker it is given: run it on a broker no one else is using at the moment
(not during the test suite). Exit status 1 if anything was lost or applied twice.
tests/system/test_broker_fault_run.py runs the same (`run_faults`) in the suite, against a
RabbitMQ node of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.client import ComputeClient
from agent.config import AmqpSection, ConductorSection, ResourcesSection
from agent.rpc.envelope import Request
from agent.service import Agent
from schemas.errors import VirtactorError
from schemas.objects import Instance
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import embedded_config, make_root_image, remove_test_domain

HOST = "bench-faults"
INSTANCES = 8
CONCURRENCY = 8


class Runs:
    """How many times the agent ran each message id (wraps its dispatcher's execution)."""

    def __init__(self, agent: Agent) -> None:
        self.count: Counter[str] = Counter()
        dispatcher = agent.dispatcher
        original = dispatcher._execute

        async def counted(request: Request, served: Any) -> bytes | None:
            self.count[request.message_id] += 1
            return await original(request, served)

        dispatcher._execute = counted  # type: ignore[method-assign]


# Runs `rabbitmqctl` on the broker under test: `rabbitmqctl -q <args>` for this machine's own.
Ctl = Callable[..., object]


def local_ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


async def faults(cuts: int, restarts: int, span: float, log: list[str], ctl: Ctl) -> None:
    """The faults, at random moments within `span` seconds."""
    kinds = ["cut"] * cuts + ["restart"] * restarts
    random.shuffle(kinds)
    moments = sorted(random.uniform(0.5, span) for _ in kinds)
    started = time.monotonic()
    for moment, kind in zip(moments, kinds, strict=True):
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
        if kind == "cut":
            await asyncio.to_thread(ctl, "close_all_connections", "bench fault")
        else:
            await asyncio.to_thread(ctl, "stop_app")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(ctl, "start_app")
        log.append(f"{time.monotonic() - started:6.1f}s {kind}")


async def answered(
    client: ComputeClient, method: str, args: dict[str, Any], give_up: float, errors: Counter[str]
) -> tuple[bool, Any]:
    """Send until answered under one message id; (answered, result or the final error)."""
    message_id = f"faults-{uuid.uuid4()}"
    deadline = time.monotonic() + give_up
    while time.monotonic() < deadline:
        try:
            result = await client.with_options(message_id=message_id, timeout=15).call(
                HOST, method, args, instance=args["instance"].uuid if "instance" in args else None
            )
            return True, result
        except VirtactorError as exc:
            errors[type(exc).__name__] += 1
            if not exc.retryable and type(exc).__name__ not in (
                "CallTimeout",
                "TransportError",
                "TransportClosed",
            ):
                return True, exc  # the agent's own answer: a typed refusal
            await asyncio.sleep(0.5)
    return False, None


@dataclass
class Tally:
    """What the run saw."""

    operations: int = 0  # operations done: at least --operations
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    keys: dict[str, set[str]] = field(default_factory=dict)  # answered metadata keys
    lost: int = 0
    missing: int = 0
    faults: list[str] = field(default_factory=list)


def calls_of(kind: str, number: int, guest: Instance) -> list[tuple[str, dict[str, Any]]]:
    if kind == "pause_unpause":
        return [("pause", {"instance": guest}), ("unpause", {"instance": guest})]
    if kind == "get_info":
        return [("get_info", {"instance": guest})]
    diff = {f"k{number}": ["+", str(number)]}
    return [("change_instance_metadata", {"instance": guest, "diff": diff})]


async def workload(
    client: ComputeClient, guests: list[Instance], args: argparse.Namespace, tally: Tally
) -> float:
    """At least `args.operations` operations, `CONCURRENCY` at a time, and more for as long
    as faults are still to come: every fault lands while requests are in flight. Seconds
    taken."""
    kinds = ["pause_unpause", "get_info", "metadata"]
    numbers = itertools.count()
    span = max(5.0, args.operations / 40)
    injected = asyncio.create_task(faults(args.cuts, args.restarts, span, tally.faults, args.ctl))

    async def worker() -> None:
        while (number := next(numbers)) < args.operations or not injected.done():
            kind = random.choice(kinds)
            guest = guests[number % len(guests)]
            tally.operations += 1
            for method, call_args in calls_of(kind, number, guest):
                ok, result = await answered(client, method, call_args, args.give_up, tally.errors)
                if not ok:
                    tally.lost += 1
                    continue
                refused = isinstance(result, Exception)
                tally.outcomes[type(result).__name__ if refused else "answered"] += 1
                if method == "change_instance_metadata" and not refused:
                    tally.keys[guest.uuid].add(next(iter(call_args["diff"])))

    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        await injected
    return time.monotonic() - started


async def check_metadata(client: ComputeClient, guests: list[Instance], tally: Tally) -> None:
    """Every metadata key whose call was answered is on its instance."""
    for guest in guests:
        args = {"instance": guest, "diff": {}}
        ok, changed = await answered(client, "change_instance_metadata", args, 60, tally.errors)
        have = set((changed.metadata or {}).keys()) if ok else set()
        tally.missing += len(tally.keys[guest.uuid] - have)


@dataclass
class FaultRun:
    """A run's figures (see the module docstring)."""

    tally: Tally
    twice: int  # message ids run more than once
    elapsed: float

    @property
    def promises_kept(self) -> bool:
        return not (self.tally.lost or self.tally.missing or self.twice)

    def report(self, operations: int) -> str:
        tally = self.tally
        return "\n".join(
            [
                f"{tally.operations} operations (at least {operations}) in {self.elapsed:.1f} s; "
                f"faults: {', '.join(tally.faults)}",
                f"  answered: {dict(tally.outcomes)}",
                f"  attempts ended in: {dict(tally.errors) or 'nothing but answers'}",
                f"  lost: {tally.lost} unanswered, {tally.missing} answered metadata keys missing",
                f"  applied twice: {self.twice} message ids run more than once",
            ]
        )


async def main(args: argparse.Namespace) -> int:
    run = await run_faults(args)
    print(run.report(args.operations))
    return 0 if run.promises_kept else 1


async def run_faults(args: argparse.Namespace) -> FaultRun:
    """The run `args` describe (the command line's options, and `ctl`)."""
    random.seed(args.seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as directory:
        root = Path(directory)
        await make_root_image(root)
        prefix = f"bench-faults-{uuid.uuid4().hex[:8]}"
        config = dataclasses.replace(
            embedded_config(root, HOST),
            amqp=AmqpSection(url=args.url, prefix=prefix),
            conductor=ConductorSection(save_records=False),
            resources=ResourcesSection(audit_interval=3600),
        )
        guests = [instance(str(uuid.uuid4()), name=f"faults-{n}") for n in range(INSTANCES)]
        tally.keys = {g.uuid: set() for g in guests}
        agent = Agent(config)
        await agent.start()
        await agent.wait_ready(timeout=30)
        runs = Runs(agent)
        client = await ComputeClient.connect(
            args.url, prefix=prefix, default_timeout=15, announce_interval=None
        )
        try:
            for guest in guests:
                spawn = {"instance": guest, "image_meta": image_meta()}
                ok, _ = await answered(client, "spawn", spawn, 60, tally.errors)
                assert ok, "a spawn before the faults was not answered"
            elapsed = await workload(client, guests, args, tally)
            await check_metadata(client, guests, tally)
            for guest in guests:
                await answered(client, "destroy", {"instance": guest}, 60, tally.errors)
        finally:
            await client.aclose()
            await agent.aclose()
            await delete_amqp_topology(args.url, prefix, [HOST])
            for guest in guests:
                await asyncio.to_thread(remove_test_domain, guest.uuid)
    twice = sum(1 for count in runs.count.values() if count > 1)
    return FaultRun(tally, twice, elapsed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--give-up", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    sys.exit(asyncio.run(main(parser.parse_args(namespace=argparse.Namespace(ctl=local_ctl)))))
