"""The Firewall against a real libvirtd (test host1): an instance's filters defined and read
back as built, unchanged ones not written again, a changed group rewritten alone, removed
filters gone, libvirt's refusal translated. nwfilters need no guest; every test removes the
filters it defined."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors import BlockingExecutor
from agent.errors import HypervisorError
from agent.virt.events import DomainEvent
from agent.virt.firewall import (
    Firewall,
    InvalidFilterName,
    NWFilter,
    canonical_filter,
    instance_filters,
    secgroup_filter_name,
)
from agent.virt.host import Host
from schemas.objects import (
    VIF,
    Network,
    ProviderFirewallRule,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from tests.system.conftest import ON_REAL_QEMU, LocalHost

pytestmark = ON_REAL_QEMU


class QuietListener:
    """A HostListener for a Host used only for filters: no guest, no events expected."""

    def domain_event(self, event: DomainEvent) -> None:
        pass

    def connection_lost(self, reason: str) -> None:
        pass

    def connection_restored(self) -> None:
        pass


@pytest_asyncio.fixture(loop_scope="session")
async def host(
    test_hosts: tuple[LocalHost, ...], executor: BlockingExecutor, tmp_path: Path
) -> AsyncIterator[Host]:
    """A connected Host on host1."""
    connected = Host(test_hosts[0].uri, executor, instances_path=str(tmp_path))
    await connected.start(QuietListener())
    async with asyncio.timeout(30):
        await connected.wait_connected()
    yield connected
    await connected.aclose()


@pytest.fixture
def defined_here(test_hosts: tuple[LocalHost, ...]) -> Iterator[list[str]]:
    """Names a test defines (append them); removed from host1 afterwards, last first."""
    names: list[str] = []
    yield names
    conn = libvirt.open(test_hosts[0].uri)
    try:
        present = {flt.name(): flt for flt in conn.listAllNWFilters(0)}
        for name in reversed(names):
            if name in present:
                present[name].undefine()
    finally:
        conn.close()


def lookup_xml(uri: str, name: str) -> tuple[str, str]:
    """(uuid, XML) of filter `name` as libvirt keeps it, read on a connection of its own."""
    conn = libvirt.open(uri)
    try:
        flt = conn.nwfilterLookupByName(name)
        return flt.UUIDString(), flt.XMLDesc(0)
    finally:
        conn.close()


def the_instance() -> tuple[str, list[VIF], list[SecurityGroup], list[ProviderFirewallRule]]:
    """A fresh instance (its own uuid and group ids) with two VIFs, two groups, one of them
    allowing the other's members, and one provider rule."""
    instance = str(uuidlib.uuid4())
    web, db = sorted(str(uuidlib.uuid4()) for _ in range(2))
    rule_ids = sorted(str(uuidlib.uuid4()) for _ in range(4))
    vifs = [
        VIF(
            id=str(uuidlib.uuid4()),
            address=f"fa:16:3e:00:00:0{n}",
            type="bridge",
            network=Network(
                id=str(uuidlib.uuid4()),
                label="private",
                subnets=[
                    Subnet(cidr="10.0.0.0/24", dhcp_server="10.0.0.2", ips=[f"10.0.0.{n}"]),
                    Subnet(cidr="2001:db8::/64", ips=[f"2001:db8::{n}"]),
                ],
            ),
        )
        for n in (5, 6)
    ]
    groups = [
        SecurityGroup(
            id=web,
            name="web",
            rules=[
                SecurityGroupRule(
                    id=rule_ids[0],
                    parent_group_id=web,
                    protocol="tcp",
                    from_port=22,
                    to_port=22,
                    remote_ip_prefix="198.51.100.0/24",
                ),
                SecurityGroupRule(
                    id=rule_ids[1], parent_group_id=web, protocol="icmp", from_port=8, to_port=0
                ),
                SecurityGroupRule(
                    id=rule_ids[2],
                    parent_group_id=web,
                    protocol="tcp",
                    ethertype="IPv6",
                    from_port=443,
                    to_port=443,
                    remote_group_id=db,
                ),
            ],
        ),
        SecurityGroup(
            id=db,
            name="db",
            rules=[
                SecurityGroupRule(
                    id=rule_ids[3], parent_group_id=db, direction="egress", ethertype="IPv6"
                )
            ],
        ),
    ]
    provider = [
        ProviderFirewallRule(
            id=str(uuidlib.uuid4()),
            protocol="tcp",
            from_port=25,
            to_port=25,
            cidr="203.0.113.0/24",
        )
    ]
    return instance, vifs, groups, provider


