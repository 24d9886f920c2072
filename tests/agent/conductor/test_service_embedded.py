"""The embedded default: an agent on the in-process bus runs its own conductor, on a SQLite
file in its instances path, so nothing but the agent needs to run."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.conductor import SqlObjectStore, create_engine
from agent.config import AgentConfig, AgentSection, ConfigError
from agent.service import Agent
from schemas import use_indirection
from schemas.objects import Instance, RequestContext
from tests.agent.embedded import embedded_agent, embedded_config
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
