"""The embedded default: an agent on the in-process bus runs its own conductor, on a SQLite
file in its instances path, so nothing but the agent needs to run; its instance actors keep
their records there."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agent.conductor import SqlObjectStore, create_engine
from agent.config import AgentConfig, AgentSection, ConfigError
from agent.service import Agent
from schemas import use_indirection
from schemas.objects import Instance, RequestContext
from tests.actors.instance.fakes import image_meta
from tests.agent.embedded import embedded_agent, embedded_config, embedded_guest
from tests.conftest import on_session_loop
from tests.schemas import samples

from .over_the_bus import UUID, read_directly

CTX = RequestContext(request_id="req-embedded")


@on_session_loop
async def test_an_agent_on_the_in_process_bus_serves_objects_from_a_sqlite_file(
    tmp_path: Path,
) -> None:
    config = embedded_config(tmp_path, "cmp-objects")
    async with embedded_agent(config, ready_timeout=None) as (agent, _client):
        assert agent.conductor is not None
        with use_indirection(agent.objects):
            await samples.instance().create()
            instance = await Instance.get_by_uuid(CTX, UUID)
            instance.host = "cmp-objects"
            await instance.save()
    assert agent.conductor is None
    # The file outlives the agent; read here without any bus.
    engine = create_engine(tmp_path / "instances" / "_conductor.sqlite")
    try:
        stored = await read_directly(SqlObjectStore(engine))
    finally:
        await engine.dispose()
    assert stored.host == "cmp-objects"


def test_an_agent_named_as_the_conductors_queue_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        Agent(AgentConfig(agent=AgentSection(host="conductor")))
    assert str(refused.value) == (
        "configuration [agent] host: 'conductor' is the object backend's queue; "
        "name the host otherwise"
    )


def states_in_sql(database: Path, uuid: str) -> tuple[str, str | None, str] | None:
    """(vm_state, task_state, power_state) of the instance's row, read with sqlite3."""
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT vm_state, task_state, power_state FROM instances WHERE uuid = ?", (uuid,)
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


@on_session_loop
async def test_the_instance_actors_states_are_in_the_database_after_spawn_pause_destroy(
    tmp_path: Path,
) -> None:
    host = "cmp-records"
    database = tmp_path / "instances" / "_conductor.sqlite"
    async with embedded_guest(tmp_path, host, image_meta()) as running:
        uuid = running.guest.uuid
        answers = [running.spawned]
        states = [await asyncio.to_thread(states_in_sql, database, uuid)]
        answers.append(await running.client.pause(host, running.guest))
        states.append(await asyncio.to_thread(states_in_sql, database, uuid))
        answers.append(await running.client.destroy(host, running.guest, destroy_disks=True))
        states.append(await asyncio.to_thread(states_in_sql, database, uuid))
    # The rows hold what the actor answered after each operation.
    assert states == [(a.vm_state, a.task_state, a.power_state) for a in answers]
    assert [row[0] for row in states if row is not None] == ["active", "paused", "deleted"]
