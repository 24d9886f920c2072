"""Live migration as a message-driven workflow between two real libvirt hosts, an agent on
each over the real RabbitMQ, a conductor on the same bus: the guest keeps running, its
record and both trackers follow it; a refused or failed migration leaves it where it was.

Both agents share one instances path (the hosts are on one machine), so the guest's files
stay where they are and only its memory moves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
import pytest_asyncio

from actors.instance.errors import InstanceInvalidState
from actors.migration.errors import MigrationNotFound, MigrationPreCheckError
from actors.tracker.errors import ClaimFailed
from agent.client import ComputeClient
from agent.conductor.service import running_conductor
from agent.config import (
    AgentConfig,
    AgentSection,
    AmqpSection,
    ConductorSection,
    FirewallSection,
    MigrationSection,
)
from agent.service import Agent, build_transport
from agent.transport import Transport
from schemas.objects import (
    ComputeNode,
    ImageMeta,
    Instance,
    Migration,
    MigrationPolicy,
    MigrationProgress,
)
from schemas.remotable import use_indirection
from tests.agent.conftest import delete_amqp_topology
from tests.system.conftest import (
    ON_REAL_QEMU,
    ConsoleLine,
    DomainJanitor,
    LocalHost,
    qemu_files_dir,
    wait_for_console_async,
)
from tests.system.guest_image import HEARTBEAT_RE, GuestImage, GuestMarker, dirty_cmdline_arg
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    config_for,
    kernel_image,
    make_guest_files,
    tracked_instance,
)

pytestmark = [pytest.mark.rabbitmq, *ON_REAL_QEMU]

SOURCE, DEST = "lm-src", "lm-dst"
MIGRATION_TIMEOUT = 120.0
DIRTY_MIB = 32
DIRTY_GUEST_MB = 192


@dataclass
class Pair:
    client: ComputeClient
    agents: dict[str, Agent]
    hosts: dict[str, LocalHost]
    root: Path


MIGRATION = MigrationSection(
    poll_interval=0.2, peer_timeout=15.0, max_incoming=1, busy_retry_interval=1.0
)


def agent_config(
    base: AgentConfig,
    name: str,
    url: str,
    prefix: str,
    db: str,
    instances_path: str,
    migration: dict[str, object] | None = None,
) -> AgentConfig:
    return dataclasses.replace(
        base,
        agent=AgentSection(
            host=name,
            host_ip="127.0.0.1",
            instances_path=instances_path,
            heartbeat_interval=2.0,
        ),
        amqp=AmqpSection(url=url, prefix=prefix),
        conductor=ConductorSection(database_url=db),
        # A destination that does not answer fails a step within 15 s; one incoming job at a
        # time, a busy destination asked again every second.
        migration=dataclasses.replace(MIGRATION, **(migration or {})),
    )


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def pair(
    rabbitmq_url: str,
    test_hosts: tuple[LocalHost, ...],
    guest_image: GuestImage,
) -> AsyncIterator[Pair]:
    async for deployment in deployed_with_guest_files(rabbitmq_url, test_hosts, guest_image):
        yield deployment


async def deployed_with_guest_files(
    rabbitmq_url: str,
    test_hosts: tuple[LocalHost, ...],
    guest_image: GuestImage,
    **options: Any,
) -> AsyncIterator[Pair]:
    """`deployed`, with the guest's images in a fresh directory QEMU can reach."""
    with qemu_files_dir() as files:
        root = await asyncio.to_thread(make_guest_files, files, guest_image)
        async for deployment in deployed(rabbitmq_url, test_hosts, root, **options):
            yield deployment


