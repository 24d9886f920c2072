"""Live migration of an idle guest between two real local libvirt hosts: virtactor's whole
workflow against a bare libvirt `migrateToURI3` with the same flags and parameters.

The guest is the system tests' busybox guest (kernel + initramfs, TCG), given 256 MiB; it
only prints a heartbeat every second. Two private libvirtd hosts (host5 and host6 of
deploy/local/libvirt-host.sh, which the test suite does not use) share one instances path,
so only memory moves. A conductor on SQLite and an agent per host run in this process,
over the local RabbitMQ, as tests/system/test_live_migration.py deploys them; the agents
use the `[migration]` defaults (`poll_interval` 0.5 s) unless `--poll-interval` says
otherwise.

virtactor's time is from sending `live_migration` to the source agent until the
`migration.<uuid>.status` event saying `completed` arrives: the checks, the destination's
preparation, the libvirt job (polled), the destination's adoption and the source's
clean-up, each step saved through the conductor. The reference is one blocking
`migrateToURI3` from this process, on a connection to the source opened beforehand (as an
agent keeps its own), with `migration_flags`/`migration_params` computed from the same
`MigrationPolicy` (the source agent's default, also sent with each request) and the target
the agents build (the destination's URI, 127.0.0.1, shared instances path). virtactor also
sets the job's max downtime (500 ms) once the first poll sees it; the reference does not.

The same guest goes back and forth. A round is one leg of each method, back to back, the
guest going A->B then B->A; the method of the first leg alternates (round 0: virtactor A->B,
direct B->A; round 1: direct A->B, virtactor B->A; ...), so each method goes both ways
(equally often for an even number of rounds, one leg apart for an odd one) and a burst of
load elsewhere hits both legs of a round. The two directions do not cost the same on one
machine (libvirt names a guest's cgroup after its per-daemon domain id and its name, and
the local hosts share the machine's cgroup tree: when both QEMUs have the same id the
source spends about 1 s failing to remove a cgroup the destination's QEMU is in), so legs
are only compared within a direction: the ratio is the geometric mean, over the two
directions, of median(virtactor) / median(direct) in that direction; the ratio of all legs'
medians, which an odd number of rounds tilts, is printed beside it. One unmeasured round
first pays the one-off costs (first connections, manifests, QEMU's page cache). After each
leg the guest must run on the destination only; at the end its heartbeat must have kept
counting. The arrival times of virtactor's status events split its time into the steps
before the job, the job and the steps after it. Downtime is what libvirt reports in the
completed job's statistics on the destination
(`jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)["downtime"]`), read right after each leg (nothing
reads it before: the agents read only the running job's). Target: ratio <= 1.10x.

Everything it needs it starts (RabbitMQ through deploy/local/services.sh if it does not
answer, the two hosts, the guest image), and it stops what it started, the guest, agents,
conductor, AMQP topology and hosts, even on failure. Run it as root (the hosts' libvirtd).

    .venv/bin/python bench/migration.py [--rounds 5] [--json] [--poll-interval S]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libvirt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.migration.target import MigrationTarget
from agent.client import ComputeClient
from agent.conductor.service import running_conductor
from agent.config import AgentConfig, AgentSection, AmqpSection, ConductorSection, MigrationSection
from agent.service import Agent, build_transport, migration_settings_from_config
from agent.transport import Transport
from agent.virt.migration.params import migration_flags, migration_params
from schemas.errors import VirtactorError
from schemas.objects import Instance, Migration, MigrationPolicy, MigrationProgress
from tests.agent.conftest import delete_amqp_topology
from tests.system.conftest import (
    GUEST_CACHE_DIR,
    REPO_ROOT,
    DomainJanitor,
    HostLeases,
    LocalHost,
    qemu_files_dir,
    wait_for_console_async,
)
from tests.system.guest_image import HEARTBEAT_RE, GuestImage, GuestMarker, build_guest_image
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    config_for,
    kernel_image,
    make_guest_files,
    new_instance,
)

ROUNDS = 5
HOST_NAMES = ("host5", "host6")  # the test suite uses host1 and host2
AGENTS = ("bench-lm-a", "bench-lm-b")
CONDUCTOR = "conductor"  # the conductor's queue is named like a host's
GUEST_MB = 256
LEG_TIMEOUT = 180.0
ADDRESS = "127.0.0.1"  # where each agent says its QEMU listens ([agent] host_ip)
TARGET = 1.10
ENDED = ("completed", "failed", "cancelled", "error")


class BenchError(Exception):
    """The bench could not measure what it set out to (a leg failed, the guest stopped)."""


@dataclass(slots=True)
class Leg:
    """One measured migration."""

    method: str  # "virtactor" or "direct"
    pair: int  # the round it belongs to
    source: str
    dest: str
    seconds: float
    downtime_ms: int | None  # libvirt's completed-job statistics on the destination
    # virtactor only: seconds from the request to each status event's arrival, and the
    # progress events seen (one per poll that found the job running).
    statuses: dict[str, float] = field(default_factory=dict)
    progress_events: int = 0


@dataclass(slots=True)
class Bench:
    client: ComputeClient
    agents: dict[str, Agent]
    hosts: dict[str, LocalHost]
    root: Path
    policy: MigrationPolicy
    janitor: DomainJanitor
    legs: list[Leg] = field(default_factory=list)


# --- set-up ----------------------------------------------------------------------------------


def ensure_services(url: str) -> None:
    """RabbitMQ (and the other local services) started when the broker does not answer."""
    parsed = urlsplit(url)
    try:
        socket.create_connection((parsed.hostname or ADDRESS, parsed.port or 5672), 3).close()
        return
    except OSError:
        pass
    script = REPO_ROOT / "deploy" / "local" / "services.sh"
    subprocess.run([str(script), "start"], check=True, timeout=600, capture_output=True)


def agent_config(
    host: LocalHost, root: Path, name: str, url: str, prefix: str, poll_interval: float
) -> AgentConfig:
    base = config_for(host, root)
    return dataclasses.replace(
        base,
        agent=AgentSection(host=name, host_ip=ADDRESS, instances_path=base.agent.instances_path),
        amqp=AmqpSection(url=url, prefix=prefix),
        conductor=ConductorSection(database_url=str(root / "conductor.sqlite")),
        migration=MigrationSection(poll_interval=poll_interval),
    )


@asynccontextmanager
async def deployed(
    url: str, hosts: Sequence[LocalHost], root: Path, poll_interval: float
) -> AsyncIterator[Bench]:
    """A conductor and an agent per host on one fresh AMQP prefix, and a client; all closed,
    the topology deleted and the guest's domain removed from both hosts on the way out."""
    prefix = f"vt-bench-lm-{uuid.uuid4().hex[:8]}"
    configs = {
        name: agent_config(host, root, name, url, prefix, poll_interval)
        for name, host in zip(AGENTS, hosts, strict=True)
    }
    policy = migration_settings_from_config(configs[AGENTS[0]]).default_policy()
    janitor = DomainJanitor(hosts=tuple(hosts))
    conductor_bus: Transport = build_transport(configs[AGENTS[0]])
    agents: dict[str, Agent] = {}
    client: ComputeClient | None = None
    try:
        await conductor_bus.start()
        async with running_conductor(conductor_bus, configs[AGENTS[0]], upgrade=True):
            try:
                for name, config in configs.items():
                    agents[name] = Agent(config)
                    await agents[name].start()
                for agent in agents.values():
                    await agent.wait_ready(timeout=60)
                client = await ComputeClient.connect(url, prefix=prefix, default_timeout=120)
                yield Bench(
                    client,
                    agents,
                    dict(zip(AGENTS, hosts, strict=True)),
                    root,
                    policy,
                    janitor,
                )
            finally:
                if client is not None:
                    await client.aclose()
                for agent in agents.values():
                    await agent.aclose()
                await asyncio.to_thread(janitor.clean)
    finally:
        await conductor_bus.aclose()
        await delete_amqp_topology(url, prefix, [*AGENTS, CONDUCTOR])


