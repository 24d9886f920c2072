"""An integrator's test, as docs/testing-with-virtactor.md shows it: only the virtactor pytest
plugin's fixtures, a guest spawned through the client, read, destroyed, its events watched.

Runs on the embedded default here; the same file runs against a real RabbitMQ and libvirt
with `--virtactor-rabbitmq URL --virtactor-libvirt URI` (tests/plugin/test_outside_project.py).
"""

from __future__ import annotations

import asyncio

from agent.client import ComputeClient, EventStream
from agent.conductor.indirection import BusIndirection
from agent.testing.guests import NewInstances
from schemas import use_indirection
from schemas.objects import ImageMeta, Instance, RequestContext

EVENT_WAIT = 30  # seconds; a real QEMU guest takes a moment to start


async def transitions_until(events: EventStream, last: str) -> list[str]:
    """The lifecycle transitions published, in order, up to and including `last`."""
    seen: list[str] = []
    async with asyncio.timeout(EVENT_WAIT):
        async for event in events:
            seen.append(event.payload.transition)
            if seen[-1] == last:
                return seen
    raise AssertionError(f"the event stream ended after {seen}")


async def test_a_spawned_guest_runs_reports_its_info_and_is_gone_once_destroyed(
    virtactor_client: ComputeClient,
    virtactor_host: str,
    virtactor_image: ImageMeta,
    virtactor_new_instance: NewInstances,
) -> None:
    guest = virtactor_new_instance()
    async with await virtactor_client.subscribe(f"instance.{guest.uuid}.lifecycle") as events:
        spawned = await virtactor_client.spawn(virtactor_host, guest, virtactor_image)
        assert (spawned.vm_state, spawned.power_state) == ("active", "running")

        info = await virtactor_client.get_info(virtactor_host, guest)
        assert (info.state, info.num_cpu, info.max_mem_kb) == ("running", 1, 64 * 1024)
        assert guest.uuid in await virtactor_client.list_instance_uuids(virtactor_host)
        # QEMU reports its start as "resumed" then "started"; the test driver, "started".
        assert await transitions_until(events, "started") in (["started"], ["resumed", "started"])

        destroyed = await virtactor_client.destroy(virtactor_host, guest)
        assert destroyed.vm_state == "deleted"
        # Published `[agent] reboot_flap_delay` (2 s) after the domain stopped: a reboot's
        # stop and start within it are no lifecycle change.
        assert await transitions_until(events, "stopped") == ["stopped"]
    assert await virtactor_client.instance_exists(virtactor_host, guest.uuid) is False


async def test_the_conductor_keeps_the_record_the_agent_saved(
    virtactor_client: ComputeClient,
    virtactor_host: str,
    virtactor_image: ImageMeta,
    virtactor_new_instance: NewInstances,
    virtactor_objects: BusIndirection,
) -> None:
    guest = virtactor_new_instance()
    await virtactor_client.spawn(virtactor_host, guest, virtactor_image)

    with use_indirection(virtactor_objects):
        record = await Instance.get_by_uuid(RequestContext(request_id="req-example"), guest.uuid)
    assert (record.vm_state, record.power_state, record.host) == (
        "active",
        "running",
        virtactor_host,
    )


async def test_the_host_reports_its_node(
    virtactor_client: ComputeClient, virtactor_host: str
) -> None:
    nodes = await virtactor_client.get_available_nodes(virtactor_host)
    node = await virtactor_client.get_available_resource(virtactor_host, nodes[0])
    assert node.hypervisor_hostname == nodes[0]
    assert node.vcpus > 0 and node.memory_mb > 0
