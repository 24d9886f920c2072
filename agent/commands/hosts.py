"""`virtactor instances HOST`, `virtactor host HOST`, `virtactor health HOST`: one agent's
guests, its resources and service, and whether it answers.

What is read where: the guests are the host actor's `list_instance_uuids` and `get_info` per
uuid; their names (the hypervisor only reports uuids over RPC) come from the conductor's
`Instance` records when a conductor answers. The node is the resource tracker's
`get_compute_node`; the `Service` is the conductor's record (saved at every heartbeat), or
else the next `Service` the agent publishes on `host.<host>.*` (its heartbeat).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

from actors.host import SERVICE_BINARY
from agent.client import ComputeClient
from agent.commands import EXIT_FAILED, EXIT_OK
from agent.commands.common import UsageError, connected, error_line
from agent.commands.parsers import HEALTH_METHOD, HEALTH_TIMEOUT
from agent.commands.render import console, fields_table, plain, rows_table, write_json
from agent.conductor.indirection import BusIndirection
from agent.config import ConfigError
from agent.errors import ConductorUnavailable, InstanceNotFound
from schemas import ObjectNotFound, use_indirection
from schemas.objects import ComputeNode, Instance, InstanceInfo, Service

T = TypeVar("T")

# How long a read of the conductor's records waits for a conductor: a name or a service
# record is a nicety next to what the agent itself answers.
CONDUCTOR_WAIT = 3.0
# nova's service_down_time: a service whose last report is older is shown as down.
DOWN_AFTER = 60.0


async def run_instances(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    async with connected(args) as client:
        uuids = await client.list_instance_uuids(args.host)
        no_records: list[Instance] = []
        infos, names = await asyncio.gather(
            asyncio.gather(*(_info(client, args.host, uuid) for uuid in uuids)),
            conductor_read(client, lambda: Instance.get_by_host(None, args.host), no_records),
        )
    by_uuid = {record.uuid: record.name for record in names if record.obj_attr_is_set("name")}
    rows = [
        {
            "uuid": uuid,
            "name": by_uuid.get(uuid),
            "state": info.state,
            "vcpus": info.num_cpu,
            "memory_mb": info.max_mem_kb // 1024,
        }
        for uuid, info in zip(uuids, infos, strict=True)
        if info is not None  # gone between the two calls
    ]
    if args.json:
        write_json(rows, out)
    else:
        console(out).print(rows_table(rows, title=f"instances on {args.host}: {len(rows)}"))
    return EXIT_OK


async def _info(client: ComputeClient, host: str, uuid: str) -> InstanceInfo | None:
    try:
        return await client.get_info(host, uuid)
    except InstanceNotFound:
        return None


async def run_host(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    # Subscribed first, so a heartbeat while the conductor is asked is not missed.
    async with connected(args) as client, await client.subscribe(f"host.{args.host}.*") as events:
        node = await client.get_compute_node(args.host)
        service: Service | None = await conductor_read(
            client,
            lambda: Service.get_by_host_and_binary(None, args.host, SERVICE_BINARY),
            None,
        )
        source = "conductor" if service is not None else None
        if service is None:
            service = await _next_service(events, args.service_wait)
            source = "heartbeat" if service is not None else None
    state = service_state(service, datetime.datetime.now(datetime.UTC))
    if args.json:
        document = {
            "host": args.host,
            "compute_node": node,
            "service": service,
            "service_source": source,
            "service_state": state,
        }
        write_json(document, out)
        return EXIT_OK
    show = console(out)
    show.print(fields_table(node_summary(node), title=f"host {args.host}: resources"))
    pools = plain(node.pci_device_pools) if node.obj_attr_is_set("pci_device_pools") else None
    if pools:
        show.print(rows_table(pools, title="PCI device pools"))
    if service is None:
        out.write(
            f"service: unknown (no conductor record, no heartbeat within {args.service_wait:g}s)\n"
        )
    else:
        summary = {"state": state, "from": source, **plain(service)}
        show.print(fields_table(summary, title=f"host {args.host}: service"))
    return EXIT_OK


def node_summary(node: ComputeNode) -> dict[str, Any]:
    """The resource lines people look at, used / total (free) per resource."""

    def used_of(used: int, total: int, free: int | None, unit: str) -> str:
        text = f"{used} / {total}{unit}"
        return text if free is None else f"{text} ({free}{unit} free)"

    return {
        "node": node.hypervisor_hostname,
        "hypervisor": f"{node.hypervisor_type} {node.hypervisor_version}",
        "vcpus used": used_of(node.vcpus_used, node.vcpus, None, ""),
        "memory used": used_of(node.memory_mb_used, node.memory_mb, node.free_ram_mb, " MiB"),
        "disk used": used_of(node.local_gb_used, node.local_gb, node.free_disk_gb, " GiB"),
        "running vms": node.running_vms,
        "allocation ratios": (
            f"cpu {node.cpu_allocation_ratio:g}, ram {node.ram_allocation_ratio:g}, "
            f"disk {node.disk_allocation_ratio:g}"
        ),
    }


def service_state(service: Service | None, now: datetime.datetime) -> str:
    """Its state: "up", "down" (forced, or not seen for `DOWN_AFTER` s), "disabled" or "unknown"."""
    if service is None:
        return "unknown"
    if service.forced_down:
        return "down"
    seen = service.last_seen_up
    if seen is None or (now - seen).total_seconds() > DOWN_AFTER:
        return "down"
    return "disabled" if service.disabled else "up"


async def _next_service(events: Any, wait: float) -> Service | None:
    """The first `Service` among `events` within `wait` seconds, or None."""

    async def first() -> Service | None:
        async for event in events:
            if isinstance(event.payload, Service):
                return event.payload
        return None  # the stream was closed

    try:
        async with asyncio.timeout(wait):
            return await first()
    except TimeoutError:
        return None


async def conductor_read(client: ComputeClient, read: Callable[[], Awaitable[T]], fallback: T) -> T:
    """`read()` of the conductor's records through `client`, or `fallback` when no conductor
    answers within `CONDUCTOR_WAIT` or it has no such record."""
    indirection = BusIndirection(client, timeout=CONDUCTOR_WAIT, attempt_timeout=CONDUCTOR_WAIT)
    with use_indirection(indirection):
        try:
            return await read()
        except (ConductorUnavailable, ObjectNotFound):
            return fallback


async def run_health(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    timeout = HEALTH_TIMEOUT if args.timeout is None else args.timeout
    started = time.monotonic()
    try:
        async with connected(args) as client:
            nodes = await client.call(args.host, HEALTH_METHOD, timeout=timeout)
    except (ConfigError, UsageError):
        raise  # not the agent's health: the command cannot be used as given (exit 2)
    except Exception as exc:
        healthy, reason = False, error_line(exc)
    else:
        elapsed = time.monotonic() - started
        healthy = True
        reason = f"{HEALTH_METHOD} answered {nodes!r} in {elapsed * 1000:.0f} ms"
    if args.json:
        write_json({"host": args.host, "healthy": healthy, "reason": reason}, out, indent=None)
    else:
        out.write(f"{'healthy' if healthy else 'unhealthy'}: {args.host}: {reason}\n")
    return EXIT_OK if healthy else EXIT_FAILED