async def deployed(
    rabbitmq_url: str,
    test_hosts: tuple[LocalHost, ...],
    root: Path,
    *,
    shared: bool = True,
    migration: dict[str, dict[str, object]] | None = None,
    firewall: str = "none",
) -> AsyncIterator[Pair]:
    """Two agents (SOURCE on host1, DEST on host2) and a conductor on the real RabbitMQ; they
    share one instances path unless `shared` is false (then each has its own, and its own
    image cache under it). `migration` overrides `[migration]` settings per agent;
    `firewall` is both agents' `[firewall] driver`."""
    prefix = f"vt-lm-{uuid.uuid4().hex[:8]}"
    db = str(root / "conductor.sqlite")
    configs = {}
    for name, host in zip((SOURCE, DEST), test_hosts, strict=False):
        base = config_for(host, root)
        path = base.agent.instances_path if shared else str(root / f"instances-{name}")
        overrides = (migration or {}).get(name)
        configs[name] = dataclasses.replace(
            agent_config(base, name, rabbitmq_url, prefix, db, path, overrides),
            firewall=FirewallSection(driver=firewall),
        )
    conductor_bus: Transport = build_transport(configs[SOURCE])
    await conductor_bus.start()
    agents: dict[str, Agent] = {}
    client: ComputeClient | None = None
    try:
        async with running_conductor(conductor_bus, configs[SOURCE], upgrade=True):
            try:
                for name, config in configs.items():
                    agents[name] = Agent(config)
                    await agents[name].start()
                for agent in agents.values():
                    await agent.wait_ready(timeout=60)
                client = await ComputeClient.connect(
                    rabbitmq_url, prefix=prefix, default_timeout=120, is_admin=True
                )
                yield Pair(
                    client, agents, dict(zip((SOURCE, DEST), test_hosts, strict=False)), root
                )
            finally:
                if client is not None:
                    await client.aclose()
                for agent in agents.values():
                    await agent.aclose()
    finally:
        await conductor_bus.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [SOURCE, DEST])


def domain_state(uri: str, uuid_: str) -> int | None:
    conn = libvirt.open(uri)
    try:
        return conn.lookupByUUIDString(uuid_).state()[0]
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


async def until_migration_ends(stream: AsyncIterator[object]) -> tuple[Migration, list[object]]:
    seen: list[object] = []
    async with asyncio.timeout(MIGRATION_TIMEOUT):
        async for event in stream:
            payload = getattr(event, "payload", None)
            seen.append(payload)
            if isinstance(payload, Migration) and payload.status in (
                "completed",
                "failed",
                "cancelled",
                "error",
            ):
                return payload, seen
    raise AssertionError("the event stream ended")


async def test_a_running_guest_migrates_and_keeps_counting(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    me = tracked_instance(domain_janitor)
    console = pair.root / "instances" / me.uuid / "console.log"
    await client.spawn(SOURCE, me, kernel_image(guest_image))
    booted = await wait_for_console_async(console, GuestMarker.BOOTED, BOOT_TIMEOUT)
    before = await wait_for_console_async(console, HEARTBEAT_RE, 60, start=booted.end)
    source_before = await client.get_compute_node(SOURCE)
    dest_before = await client.get_compute_node(DEST)

    migration = Migration(
        uuid=str(uuid.uuid4()),
        instance_uuid=me.uuid,
        migration_type="live-migration",
        status="queued",
    )
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        started = await client.live_migration(SOURCE, me, DEST, migration)
        assert started.status == "queued" and started.dest_compute == DEST
        ended, seen = await until_migration_ends(aiter(stream))
    assert ended.status == "completed", seen
    statuses = [p.status for p in seen if isinstance(p, Migration)]
    assert statuses == ["preparing", "running", "post-migrating", "completed"]
    assert any(isinstance(p, MigrationProgress) for p in seen)

    # Only the destination's QEMU runs it now, and the guest kept counting.
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) is None
    after = await wait_for_console_async(console, HEARTBEAT_RE, 60, start=console.stat().st_size)
    assert beat(after.text) > beat(before.text)

    # Both trackers moved the guest's share, and the record names its new host.
    source_after = await client.get_compute_node(SOURCE)
    dest_after = await client.get_compute_node(DEST)
    flavor = me.flavor
    assert source_after.memory_mb_used == source_before.memory_mb_used - flavor.memory_mb
    assert dest_after.memory_mb_used == dest_before.memory_mb_used + flavor.memory_mb
    assert dest_after.current_workload == 0
    with use_indirection(pair.agents[DEST].objects):
        recorded = await Instance.get_by_uuid(None, me.uuid)
        saved = await Migration.get_by_uuid(None, migration.uuid)
        node = await ComputeNode.get_by_uuid(None, dest_after.uuid)
    assert recorded.host == DEST
    assert saved.status == "completed" and saved.dest_compute == DEST
    # The source agent's metrics count it, with its duration.
    finished = pair.agents[SOURCE].system.stats.workflows
    assert finished.migrations["completed"] >= 1 and finished.migration_seconds.count >= 1
    assert node.memory_mb_used == dest_after.memory_mb_used
    await client.destroy(DEST, me)