# --- one leg of each kind ------------------------------------------------------------------


def completed_downtime(uri: str, uuid_: str) -> int | None:
    """The downtime (ms) of the migration that just ended, as the destination's libvirt
    reports it in the completed job's statistics (blocking)."""
    conn = libvirt.open(uri)
    try:
        stats = conn.lookupByUUIDString(uuid_).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    finally:
        conn.close()
    downtime = stats.get(libvirt.VIR_DOMAIN_JOB_DOWNTIME)
    return int(downtime) if isinstance(downtime, int | float) else None


def domain_state(uri: str, uuid_: str) -> int | None:
    conn = libvirt.open(uri)
    try:
        return int(conn.lookupByUUIDString(uuid_).state()[0])
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


async def check_moved(bench: Bench, me: Instance, source: str, dest: str) -> None:
    """The guest runs on `dest`, and `source` has no domain of it any more."""
    on_dest = await asyncio.to_thread(domain_state, bench.hosts[dest].uri, me.uuid)
    on_source = await asyncio.to_thread(domain_state, bench.hosts[source].uri, me.uuid)
    if on_dest != libvirt.VIR_DOMAIN_RUNNING or on_source is not None:
        raise BenchError(
            f"after {source} -> {dest}: domain state {on_dest} on {dest}, {on_source} on "
            f"{source} (expected running, none)"
        )


