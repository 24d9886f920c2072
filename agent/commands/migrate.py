"""`virtactor migrate INSTANCE --to HOST [--from HOST] [--block-migration] [--watch]`.

Starts a live migration on the instance's host (`--from`, else the host its `Instance`
record names, read from the conductor) and prints the `Migration` as it started. With
`--watch` it follows the migration's events to its end: a progress bar for people (or one
JSON line per event with `--json`), exit 0 when it completed, 1 when it failed or was
cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid as uuid_module
from typing import Any, TextIO

from rich.progress import BarColumn, Progress, TextColumn

from agent.client import ComputeClient
from agent.commands import EXIT_FAILED, EXIT_OK
from agent.commands.common import UsageError, connected
from agent.commands.hosts import conductor_read
from agent.commands.render import plain, write_json
from schemas.objects import Instance, Migration, MigrationProgress

ENDED = ("completed", "failed", "cancelled", "error")


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        uuid = str(uuid_module.UUID(args.instance))
    except ValueError:
        raise UsageError(f"instance {args.instance!r} is not a UUID") from None
    async with connected(args) as client:
        source = args.source or await _recorded_host(client, uuid)
        migration = Migration(
            uuid=str(uuid_module.uuid4()),
            instance_uuid=uuid,
            migration_type="live-migration",
            status="queued",
        )
        instance = Instance(uuid=uuid)
        if not args.watch:
            started = await client.live_migration(
                source, instance, args.dest, migration, block_migration=args.block_migration
            )
            _print_started(started, args.json, out)
            return EXIT_OK
        async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
            started = await client.live_migration(
                source, instance, args.dest, migration, block_migration=args.block_migration
            )
            if args.json:
                out.write(json.dumps({"migration": plain(started)}) + "\n")
                out.flush()
            ended = await _follow(stream, args.json, out)
    if not args.json:
        out.write(f"migration {ended.uuid}: {ended.status}\n")
    return EXIT_OK if ended.status == "completed" else EXIT_FAILED


async def _recorded_host(client: ComputeClient, uuid: str) -> str:
    async def read() -> str | None:
        return (await Instance.get_by_uuid(None, uuid)).host

    host = await conductor_read(client, read, None)
    if not host:
        raise UsageError(f"no host recorded for instance {uuid}: give --from HOST")
    return host


def _print_started(started: Migration, as_json: bool, out: TextIO) -> None:
    if as_json:
        write_json(plain(started), out)
        return
    out.write(
        f"migration {started.uuid}: {started.status}, "
        f"{started.source_compute} -> {started.dest_compute}\n"
    )


async def _follow(stream: Any, as_json: bool, out: TextIO) -> Migration:
    """The migration's events until it ends; returns its last `Migration`."""
    if as_json:
        async for event in stream:
            out.write(json.dumps({event.topic: plain(event.payload)}) + "\n")
            out.flush()
            if isinstance(event.payload, Migration) and event.payload.status in ENDED:
                return event.payload
        raise UsageError("the event stream ended before the migration did")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("queued", total=100)
        async for event in stream:
            payload = event.payload
            if isinstance(payload, MigrationProgress):
                detail = f"{payload.status} iteration {payload.iteration}"
                if payload.actions:
                    detail += f" ({', '.join(payload.actions)})"
                bar.update(task, completed=payload.percent, description=detail)
            elif isinstance(payload, Migration):
                bar.update(task, description=str(payload.status))
                if payload.status in ENDED:
                    if payload.status == "completed":
                        bar.update(task, completed=100)
                    return payload
    raise UsageError("the event stream ended before the migration did")
