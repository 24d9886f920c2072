"""Post-copy recovery: the migration stream breaks after the switch to post-copy, when the
guest already runs on the destination and only the source has the rest of its memory. The
source agent sees the broken job, waits for the path, resumes it (libvirt's post-copy
resume) and the migration completes; the guest lost nothing and keeps counting.

The path is cut with an iptables rule that answers every packet to the destination's
migration ports with a TCP reset, and the stream's sockets are destroyed on both ends
(`ss -K`), as both would see it fail once TCP gives up; the path comes back before the
source's first attempt to resume (attempts refused meanwhile are the workflow unit tests').
A stream only one end sees break cannot be recovered here: the destination's libvirtd 9.0
holds the domain's job in its Finish phase, so it cannot be told to pause its side.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import libvirt
import pytest
import pytest_asyncio

from schemas.objects import Migration, MigrationPolicy, MigrationProgress
from schemas.objects.enums import MigrationPhase
from tests.system.conftest import (
    ON_REAL_QEMU,
    DomainJanitor,
    LocalHost,
    wait_for_console_async,
)
from tests.system.guest_image import HEARTBEAT_RE, GuestImage
from tests.system.test_live_migration import (
    DEST,
    MIGRATION_TIMEOUT,
    SOURCE,
    Pair,
    beat,
    deployed_with_guest_files,
    domain_state,
    new_migration,
    spawn_dirtying,
)

pytestmark = [pytest.mark.rabbitmq, *ON_REAL_QEMU]


def migration_ports(host: LocalHost) -> range:
    """The ports libvirt-host.sh gives host<N>'s incoming migrations."""
    index = int(host.name.removeprefix("host"))
    first = 49400 + 20 * (index - 1)
    return range(first, first + 20)


def iptables(action: str, ports: range) -> None:
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", f"{ports[0]}:{ports[-1]}"]
    rule += ["-j", "REJECT", "--reject-with", "tcp-reset"]
    rule += ["-m", "comment", "--comment", "virtactor-test-cut-migration"]
    subprocess.run(["iptables", action, *rule], check=True, capture_output=True, timeout=30)


def kill_streams(ports: range) -> None:
    both_ends = (
        f"( sport >= :{ports[0]} and sport <= :{ports[-1]} ) or "
        f"( dport >= :{ports[0]} and dport <= :{ports[-1]} )"
    )
    command = ["ss", "-K", "-t", "state", "established", both_ends]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@contextmanager
def path_cut(ports: range) -> Iterator[None]:
    """The streams to `ports` broken, and every new packet answered by a reset, inside."""
    iptables("-I", ports)
    try:
        kill_streams(ports)
        yield
    finally:
        iptables("-D", ports)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def pair(
    rabbitmq_url: str,
    test_hosts: tuple[LocalHost, ...],
    guest_image: GuestImage,
) -> AsyncIterator[Pair]:
    async for deployment in deployed_with_guest_files(rabbitmq_url, test_hosts, guest_image):
        yield deployment


async def next_event(events: AsyncIterator[object], wanted: str) -> tuple[object, list[object]]:
    """The next progress in phase `wanted` (or the migration's end); what came before."""
    seen: list[object] = []
    async for event in events:
        payload = getattr(event, "payload", None)
        seen.append(payload)
        if isinstance(payload, MigrationProgress) and payload.phase == wanted:
            return payload, seen
        if isinstance(payload, Migration) and payload.status in ("completed", "failed", "error"):
            return payload, seen
    raise AssertionError("the event stream ended")


async def test_a_post_copy_migration_whose_stream_breaks_is_resumed_and_completes(
    pair: Pair, domain_janitor: DomainJanitor, guest_image: GuestImage
) -> None:
    client = pair.client
    ports = migration_ports(pair.hosts[DEST])
    guest = await spawn_dirtying(pair, domain_janitor, guest_image)
    me, console, before = guest.instance, guest.console, guest.started
    migration = new_migration(me)
    # Never converges (1 ms of downtime, 2 MiB/s against a guest dirtying 32 MiB), and at
    # 2 MiB/s post-copy takes long enough to break it on the way.
    policy = MigrationPolicy(
        bandwidth_mibps=2,
        max_downtime_ms=1,
        progress_timeout=0,
        completion_timeout_per_gib=0,
        post_copy=True,
    )
    async with asyncio.timeout(MIGRATION_TIMEOUT * 2):
        async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
            events = aiter(stream)
            await client.live_migration(SOURCE, me, DEST, migration, policy=policy)
            await next_event(events, MigrationPhase.PRE_COPY)
            assert await client.live_migration_force_complete(SOURCE, me) is True
            switched, _ = await next_event(events, MigrationPhase.POST_COPY)
            assert isinstance(switched, MigrationProgress), switched
            with path_cut(ports):  # the stream breaks
                paused, _ = await next_event(events, MigrationPhase.POST_COPY_PAUSED)
                assert isinstance(paused, MigrationProgress), paused
                # The guest waits there, paused or faulting on pages it cannot get.
                assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) in (
                    libvirt.VIR_DOMAIN_RUNNING,
                    libvirt.VIR_DOMAIN_PAUSED,
                )
            # The path is back before the source's next attempt: that attempt resumes it.
            ended, seen = await next_event(events, "(the end)")
    assert isinstance(ended, Migration) and ended.status == "completed", seen
    phases = [p.phase for p in seen if isinstance(p, MigrationProgress)]
    assert phases[-1] in (MigrationPhase.POST_COPY_RECOVERING, MigrationPhase.POST_COPY)
    assert await asyncio.to_thread(domain_state, pair.hosts[DEST].uri, me.uuid) == (
        libvirt.VIR_DOMAIN_RUNNING
    )
    assert await asyncio.to_thread(domain_state, pair.hosts[SOURCE].uri, me.uuid) is None
    after = await wait_for_console_async(console, HEARTBEAT_RE, 60, start=console.stat().st_size)
    assert beat(after.text) > 0 and after.end > before.end
    await client.destroy(DEST, me)
