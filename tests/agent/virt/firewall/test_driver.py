"""`NWFilterDriver` over a fake `Firewall`: which filters it writes, which it removes (the
instance's, then the group filters nothing uses any more), and who uses which group, read
back from the interface filters."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from agent.virt.firewall.driver import NWFilterDriver
from agent.virt.firewall.filters import NWFilter, instance_filters
from schemas.objects import VIF, NetworkInfo, SecurityGroup, SecurityGroupRule
from schemas.objects.network import Network, Subnet

A = "6f6a3f5e-0000-4000-8000-0000000000aa"
B = "6f6a3f5e-0000-4000-8000-0000000000bb"
WEB = "10000000-0000-4000-8000-000000000001"
DB = "20000000-0000-4000-8000-000000000002"


class FakeFirewall:
    def __init__(self) -> None:
        self.filters: dict[str, str] = {}

    async def define(self, filters: Sequence[NWFilter]) -> list[str]:
        written = [f.name for f in filters if self.filters.get(f.name) != f.xml]
        self.filters.update({f.name: f.xml for f in filters})
        return written

    async def undefine(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.filters.pop(name, None) is not None]

    async def defined(self) -> list[str]:
        return sorted(self.filters)

    async def documents(self) -> dict[str, str]:
        return dict(self.filters)


def driver() -> tuple[NWFilterDriver, FakeFirewall]:
    made = NWFilterDriver.__new__(NWFilterDriver)
    fake = FakeFirewall()
    made.firewall = fake  # type: ignore[assignment]
    return made, fake


def vifs(mac: str, ip: str) -> NetworkInfo:
    subnet = Subnet(cidr=ipaddress.ip_network("10.0.0.0/24"), ips=[ipaddress.ip_address(ip)])
    network = Network(id=WEB, label="n", bridge="br0", subnets=[subnet])
    return NetworkInfo(objects=[VIF(id=WEB, address=mac, type="bridge", network=network)])


def group(group_id: str) -> SecurityGroup:
    ssh = SecurityGroupRule(
        id=group_id[:-1] + "9", parent_group_id=group_id, protocol="tcp", from_port=22, to_port=22
    )
    return SecurityGroup(id=group_id, name=group_id[:4], rules=[ssh])


async def test_an_instance_gets_its_filters_and_unchanged_ones_are_not_written_again() -> None:
    made, _fake = driver()
    first = await made.define_instance(
        A, vifs("52:54:00:00:00:0a", "10.0.0.2"), [group(WEB)], [], {}
    )
    assert first == [
        f.name
        for f in instance_filters(A, vifs("52:54:00:00:00:0a", "10.0.0.2"), [group(WEB)], [], {})
    ]
    again = await made.define_instance(
        A, vifs("52:54:00:00:00:0a", "10.0.0.2"), [group(WEB)], [], {}
    )
    assert again == []
    assert await made.groups_in_use() == {WEB: {A}}
    assert await made.provider_in_use()


async def test_removing_an_instance_removes_its_filters_and_the_groups_only_it_used() -> None:
    made, fake = driver()
    await made.define_instance(
        A, vifs("52:54:00:00:00:0a", "10.0.0.2"), [group(WEB), group(DB)], [], {}
    )
    await made.define_instance(B, vifs("52:54:00:00:00:0b", "10.0.0.3"), [group(DB)], [], {})
    assert await made.groups_in_use() == {WEB: {A}, DB: {A, B}}
    removed = await made.remove_instance(A, None)
    assert removed == [f"virtactor-{A}-52540000000a", f"virtactor-secgroup-{WEB}"]
    assert await made.groups_in_use() == {DB: {B}}
    assert f"virtactor-secgroup-{DB}" in fake.filters


async def test_removing_one_interface_keeps_the_others() -> None:
    made, _fake = driver()
    both = NetworkInfo(
        objects=[*vifs("52:54:00:00:00:0a", "10.0.0.2"), *vifs("52:54:00:00:00:0c", "10.0.0.4")]
    )
    await made.define_instance(A, both, [group(WEB)], [], {})
    removed = await made.remove_instance(A, ["52:54:00:00:00:0C"])
    assert removed == [f"virtactor-{A}-52540000000c"]
    assert await made.groups_in_use() == {WEB: {A}}
