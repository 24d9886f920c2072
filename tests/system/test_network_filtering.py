"""Host networking on real QEMU with real traffic: two busybox guests on a Linux bridge with no
uplink (made and removed by this module), an agent with `[firewall] driver = "nwfilter"`
and its object backend holding the security groups. The guests run `ping` and busybox `nc`
when told to on their serial consoles (no control traffic crosses the bridge); what passes
and what is dropped is what the guests see.

The tests run in file order on the same two guests; each leaves the groups as the next
expects (A in WEB, B in OPEN).
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import libvirt
import pytest
import pytest_asyncio

from actors.firewall.errors import InvalidFirewallArgument
from agent.client import ComputeClient
from agent.config import FirewallSection
from agent.service import Agent
from agent.virt.firewall.filters import BASE, PREFIX
from schemas import use_indirection
from schemas.errors import ObjectFieldError
from schemas.objects import (
    Instance,
    NetworkInfo,
    SecurityGroup,
    SecurityGroupRule,
)
from schemas.objects.security_group_errors import InvalidSecurityGroupRule
from schemas.remotable import ObjectIndirectionAPI
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost, qemu_files_dir
from tests.system.guest_console import GuestConsole
from tests.system.guest_image import GuestImage, GuestMarker
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    HOST,
    config_for,
    console_shows,
    embedded_agent,
    kernel_image,
    make_guest_files,
    new_instance,
)
from tests.system.network_helpers import (
    bridge_vifs,
    isolated_bridge,
    nwfilters,
    remove_unused_filters,
    with_address,
)

pytestmark = ON_REAL_QEMU

A_IP, B_IP, FORGED_IP = "10.213.0.2", "10.213.0.3", "10.213.0.9"
A_MAC, B_MAC, FORGED_MAC = "52:54:00:d5:00:02", "52:54:00:d5:00:03", "52:54:00:d5:00:99"
OPEN = "a0000000-0000-4000-8000-000000000001"  # everything in and out
WEB = "a0000000-0000-4000-8000-000000000002"  # everything out, SSH in
PEERS = "a0000000-0000-4000-8000-000000000003"  # a remote group WEB admits on port 80
PING_OK, PING_DROPPED = 0, 1


def rule_id() -> str:
    return str(uuidlib.uuid4())


@dataclass
class Guest:
    instance: Instance
    network_info: NetworkInfo
    console: GuestConsole


@dataclass
class Net:
    agent: Agent
    client: ComputeClient
    host: LocalHost
    bridge: str
    a: Guest
    b: Guest

    async def ping(self, source: Guest, target: str, *, from_ip: str | None = None) -> int:
        via = f" -I {from_ip}" if from_ip else ""
        return await source.console.run(f"ping -c 1 -W 2{via} {target}")

    async def connects(self, source: Guest, target: str, port: int) -> bool:
        return await source.console.run(f"nc -w 2 {target} {port} </dev/null") == 0

    def filters(self) -> list[str]:
        return nwfilters(self.host.uri)

    def domain_id(self, guest: Guest) -> int:
        conn = libvirt.open(self.host.uri)
        try:
            return int(conn.lookupByUUIDString(guest.instance.uuid).ID())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    with isolated_bridge() as name:
        yield name


async def make_groups(objects: ObjectIndirectionAPI) -> None:
    with use_indirection(objects):
        for group_id, name in ((OPEN, "open"), (WEB, "web"), (PEERS, "peers")):
            await SecurityGroup(id=group_id, name=name).create()
        for group_id in (OPEN, WEB):
            await SecurityGroupRule(
                id=rule_id(), parent_group_id=group_id, direction="egress"
            ).create()
        await SecurityGroupRule(id=rule_id(), parent_group_id=OPEN, direction="ingress").create()
        await SecurityGroupRule(
            id=rule_id(), parent_group_id=WEB, protocol="tcp", from_port=22, to_port=22
        ).create()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def net(
    test_hosts: tuple[LocalHost, ...], guest_image: GuestImage, bridge: str
) -> AsyncIterator[Net]:
    host = test_hosts[0]
    janitor = DomainJanitor((host,))
    with qemu_files_dir() as files:
        root = await asyncio.to_thread(make_guest_files, files, guest_image)
        config = dataclasses.replace(
            config_for(host, root), firewall=FirewallSection(driver="nwfilter")
        )
        try:
            async with embedded_agent(config) as (agent, client):
                await make_groups(agent.objects)
                guests = []
                for mac, ip in ((A_MAC, A_IP), (B_MAC, B_IP)):
                    me = new_instance(janitor.track(str(uuidlib.uuid4())))
                    with use_indirection(agent.objects):
                        await (await SecurityGroup.get_by_id(None, OPEN)).add_instance(me.uuid)
                    network_info = bridge_vifs(mac, ip, bridge)
                    image = with_address(kernel_image(guest_image), guest_image, ip)
                    await client.spawn(HOST, me, image, network_info=network_info)
                    log = root / "instances" / me.uuid / "console.log"
                    guests.append((me, network_info, log))
                for me, _network_info, _log in guests:
                    await console_shows(client, me, GuestMarker.BOOTED.value, BOOT_TIMEOUT)
                (a, a_vifs, a_log), (b, b_vifs, b_log) = guests
                async with (
                    GuestConsole(host.uri, a.uuid, a_log) as a_console,
                    GuestConsole(host.uri, b.uuid, b_log) as b_console,
                ):
                    yield Net(
                        agent,
                        client,
                        host,
                        bridge,
                        Guest(a, a_vifs, a_console),
                        Guest(b, b_vifs, b_console),
                    )
                for me, _network_info, _log in guests:
                    await client.destroy(HOST, me)  # again after the last test: no change
        finally:
            await asyncio.to_thread(janitor.clean)
            await asyncio.to_thread(remove_unused_filters, host.uri)


def instance_filters(names: list[str], guest: Guest) -> list[str]:
    return [n for n in names if n.startswith(f"{PREFIX}{guest.instance.uuid}-")]


async def test_guests_reach_each_other_through_the_filters_they_boot_with(net: Net) -> None:
    assert await net.ping(net.a, B_IP) == PING_OK
    assert await net.ping(net.b, A_IP) == PING_OK
    names = await asyncio.to_thread(net.filters)
    assert instance_filters(names, net.a) == [f"{PREFIX}{net.a.instance.uuid}-525400d50002"]
    assert instance_filters(names, net.b) == [f"{PREFIX}{net.b.instance.uuid}-525400d50003"]
    assert f"{PREFIX}secgroup-{OPEN}" in names


async def test_a_group_without_icmp_drops_pings_until_a_rule_and_a_refresh_admit_them(
    net: Net,
) -> None:
    before = await asyncio.to_thread(net.domain_id, net.a)
    with use_indirection(net.agent.objects):
        await (await SecurityGroup.get_by_id(None, OPEN)).remove_instance(net.a.instance.uuid)
        await (await SecurityGroup.get_by_id(None, WEB)).add_instance(net.a.instance.uuid)
    written = await net.client.refresh_instance_security_rules(HOST, net.a.instance)
    assert f"{PREFIX}secgroup-{WEB}" in written
    assert await net.ping(net.b, A_IP) == PING_DROPPED
    assert await net.ping(net.a, B_IP) == PING_OK  # out is allowed, its replies come back

    icmp = SecurityGroupRule(id=rule_id(), parent_group_id=WEB, protocol="icmp")
    with use_indirection(net.agent.objects):
        await icmp.create()
    written = await net.client.refresh_security_group_rules(HOST, WEB)
    assert written == [f"{PREFIX}secgroup-{WEB}"]
    assert await net.ping(net.b, A_IP) == PING_OK
    # The same QEMU all along: the rules changed under the running guest.
    assert await asyncio.to_thread(net.domain_id, net.a) == before
    with use_indirection(net.agent.objects):
        await icmp.destroy()
    await net.client.refresh_security_group_rules(HOST, WEB)
    assert await net.ping(net.b, A_IP) == PING_DROPPED


async def test_a_tcp_rule_admits_its_port_and_no_other(net: Net) -> None:
    assert await net.a.console.run("nc -ll -p 22 -e /bin/true & nc -ll -p 80 -e /bin/true &") == 0
    assert await net.connects(net.b, A_IP, 22)
    assert not await net.connects(net.b, A_IP, 80)


async def test_a_remote_group_rule_follows_the_groups_members(net: Net) -> None:
    web_from_peers = SecurityGroupRule(
        id=rule_id(),
        parent_group_id=WEB,
        protocol="tcp",
        from_port=80,
        to_port=80,
        remote_group_id=PEERS,
    )
    with use_indirection(net.agent.objects):
        await web_from_peers.create()
        peers = await SecurityGroup.get_by_id(None, PEERS)
        await peers.add_instance(net.b.instance.uuid)
    await net.client.refresh_security_group_rules(HOST, WEB)
    assert await net.connects(net.b, A_IP, 80)

    with use_indirection(net.agent.objects):
        await peers.remove_instance(net.b.instance.uuid)
    written = await net.client.refresh_security_group_members(HOST, PEERS)
    assert written == [f"{PREFIX}secgroup-{WEB}"]
    assert not await net.connects(net.b, A_IP, 80)
    assert await net.connects(net.b, A_IP, 22)
    with use_indirection(net.agent.objects):
        await web_from_peers.destroy()


async def test_refreshes_deferred_are_applied_together_when_deferring_ends(net: Net) -> None:
    icmp = SecurityGroupRule(id=rule_id(), parent_group_id=WEB, protocol="icmp")
    http = SecurityGroupRule(
        id=rule_id(), parent_group_id=WEB, protocol="tcp", from_port=80, to_port=80
    )
    await net.client.filter_defer_apply_on(HOST)
    with use_indirection(net.agent.objects):
        await icmp.create()
        await http.create()
    assert await net.client.refresh_security_group_rules(HOST, WEB) == []
    assert await net.client.refresh_security_group_rules(HOST, WEB) == []
    assert await net.ping(net.b, A_IP) == PING_DROPPED  # held back
    written = await net.client.filter_defer_apply_off(HOST)
    assert written == [f"{PREFIX}secgroup-{WEB}"]  # once, for both rules
    assert await net.ping(net.b, A_IP) == PING_OK
    assert await net.connects(net.b, A_IP, 80)
    with use_indirection(net.agent.objects):
        await icmp.destroy()
        await http.destroy()
    await net.client.refresh_security_group_rules(HOST, WEB)


async def test_a_guest_forging_its_source_ip_or_mac_is_dropped(net: Net) -> None:
    a = net.a
    assert await a.console.run(f"ip addr add {FORGED_IP}/24 dev eth0") == 0
    assert await net.ping(a, B_IP, from_ip=FORGED_IP) == PING_DROPPED
    assert await net.ping(a, B_IP, from_ip=A_IP) == PING_OK
    assert await a.console.run(f"ip addr del {FORGED_IP}/24 dev eth0") == 0

    set_mac = "ip link set eth0 down; ip link set eth0 address {}; ip link set eth0 up"
    assert await a.console.run(set_mac.format(FORGED_MAC)) == 0
    try:
        assert await net.ping(a, B_IP) == PING_DROPPED
        # The frames never reached the bridge: it never learnt the forged address.
        fdb = await asyncio.to_thread(
            subprocess.run,
            ["bridge", "fdb", "show", "br", net.bridge],
            capture_output=True,
            text=True,
            check=True,
        )
        assert FORGED_MAC not in fdb.stdout
    finally:
        assert await a.console.run(set_mac.format(A_MAC)) == 0
    assert await net.ping(a, B_IP) == PING_OK


async def test_bad_rules_and_arguments_are_refused_before_any_filter_changes(net: Net) -> None:
    conn_filters = await asyncio.to_thread(net.filters)
    with use_indirection(net.agent.objects):
        with pytest.raises(InvalidSecurityGroupRule, match="upside down"):
            await SecurityGroupRule(
                id=rule_id(), parent_group_id=WEB, protocol="tcp", from_port=443, to_port=80
            ).create()
        with pytest.raises(InvalidSecurityGroupRule, match="unknown protocol"):
            await SecurityGroupRule(id=rule_id(), parent_group_id=WEB, protocol="sctp").create()
        with pytest.raises(ObjectFieldError, match="remote_ip_prefix"):
            SecurityGroupRule(id=rule_id(), parent_group_id=WEB, remote_ip_prefix="10.0.0.1/8")
    with pytest.raises(InvalidFirewallArgument, match="not a UUID"):
        await net.client.refresh_security_group_rules(HOST, "web")
    assert await asyncio.to_thread(net.filters) == conn_filters
    assert await net.ping(net.b, A_IP) == PING_DROPPED  # WEB as it was: no ICMP


async def test_unplugged_taps_carry_nothing_until_plugged_again(net: Net) -> None:
    unplugged = await net.client.unplug_vifs(HOST, net.a.instance, net.a.network_info)
    assert len(unplugged) == 1 and unplugged[0].endswith(f"-/- {net.bridge}")
    assert await net.client.unplug_vifs(HOST, net.a.instance, net.a.network_info) == []
    assert await net.ping(net.a, B_IP) == PING_DROPPED
    plugged = await net.client.plug_vifs(HOST, net.a.instance, net.a.network_info)
    assert len(plugged) == 1 and plugged[0].endswith(f"-> {net.bridge}")
    assert await net.client.plug_vifs(HOST, net.a.instance, net.a.network_info) == []
    assert await net.ping(net.a, B_IP) == PING_OK


async def test_dhcp_options_come_from_the_recorded_network_info(net: Net) -> None:
    assert await net.client.dhcp_options_for_instance(HOST, net.a.instance) == [
        {"opt_name": "router", "opt_value": "10.213.0.1"},
        {"opt_name": "dns-server", "opt_value": "10.213.0.53"},
    ]


async def test_unfilter_instance_lets_everything_through_and_leaves_none_of_its_filters(
    net: Net,
) -> None:
    removed = await net.client.unfilter_instance(HOST, net.a.instance, net.a.network_info)
    assert f"{PREFIX}{net.a.instance.uuid}-525400d50002" in removed
    assert f"{PREFIX}secgroup-{WEB}" in removed  # no other instance here used it
    names = await asyncio.to_thread(net.filters)
    assert instance_filters(names, net.a) == [] and f"{PREFIX}secgroup-{WEB}" not in names
    assert await net.ping(net.b, A_IP) == PING_OK
    assert await net.connects(net.b, A_IP, 80)
    # And back: ensure_filtering_rules_for_instance puts them in place again.
    written = await net.client.ensure_filtering_rules_for_instance(
        HOST, net.a.instance, net.a.network_info
    )
    assert f"{PREFIX}{net.a.instance.uuid}-525400d50002" in written
    assert await net.ping(net.b, A_IP) == PING_DROPPED


async def test_destroying_the_instances_removes_every_filter_they_used(net: Net) -> None:
    for guest in (net.a, net.b):
        await net.client.destroy(HOST, guest.instance)
    names = await asyncio.to_thread(net.filters)
    ours = {f"{PREFIX}secgroup-{group}" for group in (OPEN, WEB, PEERS)}
    assert ours.isdisjoint(names)
    assert instance_filters(names, net.a) == [] and instance_filters(names, net.b) == []
    assert BASE in names  # the shared base filters stay for the next instance