async def test_refusals_are_typed_and_leave_the_guest_where_it_is(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    me = tracked_instance(domain_janitor)
    await client.spawn(SOURCE, me, kernel_image(guest_image))

    def migration() -> Migration:
        return Migration(
            uuid=str(uuid.uuid4()),
            instance_uuid=me.uuid,
            migration_type="live-migration",
            status="queued",
        )

    with pytest.raises(MigrationPreCheckError, match="is this host"):
        await client.live_migration(SOURCE, me, SOURCE, migration())
    # A block migration between hosts that share the instances path is refused by the check;
    # the workflow ends failed, the guest untouched.
    refused = migration()
    async with await client.subscribe(f"migration.{refused.uuid}.*") as stream:
        await client.live_migration(SOURCE, me, DEST, refused, block_migration=True)
        ended, _ = await until_migration_ends(aiter(stream))
    assert ended.status == "failed"
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) is None
    assert (await client.get_compute_node(DEST)).current_workload == 0
    # The instance may migrate again: its task_state was cleared.
    info = await client.get_info(SOURCE, me)
    assert info.state == "running"
    await client.destroy(SOURCE, me)


def beat(line: str) -> int:
    match = HEARTBEAT_RE.fullmatch(line)
    assert match is not None, line
    return int(match.group(1))


def dirtying(guest_image: GuestImage, janitor: DomainJanitor) -> tuple[Instance, ImageMeta]:
    """An instance whose guest rewrites `DIRTY_MIB` of memory over and over, so a migration
    has pages that keep getting dirty (and, at a low bandwidth, takes a while)."""
    me = tracked_instance(janitor)
    me.flavor.memory_mb = me.memory_mb = DIRTY_GUEST_MB
    image = kernel_image(guest_image)
    props = image.properties
    props.os_command_line = f"{props.os_command_line} {dirty_cmdline_arg(DIRTY_MIB)}"
    return me, image


@dataclass
class DirtyingGuest:
    instance: Instance
    console: Path
    started: ConsoleLine  # the console line saying the dirtying loop runs


async def spawn_dirtying(
    pair: Pair, janitor: DomainJanitor, guest_image: GuestImage
) -> DirtyingGuest:
    """`dirtying`'s guest spawned on SOURCE, once its dirtying loop runs."""
    me, image = dirtying(guest_image, janitor)
    console = pair.root / "instances" / me.uuid / "console.log"
    await pair.client.spawn(SOURCE, me, image)
    marker = f"{GuestMarker.DIRTYING} {DIRTY_MIB} MiB"
    return DirtyingGuest(me, console, await wait_for_console_async(console, marker, BOOT_TIMEOUT))


async def first_progress(stream: AsyncIterator[object]) -> MigrationProgress:
    async with asyncio.timeout(MIGRATION_TIMEOUT):
        async for event in stream:
            payload = getattr(event, "payload", None)
            if isinstance(payload, MigrationProgress):
                return payload
    raise AssertionError("the event stream ended")


def new_migration(me: Instance) -> Migration:
    return Migration(
        uuid=str(uuid.uuid4()),
        instance_uuid=me.uuid,
        migration_type="live-migration",
        status="queued",
    )


async def assert_left_in_place(pair: Pair, me: Instance, dest_before: ComputeNode) -> None:
    """The guest runs on the source only; the destination holds nothing of it."""
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) is None
    dest_after = await pair.client.get_compute_node(DEST)
    assert (dest_after.memory_mb_used, dest_after.current_workload) == (
        dest_before.memory_mb_used,
        0,
    )
    assert (await pair.client.get_info(SOURCE, me)).state == "running"