async def virtactor_leg(bench: Bench, me: Instance, source: str, dest: str, round_: int) -> Leg:
    migration = Migration(
        uuid=str(uuid.uuid4()),
        instance_uuid=me.uuid,
        migration_type="live-migration",
        status="queued",
    )
    statuses: dict[str, float] = {}
    progress_events = 0
    ended: Migration | None = None
    async with await bench.client.subscribe(f"migration.{migration.uuid}.*") as stream:
        events = aiter(stream)
        started = time.perf_counter()
        await bench.client.live_migration(source, me, dest, migration, policy=bench.policy)
        async with asyncio.timeout(LEG_TIMEOUT):
            async for event in events:
                payload = getattr(event, "payload", None)
                if isinstance(payload, MigrationProgress):
                    progress_events += 1
                elif isinstance(payload, Migration):
                    statuses[str(payload.status)] = time.perf_counter() - started
                    if payload.status in ENDED:
                        ended = payload
                        break
        seconds = time.perf_counter() - started
    if ended is None or ended.status != "completed":
        status = "no end" if ended is None else ended.status
        raise BenchError(f"virtactor migration {source} -> {dest} ended {status}")
    downtime = await asyncio.to_thread(completed_downtime, bench.hosts[dest].uri, me.uuid)
    return Leg("virtactor", round_, source, dest, seconds, downtime, statuses, progress_events)


def migrate_directly(
    source_uri: str, dest_uri: str, uuid_: str, params: dict[str, Any], flags: int
) -> float:
    """Seconds of one `migrateToURI3` on a connection opened beforehand (blocking)."""
    conn = libvirt.open(source_uri)
    try:
        dom = conn.lookupByUUIDString(uuid_)
        started = time.perf_counter()
        dom.migrateToURI3(dest_uri, params, flags)
        return time.perf_counter() - started
    finally:
        conn.close()


async def direct_leg(bench: Bench, me: Instance, source: str, dest: str, round_: int) -> Leg:
    dest_uri = bench.hosts[dest].uri
    # What the source agent's workflow builds from the destination's pre_live_migration
    # answer: its libvirtd's URI, the address its QEMU listens on, the shared path seen.
    target = MigrationTarget(dest_uri, ADDRESS, block_migration=False, shared_path=True)
    params = migration_params(bench.policy, target)
    flags = migration_flags(bench.policy, target)
    source_uri = bench.hosts[source].uri
    async with asyncio.timeout(LEG_TIMEOUT):
        seconds = await asyncio.to_thread(
            migrate_directly, source_uri, dest_uri, me.uuid, params, flags
        )
    downtime = await asyncio.to_thread(completed_downtime, dest_uri, me.uuid)
    return Leg("direct", round_, source, dest, seconds, downtime)