def build(
    instance: str,
    vifs: list[VIF],
    groups: list[SecurityGroup],
    provider: list[ProviderFirewallRule],
) -> list[NWFilter]:
    members = {groups[1].id: [ipaddress.ip_address("2001:db8::9")]}
    return instance_filters(instance, vifs, groups, provider, members)


async def test_an_instances_filters_are_defined_and_read_back_as_built(
    host: Host, test_hosts: tuple[LocalHost, ...], defined_here: list[str]
) -> None:
    filters = build(*the_instance())
    defined_here.extend(f.name for f in filters)
    firewall = Firewall(host)
    # The shared base and provider filters may be there already, from an agent's earlier
    # use of this host: they are written only if they differ.
    before = set(await firewall.defined())

    written = await firewall.define(filters)

    assert [n for n in written if n not in before] == [
        f.name for f in filters if f.name not in before
    ]
    assert {f.name for f in filters} - before <= set(written)
    assert set(written) <= set(await firewall.defined())
    for flt in filters:
        _uuid, xml = await asyncio.to_thread(lookup_xml, test_hosts[0].uri, flt.name)
        assert canonical_filter(xml) == canonical_filter(flt.xml), flt.name
    _uuid, interface = await asyncio.to_thread(lookup_xml, test_hosts[0].uri, filters[-1].name)
    assert "<parameter name='MAC' value='fa:16:3e:00:00:06'/>" in interface
    assert "<parameter name='DHCPSERVER' value='10.0.0.2'/>" in interface


async def test_unchanged_filters_are_not_written_again_and_a_changed_group_alone_is(
    host: Host, test_hosts: tuple[LocalHost, ...], defined_here: list[str]
) -> None:
    instance, vifs, groups, provider = the_instance()
    filters = build(instance, vifs, groups, provider)
    defined_here.extend(f.name for f in filters)
    firewall = Firewall(host)
    await firewall.define(filters)
    web = secgroup_filter_name(groups[0].id)
    uuid_before, _xml = await asyncio.to_thread(lookup_xml, test_hosts[0].uri, web)

    assert await firewall.define(build(instance, vifs, groups, provider)) == []

    groups[0].rules = groups[0].rules[:1]  # the ICMP and remote-group rules dropped
    assert await firewall.define(build(instance, vifs, groups, provider)) == [web]
    uuid_after, xml = await asyncio.to_thread(lookup_xml, test_hosts[0].uri, web)
    assert uuid_after == uuid_before
    assert xml.count("<rule ") == 1
    assert "dstportstart='22'" in xml
    assert await firewall.define(build(instance, vifs, groups, provider)) == []


async def test_undefined_filters_are_gone_and_undefining_again_removes_nothing(
    host: Host, test_hosts: tuple[LocalHost, ...], defined_here: list[str]
) -> None:
    instance, vifs, groups, provider = the_instance()
    filters = build(instance, vifs, groups, provider)
    defined_here.extend(f.name for f in filters)
    firewall = Firewall(host)
    await firewall.define(filters)
    ours = [f.name for f in filters[-4:]]  # the two groups' and the two interfaces'
    assert all("-secgroup-" in name or instance in name for name in ours)

    removed = await firewall.undefine(ours[::-1])

    assert removed == ours[::-1]
    assert not set(ours) & set(await firewall.defined())
    for name in ours:
        with pytest.raises(libvirt.libvirtError) as caught:
            await asyncio.to_thread(lookup_xml, test_hosts[0].uri, name)
        assert caught.value.get_error_code() == libvirt.VIR_ERR_NO_NWFILTER
    assert await firewall.undefine(ours) == []


async def test_a_filter_libvirt_refuses_is_a_hypervisor_error_and_stays_undefined(
    host: Host, defined_here: list[str]
) -> None:
    bad = NWFilter(
        "virtactor-refused",
        "<filter name='virtactor-refused' chain='root'>"
        "<rule action='bounce' direction='in' priority='500'><all/></rule></filter>",
    )
    defined_here.append(bad.name)
    firewall = Firewall(host)
    with pytest.raises(HypervisorError):
        await firewall.define([bad])
    assert "virtactor-refused" not in await firewall.defined()
    with pytest.raises(InvalidFilterName):
        await firewall.undefine(["clean-traffic"])
