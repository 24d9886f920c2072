"""Many spawns at once against a host that fits ten: the tracker's claims are one actor's
messages, so exactly ten win, every other one is refused with `ClaimFailed` naming memory,
and the node the conductor saved (on SQLite and PostgreSQL) counts exactly the ten."""

from __future__ import annotations

import asyncio

import pytest

from actors.tracker import ClaimFailed
from schemas.objects import ComputeNode, Instance
from tests.actors.instance.fakes import image_meta
from tests.agent.tracker.conftest import FIT, HOST, RESERVED_MB, Deployment, saved_node
from tests.conftest import ON_SESSION_LOOP

pytestmark = [*ON_SESSION_LOOP, pytest.mark.rabbitmq]

SPAWNS = 50


def usage(node: ComputeNode) -> tuple[int, int, int, int | None]:
    return (node.memory_mb_used, node.vcpus_used, node.local_gb_used, node.running_vms)


async def test_fifty_concurrent_spawns_on_a_host_that_fits_ten_start_exactly_ten(
    deployment: Deployment,
) -> None:
    client, flavor = deployment.client, deployment.flavor
    guests = [deployment.guest() for _ in range(SPAWNS)]

    outcomes = await asyncio.gather(
        *(client.spawn(HOST, guest, image_meta()) for guest in guests), return_exceptions=True
    )
    started = [o for o in outcomes if isinstance(o, Instance)]
    refused = [o for o in outcomes if isinstance(o, ClaimFailed)]
    others = [o for o in outcomes if not isinstance(o, (Instance, ClaimFailed))]
    winners = [g for g, o in zip(guests, outcomes, strict=True) if isinstance(o, Instance)]
    try:
        assert others == []
        assert (len(started), len(refused)) == (FIT, SPAWNS - FIT)
        assert {(i.vm_state, i.power_state) for i in started} == {("active", "running")}
        for error in refused:
            assert type(error) is ClaimFailed
            assert (error.resource, error.requested) == ("memory_mb", flavor.memory_mb)
            assert 0 <= error.free < flavor.memory_mb
            assert str(error) == (
                f"claim for instance {error.uuid} failed: memory_mb requested "
                f"{flavor.memory_mb}, only {error.free} free"
            )
        assert {e.uuid for e in refused}.isdisjoint(g.uuid for g in winners)

        full = (RESERVED_MB + FIT * flavor.memory_mb, FIT * flavor.vcpus, FIT * flavor.root_gb, FIT)
        reported = await client.get_compute_node(HOST)
        assert usage(reported) == full
        assert reported.free_ram_mb == reported.memory_mb - reported.memory_mb_used
        assert usage(await saved_node(deployment)) == full
    finally:
        for guest in winners:
            await client.destroy(HOST, guest)

    idle = (RESERVED_MB, 0, 0, 0)
    assert usage(await client.get_compute_node(HOST)) == idle
    saved = await saved_node(deployment)
    assert usage(saved) == idle
    assert saved.free_ram_mb == saved.memory_mb - RESERVED_MB
