"""`virtactor conductor` as an operator runs it: `--upgrade-db` migrates and exits 0; serving
stops on SIGTERM with status 0; a database behind the release or no broker is refused, one a
newer release migrated is served (a rollback)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa

from agent.client import ComputeClient
from agent.conductor import create_engine, schema_revision
from agent.conductor.schema import HEAD_REVISION
from agent.conductor.service import running_conductor
from agent.config import AgentConfig, ConductorSection
from agent.errors import Unroutable
from agent.transport import CONDUCTOR_QUEUE, InProcessBus
from schemas import use_indirection
from schemas.objects import Instance, RequestContext
from tests.agent.conftest import delete_amqp_topology
from tests.schemas import samples

from .over_the_bus import UUID, caller

ROOT = Path(__file__).resolve().parents[3]


def config_file(tmp_path: Path, database: str, amqp: str = "", prefix: str = "") -> Path:
    path = tmp_path / "conductor.toml"
    lines = ["[conductor]", f'database_url = "{database}"']
    if amqp:
        lines += ["[amqp]", f'url = "{amqp}"', f'prefix = "{prefix}"']
    path.write_text("\n".join(lines) + "\n")
    return path


async def start_conductor(*args: str) -> asyncio.subprocess.Process:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.cli",
        "--log-level",
        "INFO",
        "conductor",
        *args,
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str]:
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_upgrade_db_brings_an_empty_database_to_this_releases_schema_and_exits_0(
    database_url: str, tmp_path: Path
) -> None:
    status, err = await finished(
        await start_conductor("--config", str(config_file(tmp_path, database_url)), "--upgrade-db")
    )
    assert status == 0, err
    engine = create_engine(database_url)
    try:
        assert await schema_revision(engine) == HEAD_REVISION
    finally:
        await engine.dispose()


async def test_the_conductor_serves_until_sigterm_then_exits_0(
    migrated_url: str, tmp_path: Path, rabbitmq_url: str
) -> None:
    prefix = f"vt-test-{uuid.uuid4().hex[:8]}"
    config = config_file(tmp_path, migrated_url, rabbitmq_url, prefix)
    process = await start_conductor("--config", str(config))
    client = await ComputeClient.connect(rabbitmq_url, prefix=prefix, announce_interval=None)
    try:
        async with asyncio.timeout(60):
            while True:  # until the process has declared and consumes its queue
                try:
                    await client.get_object_manifest(CONDUCTOR_QUEUE, timeout=5)
                    break
                except Unroutable:
                    await asyncio.sleep(0.1)
        with use_indirection(caller(client.transport)):
            await samples.instance().create()
            found = await Instance.get_by_uuid(RequestContext(request_id="req-cli"), UUID)
        process.send_signal(signal.SIGTERM)
        status, err = await finished(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await client.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [CONDUCTOR_QUEUE])
    assert found.uuid == UUID
    assert status == 0, err
    assert "conductor stopping" in err


async def test_a_database_without_this_releases_migrations_is_refused(
    tmp_path: Path, rabbitmq_url: str
) -> None:
    database = tmp_path / "empty.sqlite"
    prefix = f"vt-test-{uuid.uuid4().hex[:8]}"
    config = config_file(tmp_path, str(database), rabbitmq_url, prefix)
    try:
        status, err = await finished(await start_conductor("--config", str(config)))
    finally:
        await delete_amqp_topology(rabbitmq_url, prefix, [])
    assert status == 1
    assert (
        f"the object database at sqlite+aiosqlite:///{database} is at schema revision None, "
        f"this conductor needs '{HEAD_REVISION}': run `virtactor conductor --upgrade-db` first"
    ) in err


async def test_a_conductor_with_no_broker_to_serve_on_exits_2(tmp_path: Path) -> None:
    config = config_file(tmp_path, str(tmp_path / "objects.sqlite"))
    status, err = await finished(await start_conductor("--config", str(config)))
    assert status == 2
    assert (
        "configuration [amqp] url: empty: a conductor serves agents over RabbitMQ (set [amqp] url)"
    ) in err


async def test_a_database_a_newer_release_migrated_is_served(migrated_url: str) -> None:
    engine = create_engine(migrated_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()
    config = AgentConfig(conductor=ConductorSection(database_url=migrated_url))
    bus = InProcessBus()
    await bus.start()
    try:
        async with running_conductor(bus, config):
            with use_indirection(caller(bus)):
                await samples.instance().create()
                found = await Instance.get_by_uuid(RequestContext(request_id="req-new"), UUID)
    finally:
        await bus.aclose()
    assert found.uuid == UUID
