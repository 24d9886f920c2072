"""A fleet of agents on one RabbitMQ: what each agent costs the broker, how long a fanout
takes to reach every agent, and a call's latency while the whole fleet heartbeats.

    .venv/bin/python -m bench.fleet [--agents 500] [--per-process 100] [--heartbeat 10]
                                    [--calls 1000] [--url amqp://guest:guest@127.0.0.1:5672/]

Every agent is a real `Agent` (its own AMQP connection, durable quorum queue, host actor,
heartbeat timer, reply store) on libvirt's test driver, `--per-process` of them in each of
several processes, under a prefix of the run's own. The broker is a RabbitMQ node the run
starts for itself (tests/system/rabbitmq_nodes.py: its own ports and data, and the open-file
limit of this shell: a broker allowed 1,024 files, as Debian's service is by default here,
cannot hold 500 agents' connections and queues), or the one at `--url` when given. Measured:

- memory: what the Erlang VM has allocated (after a garbage collection) before the fleet,
  and with the fleet up and heartbeating, per agent;
- CPU: the VM's CPU time over `--window` seconds of a heartbeating fleet, per agent, as a
  share of one core (connections, quorum queues and heartbeats together);
- fanout: `set_host_enabled(enabled=True)` fanned out to every agent; each answers with a
  `host.<host>.status` event: the time until the first and the last arrived;
- calls: `--calls` `get_host_uptime` calls to random agents, 16 at a time, while the fleet
  heartbeats: p50, p99 and max.

The broker's memory is read against the same broker before the fleet, in the same run.
docs/scale.md works from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.client import ComputeClient

ROOT = Path(__file__).resolve().parents[1]
START_BATCH = 25


def broker_pid(pid_file: Path | None) -> int:
    """The broker's Erlang VM: the node's pid file, or the machine's RabbitMQ service's."""
    if pid_file is not None:
        return int(pid_file.read_text().strip())
    found = subprocess.run(
        ["pgrep", "-u", "rabbitmq", "-f", "beam.smp"], capture_output=True, text=True, check=False
    )
    pids = [int(pid) for pid in found.stdout.split()]
    if not pids:
        raise SystemExit("no RabbitMQ Erlang VM (beam.smp of user rabbitmq) is running")
    return min(pids)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def erlang_memory_kib(ctl: list[str]) -> float:
    """What the broker's Erlang VM has allocated (`erlang:memory(total)`), after a garbage
    collection of every process: the VM's RSS keeps what it once grew to."""
    evaluate = [*ctl, "eval", "[erlang:garbage_collect(P) || P <- erlang:processes()], "
                "erlang:memory(total)."]  # fmt: skip
    done = subprocess.run(evaluate, capture_output=True, text=True, check=True, timeout=120)
    return int(done.stdout.strip()) / 1024


def memory_breakdown_kib(ctl: list[str]) -> dict[str, float]:
    """RabbitMQ's own accounting of its memory by use (`rabbit_vm:memory()`), in KiB."""
    evaluate = [*ctl, "eval", 'io:format("~p", [rabbit_vm:memory()]).']
    done = subprocess.run(evaluate, capture_output=True, text=True, check=True, timeout=120)
    found = re.findall(r"\{(\w+),\s*(\d+)\}", done.stdout)
    return {name: int(value) / 1024 for name, value in found if name != "total"}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- a process of agents -----------------------------------------------------------------


async def child(args: argparse.Namespace) -> None:
    """`--child`: start `--count` agents named <prefix>-<n>, say "ready", run until stdin
    closes, then stop them."""
    from agent.config import AmqpSection, ConductorSection, ResourcesSection
    from agent.service import Agent
    from tests.agent.embedded import embedded_config

    agents: list[Agent] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as directory:
        for number in range(args.first, args.first + args.count):
            host = f"fleet-{number:05d}"
            root = Path(directory) / host
            root.mkdir()
            base = embedded_config(root, host)
            config = dataclasses.replace(
                base,
                agent=dataclasses.replace(base.agent, heartbeat_interval=args.heartbeat),
                amqp=AmqpSection(url=args.url, prefix=args.prefix, quorum=not args.classic),
                conductor=ConductorSection(save_records=False),
                resources=ResourcesSection(audit_interval=3600),
            )
            agents.append(Agent(config))
        # Started a batch at a time: each start waits a moment for event subscribers to
        # announce themselves (`[rpc] subscriber_answer_wait`), time spent doing nothing.
        for batch in range(0, len(agents), START_BATCH):
            await asyncio.gather(*(agent.start() for agent in agents[batch : batch + START_BATCH]))
        for agent in agents:
            await agent.wait_ready(timeout=120)
        print(json.dumps({"ready": len(agents), "rss_kib": rss_kib(os.getpid())}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for agent in agents:
            await agent.aclose()


# -- the run ------------------------------------------------------------------------------


async def start_fleet(
    args: argparse.Namespace, prefix: str
) -> tuple[list[asyncio.subprocess.Process], int]:
    processes = []
    first = 0
    while first < args.agents:
        count = min(args.per_process, args.agents - first)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fleet", "--child", "--url", args.url,
            "--prefix", prefix, "--first", str(first), "--count", str(count),
            "--heartbeat", str(args.heartbeat), *(["--classic"] if args.classic else []),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        processes.append(process)
        first += count
    rss = 0
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=900)
        if not line:
            raise SystemExit("a fleet process died while starting its agents")
        rss += json.loads(line)["rss_kib"]
    return processes, rss


async def stop_fleet(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), timeout=120)
        except TimeoutError:
            process.kill()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Broker:
    """The broker's figures taken before the fleet: the reference."""

    pid: int
    memory_kib: float
    uses_kib: dict[str, float]