async def test_an_abort_mid_flight_cancels_and_leaves_the_guest_on_the_source(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    me = (await spawn_dirtying(pair, domain_janitor, guest_image)).instance
    dest_before = await client.get_compute_node(DEST)
    migration = new_migration(me)
    slow = MigrationPolicy(bandwidth_mibps=1, progress_timeout=0, completion_timeout_per_gib=0)
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        events = aiter(stream)
        await client.live_migration(SOURCE, me, DEST, migration, policy=slow)
        await first_progress(events)
        assert await client.live_migration_abort(SOURCE, me, migration.uuid) is True
        ended, _ = await until_migration_ends(events)
    assert ended.status == "cancelled"
    await assert_left_in_place(pair, me, dest_before)
    await client.destroy(SOURCE, me)


async def test_a_migration_that_makes_no_progress_is_aborted_by_its_policy(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    me = (await spawn_dirtying(pair, domain_janitor, guest_image)).instance
    dest_before = await client.get_compute_node(DEST)
    migration = new_migration(me)
    # The guest dirties its memory faster than 8 MiB/s can copy it, and 1 ms of downtime
    # is never enough: the remaining data stops falling, and the policy gives up.
    stuck = MigrationPolicy(
        bandwidth_mibps=8,
        max_downtime_ms=1,
        progress_timeout=3,
        completion_timeout_per_gib=0,
        timeout_action="abort",
    )
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        await client.live_migration(SOURCE, me, DEST, migration, policy=stuck)
        ended, seen = await until_migration_ends(aiter(stream))
    assert ended.status == "failed", seen
    progress = [p for p in seen if isinstance(p, MigrationProgress)]
    assert progress and "abort" in progress[-1].actions
    await assert_left_in_place(pair, me, dest_before)
    await client.destroy(SOURCE, me)


async def test_a_migration_that_makes_no_progress_switches_to_post_copy_and_completes(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    guest = await spawn_dirtying(pair, domain_janitor, guest_image)
    me, console, before = guest.instance, guest.console, guest.started
    migration = new_migration(me)
    # As above, but the policy may switch to post-copy: the guest runs on the destination
    # at once and its remaining pages follow on demand.
    stuck = MigrationPolicy(
        bandwidth_mibps=8,
        max_downtime_ms=1,
        progress_timeout=3,
        completion_timeout_per_gib=0,
        timeout_action="post_copy",
        post_copy=True,
    )
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        await client.live_migration(SOURCE, me, DEST, migration, policy=stuck)
        ended, seen = await until_migration_ends(aiter(stream))
    assert ended.status == "completed", seen
    progress = [p for p in seen if isinstance(p, MigrationProgress)]
    assert any("post_copy" in p.actions for p in progress)
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    after = await wait_for_console_async(console, HEARTBEAT_RE, 60, start=before.end)
    assert after.text
    await client.destroy(DEST, me)


async def test_a_forced_completion_pauses_the_guest_for_its_last_pages_then_it_runs_on(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    guest = await spawn_dirtying(pair, domain_janitor, guest_image)
    me, console, before = guest.instance, guest.console, guest.started
    migration = new_migration(me)
    # Never converges by itself (1 ms of downtime against a guest dirtying 32 MiB), and the
    # policy has no post-copy: forcing it pauses the guest until the rest is copied.
    stuck = MigrationPolicy(
        bandwidth_mibps=8, max_downtime_ms=1, progress_timeout=0, completion_timeout_per_gib=0
    )
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        events = aiter(stream)
        await client.live_migration(SOURCE, me, DEST, migration, policy=stuck)
        await first_progress(events)
        assert await client.live_migration_force_complete(SOURCE, me) is True
        ended, seen = await until_migration_ends(events)
    assert ended.status == "completed", seen
    progress = [p for p in seen if isinstance(p, MigrationProgress)]
    assert any("force_complete" in p.actions for p in progress)
    # It ran before, so the destination resumed it: running, counting on.
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert (await client.get_info(DEST, me)).state == "running"
    after = await wait_for_console_async(console, HEARTBEAT_RE, 60, start=console.stat().st_size)
    assert after.end > before.end
    # Nothing runs any more to force.
    with pytest.raises(MigrationNotFound):
        await client.live_migration_force_complete(DEST, me)
    await client.destroy(DEST, me)


async def test_a_busy_destination_delays_a_migration_and_does_not_fail_it(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    """The destination takes one incoming migration at a time (`max_incoming = 1` here): a
    second waits, preparing, until the first ends, then runs."""
    client = pair.client
    waiting = tracked_instance(domain_janitor)
    await client.spawn(SOURCE, waiting, kernel_image(guest_image))
    slow = (await spawn_dirtying(pair, domain_janitor, guest_image)).instance
    first, second = new_migration(slow), new_migration(waiting)
    crawl = MigrationPolicy(bandwidth_mibps=1, progress_timeout=0, completion_timeout_per_gib=0)
    async with (
        await client.subscribe(f"migration.{first.uuid}.*") as first_stream,
        await client.subscribe(f"migration.{second.uuid}.status") as second_stream,
    ):
        first_events = aiter(first_stream)
        second_ended = asyncio.create_task(until_migration_ends(aiter(second_stream)))
        await client.live_migration(SOURCE, slow, DEST, first, policy=crawl)
        await first_progress(first_events)
        await client.live_migration(SOURCE, waiting, DEST, second)
        # Asked every second, refused as busy each time: still preparing.
        await asyncio.sleep(4)
        assert not second_ended.done()
        with use_indirection(pair.agents[SOURCE].objects):
            recorded = await Migration.get_by_uuid(None, second.uuid)
        assert recorded.status == "preparing"
        assert await client.live_migration_abort(SOURCE, slow, first.uuid) is True
        cancelled, _ = await until_migration_ends(first_events)
        ended, seen = await second_ended
    assert cancelled.status == "cancelled"
    assert ended.status == "completed", seen
    statuses = [p.status for p in seen if isinstance(p, Migration)]
    assert statuses == ["preparing", "running", "post-migrating", "completed"]
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, waiting.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    await client.destroy(SOURCE, slow)
    await client.destroy(DEST, waiting)


async def test_a_destination_without_room_refuses_with_the_resource_named(
    pair: Pair, domain_janitor: DomainJanitor
) -> None:
    me = tracked_instance(domain_janitor)
    me.flavor.memory_mb = me.memory_mb = 64 * 1024 * 1024  # 64 TiB
    with pytest.raises(ClaimFailed, match="memory_mb"):
        await pair.client.check_can_live_migrate_destination(DEST, me, block_migration=False)


async def test_a_guest_that_is_not_running_is_refused(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    me = tracked_instance(domain_janitor)
    await client.spawn(SOURCE, me, kernel_image(guest_image))
    await client.power_off(SOURCE, me, timeout=0)
    with pytest.raises(InstanceInvalidState):
        await client.live_migration(SOURCE, me, DEST, new_migration(me))
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) is None
    await client.destroy(SOURCE, me)


async def test_a_destination_refuses_a_source_cpu_it_cannot_run(
    pair: Pair, domain_janitor: DomainJanitor
) -> None:
    me = tracked_instance(domain_janitor)
    source = await pair.client.get_compute_node(SOURCE)
    foreign = json.loads(source.cpu_info)
    # A CPU of the other vendor, with a feature no CPU of this machine's vendor has.
    foreign["vendor"] = "Intel" if foreign.get("vendor") == "AMD" else "AMD"
    foreign["features"] = [*foreign.get("features", []), "avx512-vp2intersect", "sse4a"]
    source.cpu_info = json.dumps(foreign)
    with pytest.raises(MigrationPreCheckError, match="CPU"):
        await pair.client.check_can_live_migrate_destination(
            DEST, me, block_migration=False, src_compute_info=source
        )


async def test_a_destination_that_does_not_answer_fails_the_migration_and_nothing_moves(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    """Last in the module: the destination's agent is stopped (its queue stays, unserved)."""
    client = pair.client
    me = tracked_instance(domain_janitor)
    await client.spawn(SOURCE, me, kernel_image(guest_image))
    await pair.agents.pop(DEST).aclose()  # the fixture closes only the agents left
    migration = new_migration(me)
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        await client.live_migration(SOURCE, me, DEST, migration)
        ended, _ = await until_migration_ends(aiter(stream))
    assert ended.status == "failed"
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) is None
    assert (await client.get_info(SOURCE, me)).state == "running"
    with use_indirection(pair.agents[SOURCE].objects):
        recorded = await Instance.get_by_uuid(None, me.uuid)
    assert recorded.task_state is None
    await client.destroy(SOURCE, me)
