"""The conductor stops in the middle of an instance's life over RabbitMQ: the operation still
happens, the agent owes the record, and once a conductor is back the next resync brings the
database in line (read in SQL), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent.client import ComputeClient
from agent.conductor.db import create_engine
from agent.conductor.service import running_conductor
from agent.config import AmqpSection, ConductorSection
from agent.service import Agent, build_transport
from agent.transport.topics import CONDUCTOR_QUEUE
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import domain_removed, embedded_config, make_root_image
from tests.conftest import on_session_loop

pytestmark = pytest.mark.rabbitmq

HOST = "cmp-converge"


async def sql_states(database: str, uuid_: str) -> tuple[str, str | None, str] | None:
    """(vm_state, task_state, power_state) of the instance's row, in plain SQL."""
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.text(
                        "SELECT vm_state, task_state, power_state FROM instances WHERE uuid = :u"
                    ),
                    {"u": uuid_},
                )
            ).first()
    finally:
        await engine.dispose()
    return None if row is None else (row[0], row[1], row[2])


async def converged(database: str, uuid_: str, states: tuple[str, None, str]) -> None:
    async with asyncio.timeout(20):
        while await sql_states(database, uuid_) != states:  # noqa: ASYNC110 - a database
            await asyncio.sleep(0.1)


@on_session_loop
async def test_a_record_owed_while_the_conductor_was_down_converges_after_it_returns(
    tmp_path: Path, rabbitmq_url: str, database_url: str
) -> None:
    prefix = f"vt-conv-{uuid.uuid4().hex[:8]}"
    await make_root_image(tmp_path)
    base = embedded_config(tmp_path, HOST)
    config = dataclasses.replace(
        base,
        agent=dataclasses.replace(base.agent, resync_interval=1.0),
        amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
        conductor=ConductorSection(
            database_url=database_url, save_timeout=1.0, save_retry_interval=60.0
        ),
    )
    database = database_url
    me = instance(str(uuid.uuid4()))
    conductor_bus = build_transport(config)
    await conductor_bus.start()
    agent = Agent(config)
    client = await ComputeClient.connect(rabbitmq_url, prefix=prefix, default_timeout=30)
    try:
        async with domain_removed(me.uuid):
            async with running_conductor(conductor_bus, config, upgrade=True):
                await agent.start()
                await agent.wait_ready(timeout=30)
                await client.spawn(HOST, me, image_meta())
                await converged(database, me.uuid, ("active", None, "running"))

            # No conductor: the pause happens all the same, and its record is owed.
            paused = await client.pause(HOST, me)
            assert (paused.vm_state, paused.power_state) == ("paused", "paused")
            assert await sql_states(database, me.uuid) == ("active", None, "running")

            async with running_conductor(conductor_bus, config):
                # The next resync (every second here) saves the whole record again.
                await converged(database, me.uuid, ("paused", None, "paused"))
                await client.destroy(HOST, me)
                await converged(database, me.uuid, ("deleted", None, "pending"))
    finally:
        await client.aclose()
        await agent.aclose()
        await conductor_bus.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [HOST, CONDUCTOR_QUEUE])
