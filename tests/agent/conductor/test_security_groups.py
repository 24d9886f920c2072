"""Security groups, their rules, memberships and provider rules through a conductor, on each
transport and database: stored, looked up by group and by instance, bad rules refused as
their own class before anything is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.conductor.service import Conductor
from agent.transport import Transport
from schemas import ObjectNotFound, ObjectStore, use_indirection
from schemas.objects import (
    ProviderFirewallRule,
    RequestContext,
    SecurityGroup,
    SecurityGroupRule,
)
from schemas.objects.security_group_errors import (
    InvalidProviderFirewallRule,
    InvalidSecurityGroup,
    InvalidSecurityGroupRule,
)

from .over_the_bus import caller, forget_conductor_queue

CTX = RequestContext(request_id="req-secgroups")
WEB = "10000000-0000-4000-8000-000000000001"
DB = "20000000-0000-4000-8000-000000000002"
INSTANCE = "6f6a3f5e-0000-4000-8000-0000000000aa"
OTHER_INSTANCE = "6f6a3f5e-0000-4000-8000-0000000000bb"


def rule(number: int, group: str, **values: object) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=f"30000000-0000-4000-8000-{number:012d}", parent_group_id=group, **values
    )


def values(rules: list[SecurityGroupRule]) -> list[dict[str, object]]:
    """Every field of each rule (unset ones at their defaults), to compare by value."""
    return [{name: getattr(r, name) for name in SecurityGroupRule.obj_fields()} for r in rules]


@pytest.fixture
async def conductor(transport: Transport, sql_store: ObjectStore) -> AsyncIterator[Transport]:
    """A conductor on `transport` over each database; yields the transport to call it on."""
    served = Conductor(transport, sql_store)
    await served.start()
    yield transport
    await served.aclose()
    await forget_conductor_queue(transport)


async def test_groups_with_their_rules_are_found_by_id_and_by_member_instance(
    conductor: Transport,
) -> None:
    with use_indirection(caller(conductor)):
        await SecurityGroup(id=DB, name="db", project_id="p1").create()
        web = SecurityGroup(id=WEB, name="web", description="front", project_id="p1")
        await web.create()
        ssh = rule(
            2, WEB, protocol="tcp", from_port=22, to_port=22, remote_ip_prefix="198.51.100.0/24"
        )
        ping = rule(1, WEB, protocol="icmp", from_port=8, to_port=-1)
        from_db = rule(3, WEB, protocol="tcp", from_port=80, to_port=443, remote_group_id=DB)
        out6 = rule(4, DB, direction="egress", ethertype="IPv6", remote_ip_prefix="2001:db8::/32")
        for each in (ssh, ping, from_db, out6):
            await each.create()
        await web.add_instance(INSTANCE)
        await web.add_instance(INSTANCE)  # again: still one membership
        db = await SecurityGroup.get_by_id(CTX, DB)
        await db.add_instance(INSTANCE)
        await db.add_instance(OTHER_INSTANCE)

        groups = await SecurityGroup.get_by_instance(CTX, INSTANCE)
        other = await SecurityGroup.get_by_instance(CTX, OTHER_INSTANCE)
        web_rules = await SecurityGroupRule.get_by_security_group_id(CTX, WEB)
        none = await SecurityGroup.get_by_instance(CTX, "6f6a3f5e-0000-4000-8000-0000000000cc")

    assert [g.id for g in groups] == [WEB, DB]
    assert [(g.name, g.project_id) for g in groups] == [("web", "p1"), ("db", "p1")]
    assert groups[0].description == "front"
    assert values(groups[0].rules) == values([ping, ssh, from_db]) == values(web_rules)
    assert values(groups[1].rules) == values([out6])
    assert str(groups[0].rules[1].remote_ip_prefix) == "198.51.100.0/24"
    assert groups[1].rules[0].ethertype == "IPv6"
    assert [g.id for g in other] == [DB]
    assert none == []
    assert not groups[0].obj_what_changed()


async def test_a_bad_rule_is_refused_as_its_class_and_nothing_is_stored(
    conductor: Transport,
) -> None:
    with use_indirection(caller(conductor)):
        await SecurityGroup(id=WEB, name="web").create()
        upside_down = rule(1, WEB, protocol="tcp", from_port=443, to_port=80)
        with pytest.raises(InvalidSecurityGroupRule) as caught:
            await upside_down.create()
        with pytest.raises(InvalidSecurityGroupRule, match=r"protocol 'sctp'"):
            await rule(2, WEB, protocol="sctp").create()
        with pytest.raises(InvalidProviderFirewallRule, match=r"ICMP type 300 is outside"):
            await ProviderFirewallRule(
                id="40000000-0000-4000-8000-000000000001",
                protocol="icmp",
                from_port=300,
                cidr="192.0.2.0/24",
            ).create()
        stored = await SecurityGroupRule.get_by_security_group_id(CTX, WEB)
        providers = await ProviderFirewallRule.get_all(CTX)
    assert str(caught.value) == (
        f"security group rule {upside_down.id}: port range 443-80 is upside down"
    )
    assert stored == [] and providers == []


async def test_a_group_saves_its_own_fields_and_refuses_rules_set_on_it(
    conductor: Transport,
) -> None:
    with use_indirection(caller(conductor)):
        web = SecurityGroup(id=WEB, name="web")
        await web.create()
        await rule(1, WEB, protocol="udp", from_port=53, to_port=53).create()
        found = await SecurityGroup.get_by_id(CTX, WEB)
        found.name = "frontend"
        await found.save()
        found.rules = [*found.rules, rule(2, WEB)]
        with pytest.raises(InvalidSecurityGroup, match="stored one by one"):
            await found.save()
        stored_rule = (await SecurityGroupRule.get_by_security_group_id(CTX, WEB))[0]
        stored_rule.to_port = 54
        with pytest.raises(InvalidSecurityGroupRule, match="does not change"):
            await stored_rule.save()
        again = await SecurityGroup.get_by_id(CTX, WEB)
    assert again.name == "frontend"
    assert [(r.protocol, r.from_port, r.to_port) for r in again.rules] == [("udp", 53, 53)]


async def test_destroying_a_group_removes_its_rules_and_memberships(
    conductor: Transport,
) -> None:
    with use_indirection(caller(conductor)):
        web = SecurityGroup(id=WEB, name="web")
        await web.create()
        await SecurityGroup(id=DB, name="db").create()
        await rule(1, WEB, protocol="tcp", from_port=22, to_port=22).create()
        await web.add_instance(INSTANCE)
        assert await web.remove_instance(OTHER_INSTANCE) is False
        await web.destroy()
        with pytest.raises(ObjectNotFound):
            await SecurityGroup.get_by_id(CTX, WEB)
        with pytest.raises(ObjectNotFound):
            await web.destroy()
        rules = await SecurityGroupRule.get_by_security_group_id(CTX, WEB)
        groups = await SecurityGroup.get_by_instance(CTX, INSTANCE)
        remaining = await SecurityGroup.list_all(CTX)
    assert rules == [] and groups == []
    assert [g.id for g in remaining] == [DB]


async def test_provider_rules_are_stored_and_listed_in_id_order(conductor: Transport) -> None:
    second = ProviderFirewallRule(
        id="40000000-0000-4000-8000-000000000002", cidr="2001:db8:bad::/48"
    )
    first = ProviderFirewallRule(
        id="40000000-0000-4000-8000-000000000001",
        protocol="tcp",
        from_port=25,
        to_port=25,
        cidr="203.0.113.0/24",
    )
    with use_indirection(caller(conductor)):
        await second.create()
        await first.create()
        listed = await ProviderFirewallRule.get_all(CTX)
        await first.destroy()
        after = await ProviderFirewallRule.get_all(CTX)
    assert [r.id for r in listed] == [first.id, second.id]
    assert [str(r.cidr) for r in after] == ["2001:db8:bad::/48"]
    assert (listed[0].protocol, listed[0].from_port, listed[1].protocol) == ("tcp", 25, None)