async def broker_figures(args: argparse.Namespace, before: Broker) -> None:
    """Memory (total and by use) and CPU over `--window` of the heartbeating fleet."""
    await asyncio.sleep(2 * args.heartbeat)  # every agent has heartbeated
    cpu_before, window_start = cpu_seconds(before.pid), time.monotonic()
    await asyncio.sleep(args.window)
    cpu = cpu_seconds(before.pid) - cpu_before
    window = time.monotonic() - window_start
    after = erlang_memory_kib(args.ctl)
    uses = memory_breakdown_kib(args.ctl)
    heartbeats = args.agents * window / args.heartbeat
    grown = (after - before.memory_kib) / args.agents
    print(
        f"broker memory    {grown:8.1f} KiB per agent ({before.memory_kib / 1024:.0f} MiB "
        f"before, {after / 1024:.0f} MiB with the fleet)"
    )
    grown_by_use = {name: kib - before.uses_kib.get(name, 0.0) for name, kib in uses.items()}
    top = sorted(grown_by_use.items(), key=lambda item: -item[1])[:6]
    print(
        "  by use (KiB per agent): "
        + ", ".join(f"{name} {kib / args.agents:.0f}" for name, kib in top)
    )
    print(
        f"broker CPU       {cpu / window / args.agents * 100:8.3f} % of a core per agent "
        f"({cpu / window * 100:.1f} % for the fleet: its connections, queues and a "
        f"heartbeat each {args.heartbeat:g} s; {cpu / heartbeats * 1e3:.1f} ms per heartbeat "
        "if they were all of it)"
    )


async def fanout_latency(client: ComputeClient, hosts: list[str]) -> None:
    """`set_host_enabled` to every agent; each answers with its status event."""
    async with await client.subscribe("host.*.status") as events:
        seen: dict[str, float] = {}
        sent = time.monotonic()
        await client.fanout("set_host_enabled", {"enabled": True})
        async with asyncio.timeout(300):
            async for event in events:
                sender = getattr(event, "sender_host", None)
                if sender in hosts and sender not in seen:
                    seen[sender] = time.monotonic() - sent
                    if len(seen) == len(hosts):
                        break
    arrivals = sorted(seen.values())
    print(
        f"fanout           first {arrivals[0] * 1000:.0f} ms, median "
        f"{statistics.median(arrivals) * 1000:.0f} ms, last {arrivals[-1] * 1000:.0f} ms "
        f"to {len(arrivals)} agents"
    )


async def call_latencies(client: ComputeClient, hosts: list[str], calls: int) -> None:
    latencies: list[float] = []
    queue = list(range(calls))

    async def caller() -> None:
        while queue:
            queue.pop()
            host = random.choice(hosts)
            begun = time.perf_counter()
            await client.call(host, "get_host_uptime")
            latencies.append(time.perf_counter() - begun)

    await asyncio.gather(*(caller() for _ in range(16)))
    print(
        f"calls            p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
        f"({len(latencies)} calls, 16 at a time, while the fleet heartbeats)"
    )


async def measure(args: argparse.Namespace) -> int:
    from agent.client import ComputeClient
    from tests.agent.conftest import delete_amqp_topology

    prefix = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    hosts = [f"fleet-{number:05d}" for number in range(args.agents)]
    before = Broker(
        broker_pid(args.pid_file), erlang_memory_kib(args.ctl), memory_breakdown_kib(args.ctl)
    )
    started = time.monotonic()
    processes, agents_rss = await start_fleet(args, prefix)
    per_agent = agents_rss / args.agents / 1024
    print(
        f"{args.agents} agents up in {time.monotonic() - started:.0f} s "
        f"({len(processes)} processes, {per_agent:.1f} MiB RSS per agent)"
    )
    client = await ComputeClient.connect(
        args.url, prefix=prefix, default_timeout=60, announce_interval=None, is_admin=True
    )
    try:
        await broker_figures(args, before)
        await fanout_latency(client, hosts)
        await call_latencies(client, hosts, args.calls)
    finally:
        await client.aclose()
        await stop_fleet(processes)
        await delete_amqp_topology(args.url, prefix, hosts)
    return 0


def on_a_node_of_its_own(args: argparse.Namespace) -> int:
    from tests.system.rabbitmq_nodes import RABBITMQ_BIN, NodeGroup

    with tempfile.TemporaryDirectory(prefix="bench-fleet-broker-") as directory:
        group = NodeGroup(Path(directory))
        buffers = (
            f"tcp_listen_options.sndbuf = {args.tcp_buffer}\n"
            f"tcp_listen_options.recbuf = {args.tcp_buffer}\n"
            f"tcp_listen_options.buffer = {args.tcp_buffer}\n"
            if args.tcp_buffer
            else ""
        )
        node = group.node(f"bench-fleet-{uuid.uuid4().hex[:6]}", buffers)
        try:
            node.start()
            args.url, args.pid_file = node.url, node.base / "pid"
            args.ctl = [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", node.nodename]
            os.environ.update(HOME=str(group.root))  # the node's Erlang cookie
            return asyncio.run(measure(args))
        finally:
            group.kill_all()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="a broker to use (default: start one)")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--per-process", type=int, default=100)
    parser.add_argument("--heartbeat", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument(
        "--classic", action="store_true", help="classic queues ([amqp] quorum = false)"
    )
    parser.add_argument(
        "--tcp-buffer",
        type=int,
        default=0,
        metavar="BYTES",
        help="the node's tcp_listen_options sndbuf, recbuf and buffer (default: RabbitMQ's)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        asyncio.run(child(options))
    elif options.url:
        options.pid_file = None
        options.ctl = ["rabbitmqctl", "-q"]
        sys.exit(asyncio.run(measure(options)))
    else:
        sys.exit(on_a_node_of_its_own(options))
