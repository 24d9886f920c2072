"""A control plane's client, driven by one JSON command, answering in JSON.

Run by the previous release's interpreter, as its own process:

    <release venv>/bin/python -I tests/upgrade/old_client.py '<json command>'

and imported by the upgrade tests to run the very same command with today's client
(`await run(command)`), so one scenario is played both ways. It must only use API that the
previous release already has: `ComputeClient.connect`, the generic `call` / `fanout`,
`subscribe` and its `EventStream.skipped`, and the objects of `schemas.objects`; never
anything of the tests tree (`-I` keeps the repository off its `sys.path`).

The command:

    {"url": ..., "prefix": ..., "timeout": 30,
     "client_options": {...},               # more keyword arguments of ComputeClient.connect
     "subscribe": "instance.<uuid>.*",      # optional: events collected from before step one
     "steps": [{"call": method, "host": h, "args": {...}, "instance": uuid, "timeout": 60},
               {"fanout": method, "args": {...}}],
     "events": {"until": [{"topic": t, "field": f, "value": v}], "timeout": 20, "settle": 0.5}}

After the steps it waits (at most "timeout" seconds) until, for every "until" condition, an
event on that topic whose payload has that field at that value arrived, then "settle" seconds
more for late or duplicate ones.

Objects are JSON objects with "$obj" naming their class (and, in answers, "$version"); the
answer is {"results": [{"ok": value} | {"error": {"type", "message"}}, ...], "events":
[{"topic", "sender", "payload"}, ...], "skipped": n, "manifests": {host: {name: version}}}.
Every step runs, whatever the one before answered; anything but a `VirtactorError` (a bug
here, or an API the release lacks) ends the process with its traceback.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import enum
import json
import sys
from typing import Any

from agent.client import ComputeClient
from schemas import VersionedObject, VirtactorError, objects


def to_json(value: Any) -> Any:
    if isinstance(value, VersionedObject):
        out: dict[str, Any] = {"$obj": value.obj_name(), "$version": value.VERSION}
        for name in value.obj_fields():
            if value.obj_attr_is_set(name):
                out[name] = to_json(getattr(value, name))
        return out
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    return repr(value)


def from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    fields = {k: from_json(v) for k, v in value.items() if not k.startswith("$")}
    if "$obj" in value:
        return getattr(objects, value["$obj"])(**fields)
    return fields


async def _step(client: ComputeClient, step: dict[str, Any]) -> dict[str, Any]:
    args = from_json(step.get("args") or {})
    try:
        if "fanout" in step:
            await client.fanout(step["fanout"], args)
            return {"ok": None}
        result = await client.call(
            step["host"],
            step["call"],
            args,
            instance=step.get("instance"),
            timeout=step.get("timeout"),
        )
    except VirtactorError as exc:  # an agent's or the bus's answer: the test judges it
        return {"error": {"type": type(exc).__name__, "message": str(exc)}}
    return {"ok": to_json(result)}


async def run(command: dict[str, Any]) -> dict[str, Any]:
    """Play `command` (see the module docstring) and return its answer."""
    client = await ComputeClient.connect(
        command["url"],
        prefix=command["prefix"],
        default_timeout=command.get("timeout", 30),
        **command.get("client_options", {}),
    )
    events: list[dict[str, Any]] = []
    answer: dict[str, Any] = {"results": [], "events": events, "skipped": 0}
    try:
        stream = await client.subscribe(command["subscribe"]) if "subscribe" in command else None
        collector = asyncio.create_task(_collect(stream, events)) if stream else None
        for step in command.get("steps", []):
            answer["results"].append(await _step(client, step))
        if stream is not None and collector is not None:
            wanted = command.get("events", {})
            try:
                async with asyncio.timeout(wanted.get("timeout", 20)):
                    while not _arrived(wanted.get("until", []), events):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            except TimeoutError:
                pass  # the test sees how many arrived
            # Late or duplicate events would still show up in the answer.
            await asyncio.sleep(wanted.get("settle", 0.5))
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
            answer["skipped"] = stream.skipped
            await stream.aclose()
        answer["manifests"] = {h: dict(m) for h, m in client.host_manifests.items()}
    finally:
        await client.aclose()
    return answer


def _arrived(conditions: list[dict[str, Any]], events: list[dict[str, Any]]) -> bool:
    return all(
        any(e["topic"] == c["topic"] and e["payload"].get(c["field"]) == c["value"] for e in events)
        for c in conditions
    )


async def _collect(stream: Any, events: list[dict[str, Any]]) -> None:
    async for event in stream:
        events.append(
            {"topic": event.topic, "sender": event.sender_host, "payload": to_json(event.payload)}
        )


def main(argv: list[str]) -> int:
    answer = asyncio.run(run(json.loads(argv[1])))
    json.dump(answer, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
