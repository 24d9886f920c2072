"""The audit finds a guest removed behind the agent's back on test:///default: it gives the
guest's share back, saves the node and publishes the changed fields on
`host.<host>.resources`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from agent.event_stream import EventStream
from agent.rpc.envelope import Event
from schemas.objects import ComputeNode, Instance
from tests.actors.instance.fakes import image_meta
from tests.agent.embedded import remove_test_domain
from tests.agent.tracker.conftest import HOST, RESERVED_MB, Deployment, remove_domains, saved_node
from tests.conftest import ON_SESSION_LOOP

pytestmark = [*ON_SESSION_LOOP, pytest.mark.rabbitmq]

TOPIC = f"host.{HOST}.resources"
# What one guest fewer changes in the node the tracker reports.
USAGE_FIELDS = {
    "memory_mb_used",
    "vcpus_used",
    "local_gb_used",
    "free_ram_mb",
    "free_disk_gb",
    "running_vms",
}


def usage(node: ComputeNode) -> tuple[int, int, int | None]:
    return (node.memory_mb_used, node.vcpus_used, node.running_vms)


def values(node: ComputeNode) -> dict[str, object]:
    return {name: getattr(node, name) for name in node.obj_fields() if node.obj_attr_is_set(name)}


@asynccontextmanager
async def two_guests(deployment: Deployment) -> AsyncIterator[list[Instance]]:
    """Two guests spawned through the agent; on exit each is destroyed (a guest whose domain
    is gone already included) and its domain is gone from test:///default."""
    guests = [deployment.guest(), deployment.guest()]
    try:
        for guest in guests:
            await deployment.client.spawn(HOST, guest, image_meta())
        yield guests
    finally:
        for guest in guests:
            await deployment.client.destroy(HOST, guest)
        await remove_domains([g.uuid for g in guests])
    assert usage(await deployment.client.get_compute_node(HOST)) == (RESERVED_MB, 0, 0)


async def next_event(stream: EventStream, timeout: float = 10.0) -> Event:
    async with asyncio.timeout(timeout):
        return await anext(aiter(stream))


async def test_the_audit_releases_a_guest_removed_behind_the_agents_back_and_says_so(
    deployment: Deployment,
) -> None:
    client, flavor = deployment.client, deployment.flavor
    one = (RESERVED_MB + flavor.memory_mb, flavor.vcpus, 1)
    async with two_guests(deployment) as (kept, removed):
        both = await client.update_available_resource(HOST)  # it sees both guests' domains
        assert usage(both) == (RESERVED_MB + 2 * flavor.memory_mb, 2 * flavor.vcpus, 2)
        assert both.current_workload == 0

        left = await asyncio.to_thread(remove_test_domain, removed.uuid)
        assert kept.uuid in left
        async with await client.subscribe(TOPIC) as stream:
            audited = await client.update_available_resource(HOST)
            event = await next_event(stream)

        assert usage(audited) == one
        assert audited.free_ram_mb == audited.memory_mb - one[0]
        assert usage(await client.get_compute_node(HOST)) == one
        assert usage(await saved_node(deployment)) == one
        assert (event.topic, event.sender_host) == (TOPIC, HOST)
        published = event.payload
        assert isinstance(published, ComputeNode)
        assert published.obj_what_changed() == USAGE_FIELDS
        assert {name: getattr(published, name) for name in USAGE_FIELDS} == {
            name: getattr(audited, name) for name in USAGE_FIELDS
        }
        assert published.uuid == deployment.node.uuid

        # Nothing changed since: the next audit saves and publishes nothing.
        async with await client.subscribe(TOPIC) as quiet:
            assert values(await client.update_available_resource(HOST)) == values(audited)
            with pytest.raises(TimeoutError):
                await next_event(quiet, timeout=0.5)


async def test_the_audit_releases_a_guest_removed_before_any_audit_saw_it(
    deployment: Deployment,
) -> None:
    """A spawn that finished is no spawn "still building": its claim must not outlive its
    domain because no periodic audit happened to run in between."""
    client, flavor = deployment.client, deployment.flavor
    async with two_guests(deployment) as (kept, removed):
        left = await asyncio.to_thread(remove_test_domain, removed.uuid)
        assert kept.uuid in left

        audited = await client.update_available_resource(HOST)

        assert usage(audited) == (RESERVED_MB + flavor.memory_mb, flavor.vcpus, 1)
        assert audited.current_workload == 0