# --- the run ---------------------------------------------------------------------------------


async def heartbeat(console: Path, start: int = 0) -> tuple[int, int]:
    """The next heartbeat the guest prints after byte `start`: (its count, the offset)."""
    line = await wait_for_console_async(console, HEARTBEAT_RE, 60, start=start)
    match = HEARTBEAT_RE.fullmatch(line.text)
    assert match is not None
    return int(match.group(1)), line.end


async def run_rounds(bench: Bench, image: GuestImage, rounds: int) -> None:
    me = new_instance(bench.janitor.track(str(uuid.uuid4())), "bench-migration")
    me.flavor.memory_mb = me.memory_mb = GUEST_MB
    console = bench.root / "instances" / me.uuid / "console.log"
    a, b = AGENTS
    await bench.client.spawn(a, me, kernel_image(image))
    booted = await wait_for_console_async(console, GuestMarker.BOOTED, BOOT_TIMEOUT)
    first_beat, _ = await heartbeat(console, booted.end)
    here = a
    for round_ in range(-1, rounds):  # round -1: the warm-up, not kept
        methods = (virtactor_leg, direct_leg) if round_ % 2 == 0 else (direct_leg, virtactor_leg)
        for leg_of in methods:
            there = b if here == a else a
            try:
                leg = await leg_of(bench, me, here, there, round_)
                await check_moved(bench, me, here, there)
            except (VirtactorError, libvirt.libvirtError, BenchError) as exc:
                step = f"round {round_}, {leg_of.__name__} {here} -> {there}"
                raise BenchError(f"{step}: {type(exc).__name__}: {exc}") from exc
            if round_ >= 0:
                bench.legs.append(leg)
            here = there
    # QEMU on the destination may start the console file anew: read it from its start.
    last_beat, _ = await heartbeat(console, console.stat().st_size)
    if last_beat <= first_beat:
        raise BenchError(f"the guest's heartbeat went from {first_beat} to {last_beat}")
    await bench.client.destroy(here, me)


# The virtactor workflow's stretches, between the arrivals of two status events.
PHASES = (
    ("request -> running (checks, pre_live_migration)", "", "running"),
    ("running -> post-migrating (the libvirt job)", "running", "post-migrating"),
    ("post-migrating -> completed (post steps)", "post-migrating", "completed"),
)


def median_of(legs: list[Leg]) -> float | None:
    return statistics.median(leg.seconds for leg in legs) if legs else None


