"""A filtered guest's live migration between two real hosts (both agents with
`[firewall] driver = "nwfilter"`, over the real RabbitMQ), as far as two libvirt daemons on
one kernel allow: the destination defines the guest's filters in `pre_live_migration`,
before the guest could arrive (its interfaces name them), and removes them when the
migration is rolled back; the source's filters keep acting on real traffic meanwhile.

The migration itself cannot run here with an interface: the destination's QEMU would create
a tap of the same name as the source's in the one network namespace both daemons share
("The tap... interface already exists"). On separate machines the names never meet.
Guest A (in group PING: ICMP in, everything out) runs on the source, guest B (in OPEN) on the
destination, both on one bridge with no uplink.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from schemas import use_indirection
from schemas.objects import Instance, Migration, NetworkInfo, SecurityGroup, SecurityGroupRule
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost, wait_for_console_async
from tests.system.guest_console import GuestConsole
from tests.system.guest_image import GuestImage, GuestMarker
from tests.system.instance_helpers import BOOT_TIMEOUT, kernel_image, tracked_instance
from tests.system.network_helpers import (
    bridge_vifs,
    isolated_bridge,
    nwfilters,
    remove_unused_filters,
    with_address,
)
from tests.system.test_live_migration import DEST, SOURCE, Pair, deployed_with_guest_files

pytestmark = [pytest.mark.rabbitmq, *ON_REAL_QEMU]

A_IP, B_IP = "10.213.0.12", "10.213.0.13"
A_MAC, B_MAC = "52:54:00:d5:00:12", "52:54:00:d5:00:13"
OPEN = "b0000000-0000-4000-8000-000000000001"
PING = "b0000000-0000-4000-8000-000000000002"
PING_ICMP = "b0000000-0000-4000-8000-0000000000a1"


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    with isolated_bridge() as name:
        yield name


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def pair(
    rabbitmq_url: str, test_hosts: tuple[LocalHost, ...], guest_image: GuestImage
) -> AsyncIterator[Pair]:
    try:
        async for deployment in deployed_with_guest_files(
            rabbitmq_url, test_hosts, guest_image, firewall="nwfilter"
        ):
            yield deployment
    finally:
        for host in test_hosts[:2]:
            await asyncio.to_thread(remove_unused_filters, host.uri)


async def spawned(
    pair: Pair, host: str, me: Instance, vifs: NetworkInfo, ip: str, guest_image: GuestImage
) -> Path:
    image = with_address(kernel_image(guest_image), guest_image, ip)
    await pair.client.spawn(host, me, image, network_info=vifs)
    return pair.root / "instances" / me.uuid / "console.log"


async def test_the_destination_filters_an_incoming_guest_first_and_a_rollback_removes_them(
    pair: Pair, bridge: str, guest_image: GuestImage, domain_janitor: DomainJanitor
) -> None:
    objects = pair.agents[SOURCE].objects
    with use_indirection(objects):
        for group_id, name in ((OPEN, "open"), (PING, "ping")):
            await SecurityGroup(id=group_id, name=name).create()
        for group_id, direction in ((OPEN, "ingress"), (OPEN, "egress"), (PING, "egress")):
            await SecurityGroupRule(
                id=str(uuid.uuid4()), parent_group_id=group_id, direction=direction
            ).create()
        await SecurityGroupRule(id=PING_ICMP, parent_group_id=PING, protocol="icmp").create()
    a, b = tracked_instance(domain_janitor), tracked_instance(domain_janitor)
    with use_indirection(objects):
        await (await SecurityGroup.get_by_id(None, PING)).add_instance(a.uuid)
        await (await SecurityGroup.get_by_id(None, OPEN)).add_instance(b.uuid)
    a_vifs, b_vifs = bridge_vifs(A_MAC, A_IP, bridge), bridge_vifs(B_MAC, B_IP, bridge)
    a_log = await spawned(pair, SOURCE, a, a_vifs, A_IP, guest_image)
    b_log = await spawned(pair, DEST, b, b_vifs, B_IP, guest_image)
    for log in (a_log, b_log):
        await wait_for_console_async(log, GuestMarker.BOOTED, BOOT_TIMEOUT)
    a_filter = f"virtactor-{a.uuid}-525400d50012"
    source_uri, dest_uri = pair.hosts[SOURCE].uri, pair.hosts[DEST].uri

    async with GuestConsole(dest_uri, b.uuid, b_log) as b_console:
        ping_a = f"ping -c 1 -W 2 {A_IP}"
        assert await b_console.run(ping_a) == 0
        assert a_filter in await asyncio.to_thread(nwfilters, source_uri)
        assert a_filter not in await asyncio.to_thread(nwfilters, dest_uri)

        checked = await pair.client.check_can_live_migrate_destination(DEST, a)
        await pair.client.check_can_live_migrate_destination_cleanup(DEST, a, checked)
        checked.migration = Migration(
            uuid=str(uuid.uuid4()),
            instance_uuid=a.uuid,
            migration_type="live-migration",
            status="preparing",
            source_compute=SOURCE,
            dest_compute=DEST,
        )
        checked.is_shared_instance_path = True
        prepared = await pair.client.pre_live_migration(DEST, a, checked, network_info=a_vifs)
        on_dest = await asyncio.to_thread(nwfilters, dest_uri)
        assert a_filter in on_dest and f"virtactor-secgroup-{PING}" in on_dest
        assert await b_console.run(ping_a) == 0  # the source's filters act as before

        await pair.client.rollback_live_migration_at_destination(
            DEST, a, a_vifs, destroy_disks=False, migrate_data=prepared
        )
        on_dest = await asyncio.to_thread(nwfilters, dest_uri)
        assert a_filter not in on_dest and f"virtactor-secgroup-{PING}" not in on_dest
        assert a_filter in await asyncio.to_thread(nwfilters, source_uri)

        # The source's firewall actor keeps A's filters: a refresh there acts on it.
        with use_indirection(objects):
            await SecurityGroupRule(id=PING_ICMP, parent_group_id=PING).destroy()
        written = await pair.client.refresh_security_group_rules(SOURCE, PING)
        assert written == [f"virtactor-secgroup-{PING}"]
        assert await b_console.run(ping_a) == 1

    await pair.client.destroy(SOURCE, a)
    await pair.client.destroy(DEST, b)
    for uri, me in ((source_uri, a), (dest_uri, b)):
        left = await asyncio.to_thread(nwfilters, uri)
        assert not [name for name in left if me.uuid in name]
