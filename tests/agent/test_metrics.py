"""The metrics endpoint of a real agent (libvirt's test driver, the in-process bus and its
embedded conductor), scraped over HTTP after traffic, and the one log line per request with
the request id on the agent's lines and on the conductor's for the save it caused."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from agent.client import ComputeClient
from agent.config import MetricsSection
from agent.errors import UnknownMethod
from agent.logs import log_handler
from agent.service import Agent
from schemas.objects import Instance
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.embedded import domain_removed, embedded_agent, embedded_config, make_root_image
from tests.conftest import ON_SESSION_LOOP

HOST = "compute-metrics"
PAUSE_KEY = "metrics-pause-1"

pytestmark = ON_SESSION_LOOP


@dataclass
class Observed:
    agent: Agent
    client: ComputeClient
    guest: Instance
    logs: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines()]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def observed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    """An agent with its metrics on a free port, logging JSON at INFO, that spawned a guest,
    paused it under a known request id and was asked for a method it does not have."""
    tmp_path = tmp_path_factory.mktemp("metrics")
    await make_root_image(tmp_path)
    config = dataclasses.replace(
        embedded_config(tmp_path, HOST), metrics=MetricsSection(listen="127.0.0.1:0")
    )
    logs = io.StringIO()
    handler = log_handler("json", logs)
    root, agent_logger = logging.getLogger(), logging.getLogger("agent")
    level = agent_logger.level
    root.addHandler(handler)
    agent_logger.setLevel(logging.INFO)
    guest = instance(str(uuid.uuid4()))
    try:
        async with domain_removed(guest.uuid), embedded_agent(config) as (agent, client):
            await client.spawn(HOST, guest, image_meta())
            await client.with_options(message_id=PAUSE_KEY).pause(HOST, guest)
            with pytest.raises(UnknownMethod):
                await client.call(HOST, "no_such_method", {})
            yield Observed(agent, client, guest, logs)
    finally:
        root.removeHandler(handler)
        agent_logger.setLevel(level)


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def samples(agent: Agent) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert agent.metrics_port is not None
    status, text = await asyncio.to_thread(scrape, agent.metrics_port)
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_the_endpoint_counts_calls_latency_events_saves_and_the_connection(
    observed: Observed,
) -> None:
    found = await samples(observed.agent)

    assert value(found, "virtactor_rpc_calls_total", method="spawn", kind="call", outcome="ok") == 1
    assert value(found, "virtactor_rpc_calls_total", method="pause", kind="call", outcome="ok") == 1
    assert value(found, "virtactor_rpc_handler_seconds_count", method="spawn") == 1
    assert value(found, "virtactor_rpc_handler_seconds_bucket", method="spawn", le="+Inf") == 1
    power_events = value(
        found, "virtactor_events_published_total", scope="instance", event="power_state"
    )
    assert power_events >= 2  # running after the spawn, paused
    assert value(found, "virtactor_conductor_saves_total", object="Instance", outcome="ok") >= 2
    assert value(found, "virtactor_libvirt_connected") == 1
    assert value(found, "virtactor_libvirt_reconnects_total") == 0
    assert value(found, "virtactor_actors", kind="host") == 1
    assert value(found, "virtactor_actors", kind="instance") >= 1
    assert value(found, "virtactor_migrations_total", outcome="completed") == 0
    assert value(found, "virtactor_migration_duration_seconds_count") == 0


async def test_a_method_the_agent_does_not_have_is_counted_under_one_label(
    observed: Observed,
) -> None:
    found = await samples(observed.agent)

    refused = value(
        found, "virtactor_rpc_calls_total", method="(unknown)", kind="call", outcome="UnknownMethod"
    )
    assert refused == 1
    assert not any(labels and ("method", "no_such_method") in labels for _, labels in found)


async def test_a_redelivered_call_is_a_reply_cache_hit(observed: Observed) -> None:
    before = value(await samples(observed.agent), "virtactor_rpc_reply_cache_hits_total")

    again = observed.client.with_options(message_id=PAUSE_KEY)
    await again.pause(HOST, observed.guest)  # answered from the cache: the guest stays paused

    found = await samples(observed.agent)
    assert value(found, "virtactor_rpc_reply_cache_hits_total") == before + 1
    assert (
        value(found, "virtactor_rpc_calls_total", method="pause", kind="call", outcome="duplicate")
        == 1
    )


async def test_anything_but_get_metrics_is_refused(observed: Observed) -> None:
    assert observed.agent.metrics_port is not None

    status, _ = await asyncio.to_thread(scrape, observed.agent.metrics_port, "/other")

    assert status == 404


async def test_every_request_logs_one_line_with_its_method_outcome_and_duration(
    observed: Observed,
) -> None:
    served = [
        line
        for line in observed.lines()
        if line["logger"] == "agent.rpc.server" and line.get("rpc_method") == "pause"
    ]

    first = served[0]
    assert (first["level"], first["outcome"], first["request_id"]) == (
        "INFO",
        "ok",
        f"req-{PAUSE_KEY}",
    )
    assert first["duration_ms"] > 0
    assert first["message"].startswith(f"call pause {PAUSE_KEY} ok in ")


async def test_a_refused_call_is_logged_at_warning_with_the_reason(observed: Observed) -> None:
    refused = [line for line in observed.lines() if line.get("outcome") == "UnknownMethod"]

    assert len(refused) == 1
    assert refused[0]["level"] == "WARNING"
    assert "refused" in refused[0]["message"]
    assert "no_such_method" in refused[0]["message"]


async def test_the_conductors_lines_for_a_save_name_the_request_that_caused_it(
    observed: Observed,
) -> None:
    request_id = f"req-{PAUSE_KEY}"
    lines = observed.lines()

    agent_lines = [line for line in lines if line.get("request_id") == request_id]
    conductor_lines = [
        line
        for line in lines
        if line.get("global_request_id") == request_id and line.get("rpc_method") == "object_action"
    ]

    assert any(line.get("rpc_method") == "pause" for line in agent_lines)
    assert conductor_lines, "no conductor line names the pause's request id"
    # Each save is a request of its own to the conductor, naming the pause as its cause.
    assert all(line["request_id"] != request_id for line in conductor_lines)
    assert all(line["outcome"] == "ok" for line in conductor_lines)
