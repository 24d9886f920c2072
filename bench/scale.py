"""One agent with many instances: the rate of each operation and the memory each instance
costs, as the count grows.

    .venv/bin/python -m bench.scale [--instances 1000] [--in-flight 64] [--profile]

One agent on the embedded default (the in-process bus, its own SQLite conductor, libvirt's
test driver `test:///default`), a client in the same process. In order:

- spawn every instance, `--in-flight` at a time (each a real spawn: overlay on the cached
  image, domain defined and started in the test driver, record saved, events published);
  the agent's RSS is read after the first 10 % and after all of them;
- `get_info` of each (`--in-flight` at a time); `get_per_instance_usage` (one call);
- a full resync (the host actor's `sync_power_states`, then a `get_info` of each instance,
  which each actor answers only after its resync: the time until all have settled);
- destroy every instance.

It prints each phase's rate, the RSS per instance at both counts (after a full garbage
collection) and how it grew between them; with `--profile`, where spawn's time goes (the
top of cProfile's cumulative table over a spawn phase of its own, run after the others).
The per-instance figures are read against two references from the same run: the same agent
with no instances (its RSS at the start), and libvirt's test driver, which keeps its domains
in the agent's own process (a real libvirtd keeps them in its own): a process of its own
defines and starts as many domains from the XML the agent wrote, and its RSS per domain is
subtracted to give the agent's own cost per instance.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import io
import logging
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from actors import HOST_ADDRESS
from agent.client import ComputeClient
from agent.config import ResourcesSection
from schemas.objects import Instance
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.embedded import embedded_agent, embedded_config, make_root_image
from tests.agent.virt.helpers import remove_domain_from

HOST = "bench-scale"


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_rss_kib() -> int:
    gc.collect()
    return rss_kib()


async def bounded(
    items: list[Instance], in_flight: int, action: Callable[[Instance], Awaitable[object]]
) -> float:
    """`action` of each item, `in_flight` at a time; seconds taken."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await action(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(items)))))
    return time.perf_counter() - started


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f}/s  ({count} in {seconds:.2f} s)"


async def spawn_all(client: ComputeClient, guests: list[Instance], in_flight: int) -> float:
    meta = image_meta()

    async def spawn(guest: Instance) -> None:
        await client.spawn(HOST, guest, meta)

    return await bounded(guests, in_flight, spawn)


async def destroy_all(client: ComputeClient, guests: list[Instance], in_flight: int) -> float:
    async def destroy(guest: Instance) -> None:
        await client.destroy(HOST, guest)

    return await bounded(guests, in_flight, destroy)


def new_guests(count: int, tag: str) -> list[Instance]:
    return [instance(str(uuid.uuid4()), name=f"{tag}-{n:05d}") for n in range(count)]


def domain_xml(domain_uuid: str) -> str:
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        return str(conn.lookupByUUIDString(domain_uuid).XMLDesc(0))
    finally:
        conn.close()


def test_driver_kib_per_domain(xml: str, count: int) -> float:
    """RSS per domain of `count` domains like `xml` started in test:///default, in a fresh
    process (the reference: what the test driver itself keeps per domain)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--reference", str(count)],
        input=xml,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"the test driver reference failed: {done.stderr.strip()}")
    return float(done.stdout.strip().splitlines()[-1])


def reference_run(count: int) -> None:
    """The child of `test_driver_kib_per_domain`: the XML on stdin, the figure on stdout."""
    import re

    import libvirt

    xml = sys.stdin.read()
    found = re.search(r"<uuid>([^<]*)</uuid>", xml)
    assert found is not None, "a domain XML names its uuid"
    original = found[1]
    conn = libvirt.open("test:///default")
    defined = []
    for number in range(count + 10):
        if number == 10:  # the driver's first domains pay for its own set-up
            base = settled_rss_kib()
        # Every copy of the agent's uuid (the domain's, SMBIOS's, the metadata's) is new.
        text = xml.replace(original, str(uuid.uuid4()))
        text = re.sub(r"<name>[^<]*</name>", f"<name>reference-{number:05d}</name>", text)
        domain = conn.defineXML(text)
        domain.create()
        defined.append(domain)
    print((settled_rss_kib() - base) / count)


def remove_domains(uuids: list[str]) -> None:
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        for domain_uuid in uuids:
            remove_domain_from(conn, domain_uuid)
    finally:
        conn.close()


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
        root = Path(directory)
        await make_root_image(root)
        config = embedded_config(root, HOST)
        # No periodic audit or resync in the middle of a phase: the phases call them.
        # The test driver's node is small: overcommit so every instance's claim fits.
        resources = ResourcesSection(
            audit_interval=3600,
            cpu_allocation_ratio=10_000.0,
            ram_allocation_ratio=1_000.0,
            disk_allocation_ratio=1_000.0,
            reserved_host_memory_mb=0,
        )
        config = dataclasses.replace(config, resources=resources)
        async with embedded_agent(config, call_timeout=600) as (agent, client):
            base = settled_rss_kib()
            guests = new_guests(args.instances, "scale")
            first = guests[: max(1, args.instances // 10)]
            rest = guests[len(first) :]
            took_first = await spawn_all(client, first, args.in_flight)
            rss_first = settled_rss_kib()
            took_rest = await spawn_all(client, rest, args.in_flight)
            rss_all = settled_rss_kib()
            xml = await asyncio.to_thread(domain_xml, guests[0].uuid)
            count = len(guests)
            print(f"spawn            {rate(count, took_first + took_rest)}")

            async def info(guest: Instance) -> None:
                await client.get_info(HOST, guest.uuid)

            print(f"get_info         {rate(count, await bounded(guests, args.in_flight, info))}")
            started = time.perf_counter()
            usage = await client.get_per_instance_usage(HOST)
            took = time.perf_counter() - started
            print(f"per-instance use {took * 1000:8.1f} ms for {len(usage)} instances")
            started = time.perf_counter()
            told = await agent.system.lookup(HOST_ADDRESS).ask("sync_power_states", {})
            await bounded(guests, args.in_flight, info)
            took = time.perf_counter() - started
            print(f"full resync      {rate(told, took)} (told, then each answered)")
            per_first = (rss_first - base) / len(first)
            per_all = (rss_all - base) / count
            per_rest = (rss_all - rss_first) / max(1, len(rest))
            driver = await asyncio.to_thread(test_driver_kib_per_domain, xml, count)
            print(
                f"RSS per instance {per_first:8.1f} KiB at {len(first)}, {per_all:.1f} KiB at "
                f"{count} ({per_rest:.1f} KiB each from {len(first)} to {count}); "
                f"the agent alone {base / 1024:.0f} MiB"
            )
            print(
                f"  of which the test driver's domain {driver:.1f} KiB (reference, own "
                f"process): the agent's own {per_all - driver:.1f} KiB per instance at {count}, "
                f"{per_rest - driver:.1f} KiB each from {len(first)} to {count}"
            )
            took = await destroy_all(client, guests, args.in_flight)
            print(f"destroy          {rate(count, took)}")
            if args.profile:
                profiled = new_guests(min(200, args.instances), "profiled")
                profiler = cProfile.Profile()
                profiler.enable()
                await spawn_all(client, profiled, args.in_flight)
                profiler.disable()
                await destroy_all(client, profiled, args.in_flight)
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
                print(out.getvalue())
        await asyncio.to_thread(remove_domains, [g.uuid for g in guests])
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--reference", type=int, metavar="N", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.reference:
        reference_run(options.reference)
        sys.exit(0)
    sys.exit(asyncio.run(main(options)))