def summary(legs: list[Leg], rounds: int, poll_interval: float) -> dict[str, Any]:
    """Medians by method and by direction; the ratio is the geometric mean, over the
    directions both methods went, of median(virtactor) / median(direct) in that direction."""
    methods = ("virtactor", "direct")
    directions = sorted({(leg.source, leg.dest) for leg in legs})
    by_direction: dict[str, dict[str, float | None]] = {}
    ratios = []
    for source, dest in directions:
        medians = {
            m: median_of([x for x in legs if (x.method, x.source, x.dest) == (m, source, dest)])
            for m in methods
        }
        va, direct = medians["virtactor"], medians["direct"]
        jobs = [
            x.statuses["post-migrating"] - x.statuses["running"]
            for x in legs
            if (x.method, x.source, x.dest) == ("virtactor", source, dest)
            and {"running", "post-migrating"} <= x.statuses.keys()
        ]
        # The job alone, as virtactor's status events bracket it, to set beside `direct`.
        medians["virtactor job"] = statistics.median(jobs) if jobs else None
        by_direction[f"{source} -> {dest}"] = medians
        if va is not None and direct is not None:
            ratios.append(va / direct)
    overall = {m: median_of([x for x in legs if x.method == m]) for m in methods}
    assert overall["virtactor"] is not None and overall["direct"] is not None
    phases = {}
    for name, start, end in PHASES:
        spans = [
            leg.statuses[end] - (leg.statuses[start] if start else 0.0)
            for leg in legs
            if leg.method == "virtactor"
            and end in leg.statuses
            and (not start or start in leg.statuses)
        ]
        phases[name] = statistics.median(spans) if spans else None
    return {
        "rounds": rounds,
        "guest_mb": GUEST_MB,
        "poll_interval": poll_interval,
        "median_s": overall,
        "median_s_by_direction": by_direction,
        # With one direction per method (one round) there is nothing to match.
        "ratio": statistics.geometric_mean(ratios)
        if ratios
        else overall["virtactor"] / overall["direct"],
        "ratio_of_medians": overall["virtactor"] / overall["direct"],
        "virtactor_phases_median_s": phases,
        "target": TARGET,
        "legs": [dataclasses.asdict(leg) for leg in legs],
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"live migration of an idle {result['guest_mb']} MiB TCG guest between two local "
        f"libvirt hosts, {result['rounds']} legs each (poll_interval {result['poll_interval']} s)"
    )
    print(f"{'round':>5} {'method':<10} {'leg':<24} {'seconds':>8} {'downtime ms':>12}")
    for leg in result["legs"]:
        direction = f"{leg['source']} -> {leg['dest']}"
        downtime = "-" if leg["downtime_ms"] is None else str(leg["downtime_ms"])
        print(
            f"{leg['pair']:>5} {leg['method']:<10} {direction:<24} {leg['seconds']:>8.3f}"
            f" {downtime:>12}"
        )
    print("median seconds:")
    for direction, medians in result["median_s_by_direction"].items():
        shown = "  ".join(f"{m} {'-' if v is None else f'{v:.3f}'}" for m, v in medians.items())
        print(f"  {direction:<24} {shown}")
    for method in ("virtactor", "direct"):
        downtimes = [
            leg["downtime_ms"]
            for leg in result["legs"]
            if leg["method"] == method and leg["downtime_ms"] is not None
        ]
        shown = ", ".join(str(d) for d in downtimes) or "not reported"
        print(f"  {method:<10} all legs {result['median_s'][method]:.3f} s; downtime ms: {shown}")
    print("virtactor's stretches (median of the status events' arrivals):")
    for name, seconds in result["virtactor_phases_median_s"].items():
        print(f"  {name:<52} {'-' if seconds is None else f'{seconds:.3f} s'}")
    print(
        f"ratio (virtactor / direct, same direction, medians): {result['ratio']:.2f}x "
        f"(of all legs' medians: {result['ratio_of_medians']:.2f}x); "
        f"target <= {result['target']:.2f}x"
    )


async def main(url: str, rounds: int, as_json: bool, poll_interval: float) -> None:
    await asyncio.to_thread(ensure_services, url)
    image = await asyncio.to_thread(build_guest_image, GUEST_CACHE_DIR)
    leases = HostLeases()
    legs: list[Leg] = []
    try:
        hosts = await asyncio.to_thread(leases.acquire, HOST_NAMES)
        with qemu_files_dir() as files:
            root = await asyncio.to_thread(make_guest_files, files, image)
            async with deployed(url, hosts, root, poll_interval) as bench:
                await run_rounds(bench, image, rounds)
                legs = bench.legs
    finally:
        await asyncio.to_thread(leases.release_all)
    result = summary(legs, rounds, poll_interval)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="legs of each method")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=MigrationSection().poll_interval,
        help="the agents' [migration] poll_interval (seconds)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if not args.poll_interval > 0:
        parser.error(f"--poll-interval must be > 0 seconds, got {args.poll_interval}")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    args = parse_args()
    asyncio.run(main(args.url, args.rounds, args.json, args.poll_interval))
