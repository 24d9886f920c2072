"""The nwfilter builder: each kind of rule becomes the nwfilter rule it means, the chain of
filters an interface references, deterministic output, and bad input refused by type."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from agent.virt.firewall import (
    InvalidFilterName,
    RemoteGroupMembersMissing,
    base_filters,
    instance_filters,
    interface_filter,
    interface_filter_name,
    provider_filter,
    secgroup_filter,
)
from schemas.errors import ObjectFieldError
from schemas.objects import (
    VIF,
    Network,
    ProviderFirewallRule,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from schemas.objects.security_group_errors import (
    InvalidProviderFirewallRule,
    InvalidSecurityGroupRule,
)

INSTANCE = "6f6a3f5e-0000-4000-8000-0000000000aa"
WEB = "10000000-0000-4000-8000-000000000001"
DB = "20000000-0000-4000-8000-000000000002"
RULE_ID = "30000000-0000-4000-8000-000000000001"


def rule(number: int = 1, group: str = WEB, **values: Any) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=f"30000000-0000-4000-8000-{number:012d}", parent_group_id=group, **values
    )


def group_rules(*rules: SecurityGroupRule, members: Any = None) -> list[dict[str, Any]]:
    """The rules of the group filter built from `rules`: action, direction, priority, the
    protocol element and its attributes."""
    built = secgroup_filter(SecurityGroup(id=WEB, name="web", rules=list(rules)), members or {})
    root = ET.fromstring(built.xml)
    assert (root.get("name"), root.get("chain")) == (f"virtactor-secgroup-{WEB}", "root")
    return [
        {**node.attrib, "match": (node[0].tag, node[0].attrib)} for node in root.findall("rule")
    ]


def vif(mac: str = "fa:16:3e:00:00:01", dhcp: str | None = "10.0.0.2") -> VIF:
    return VIF(
        id="d0d0d0d0-0000-4000-8000-000000000001",
        address=mac,
        type="bridge",
        network=Network(
            id="e0e0e0e0-0000-4000-8000-000000000001",
            label="private",
            subnets=[
                Subnet(cidr="10.0.0.0/24", dhcp_server=dhcp, ips=["10.0.0.7", "10.0.0.5"]),
                Subnet(cidr="2001:db8::/64", dhcp_server="2001:db8::2", ips=["2001:db8::5"]),
            ],
        ),
    )


def test_an_ingress_tcp_rule_accepts_its_ports_from_its_remote_network() -> None:
    built = group_rules(
        rule(protocol="tcp", from_port=22, to_port=80, remote_ip_prefix="198.51.100.0/24")
    )
    assert built == [
        {
            "action": "accept",
            "direction": "in",
            "priority": "500",
            "match": (
                "tcp",
                {
                    "srcipaddr": "198.51.100.0",
                    "srcipmask": "24",
                    "dstportstart": "22",
                    "dstportend": "80",
                },
            ),
        }
    ]


def test_an_egress_udp_rule_names_its_remote_network_as_the_destination() -> None:
    built = group_rules(
        rule(
            protocol="udp",
            from_port=53,
            to_port=53,
            direction="egress",
            remote_ip_prefix="192.0.2.53/32",
        )
    )
    assert [(r["direction"], r["match"]) for r in built] == [
        (
            "out",
            (
                "udp",
                {
                    "dstipaddr": "192.0.2.53",
                    "dstipmask": "32",
                    "dstportstart": "53",
                    "dstportend": "53",
                },
            ),
        )
    ]


def test_a_tcp_rule_without_ports_or_remote_accepts_every_port_from_anywhere() -> None:
    assert [r["match"] for r in group_rules(rule(protocol="tcp"))] == [("tcp", {})]


def test_icmp_type_and_code_become_attributes_and_any_is_left_out() -> None:
    built = group_rules(
        rule(1, protocol="icmp", from_port=8, to_port=0),
        rule(2, protocol="icmp", from_port=3, to_port=-1),
        rule(3, protocol="icmp", from_port=-1, to_port=-1),
        rule(4, protocol="icmp"),
    )
    assert [r["match"] for r in built] == [
        ("icmp", {"type": "8", "code": "0"}),
        ("icmp", {"type": "3"}),
        ("icmp", {}),
        ("icmp", {}),
    ]


def test_a_rule_of_no_protocol_matches_all_traffic_of_its_ip_version() -> None:
    built = group_rules(
        rule(1, remote_ip_prefix="10.1.0.0/16"),
        rule(2, ethertype="IPv6", direction="egress"),
    )
    assert [(r["direction"], r["match"]) for r in built] == [
        ("in", ("all", {"srcipaddr": "10.1.0.0", "srcipmask": "16"})),
        ("out", ("all-ipv6", {})),
    ]


def test_ipv6_rules_use_the_ipv6_protocol_elements() -> None:
    built = group_rules(
        rule(1, protocol="tcp", ethertype="IPv6", from_port=443, to_port=443),
        rule(2, protocol="udp", ethertype="IPv6", remote_ip_prefix="2001:db8:1::/48"),
        rule(3, protocol="icmpv6", ethertype="IPv6", from_port=128, to_port=0),
    )
    assert [r["match"] for r in built] == [
        ("tcp-ipv6", {"dstportstart": "443", "dstportend": "443"}),
        ("udp-ipv6", {"srcipaddr": "2001:db8:1::", "srcipmask": "48"}),
        ("icmpv6", {"type": "128", "code": "0"}),
    ]


def test_a_remote_group_rule_becomes_one_rule_per_member_ip_of_its_version() -> None:
    members = {
        DB: [
            ipaddress.ip_address("10.0.0.9"),
            ipaddress.ip_address("2001:db8::9"),
            ipaddress.ip_address("10.0.0.8"),
            ipaddress.ip_address("10.0.0.9"),
        ]
    }
    built = group_rules(
        rule(1, protocol="tcp", from_port=5432, to_port=5432, remote_group_id=DB),
        rule(2, protocol="icmpv6", ethertype="IPv6", remote_group_id=DB),
        members=members,
    )
    assert [r["match"] for r in built] == [
        (
            "tcp",
            {
                "srcipaddr": "10.0.0.8",
                "srcipmask": "32",
                "dstportstart": "5432",
                "dstportend": "5432",
            },
        ),
        (
            "tcp",
            {
                "srcipaddr": "10.0.0.9",
                "srcipmask": "32",
                "dstportstart": "5432",
                "dstportend": "5432",
            },
        ),
        ("icmpv6", {"srcipaddr": "2001:db8::9", "srcipmask": "128"}),
    ]


def test_a_remote_group_with_no_members_allows_nothing() -> None:
    assert group_rules(rule(protocol="tcp", remote_group_id=DB), members={DB: []}) == []


def test_a_remote_group_whose_members_were_not_given_is_refused() -> None:
    with pytest.raises(RemoteGroupMembersMissing) as caught:
        group_rules(rule(protocol="tcp", remote_group_id=DB), members={WEB: []})
    assert str(caught.value) == (
        f"security group rule {RULE_ID} allows the members of group {DB}, whose members' IPs "
        "were not given"
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"protocol": "tcp", "from_port": 443, "to_port": 80}, "port range 443-80 is upside down"),
        ({"protocol": "udp", "from_port": 0, "to_port": 80}, "port 0 is outside 1-65535"),
        ({"protocol": "tcp", "from_port": 1, "to_port": 65536}, "port 65536 is outside 1-65535"),
        (
            {"protocol": "tcp", "from_port": 22},
            "a port range needs both ends (or neither, for every port): 22-None",
        ),
        (
            {"protocol": "sctp"},
            "unknown protocol 'sctp' (known: tcp, udp, icmp, icmpv6, or None for any)",
        ),
        ({"protocol": "icmp", "from_port": 256}, "ICMP type 256 is outside 0-255 (-1 for any)"),
        (
            {"protocol": "icmp", "from_port": 8, "to_port": -2},
            "ICMP code -2 is outside 0-255 (-1 for any)",
        ),
        ({"protocol": "icmp", "from_port": -1, "to_port": 0}, "ICMP code 0 needs an ICMP type"),
        ({"protocol": "icmp", "ethertype": "IPv6"}, "protocol icmp is for IPv4, not IPv6"),
        ({"protocol": "icmpv6"}, "protocol icmpv6 is for IPv6, not IPv4"),
        ({"from_port": 80, "to_port": 80}, "ports (80-80) need protocol tcp, udp, icmp or icmpv6"),
        ({"remote_ip_prefix": "2001:db8::/32"}, "remote CIDR 2001:db8::/32 is not IPv4"),
        (
            {"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": DB},
            "a rule has a remote CIDR or a remote group, not both",
        ),
    ],
)
def test_a_bad_rule_is_refused_naming_the_rule_and_the_problem(
    values: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidSecurityGroupRule) as caught:
        group_rules(rule(**values), members={DB: []})
    assert str(caught.value) == f"security group rule {RULE_ID}: {reason}"
    assert (caught.value.rule, caught.value.reason) == (RULE_ID, reason)


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "10.0.0.0/33", "10.0.0", "2001:db8::/129"])
def test_an_invalid_remote_cidr_is_refused_when_set(cidr: str) -> None:
    with pytest.raises(ObjectFieldError, match=r"SecurityGroupRule\.remote_ip_prefix"):
        rule(remote_ip_prefix=cidr)


def test_a_bad_rule_in_any_group_fails_the_whole_build() -> None:
    good = SecurityGroup(id=WEB, name="web", rules=[rule(1, protocol="tcp")])
    bad = SecurityGroup(
        id=DB, name="db", rules=[rule(2, DB, protocol="tcp", from_port=9, to_port=1)]
    )
    with pytest.raises(InvalidSecurityGroupRule, match="port range 9-1 is upside down"):
        instance_filters(INSTANCE, [vif()], [good, bad], [], {})


def test_provider_rules_drop_incoming_traffic_before_any_group_accepts_it() -> None:
    built = provider_filter(
        [
            ProviderFirewallRule(
                id="40000000-0000-4000-8000-000000000002", cidr="2001:db8:bad::/48"
            ),
            ProviderFirewallRule(
                id="40000000-0000-4000-8000-000000000001",
                protocol="tcp",
                from_port=25,
                to_port=25,
                cidr="203.0.113.0/24",
            ),
        ]
    )
    root = ET.fromstring(built.xml)
    assert built.name == "virtactor-provider" == root.get("name")
    assert [(r.attrib, r[0].tag, r[0].attrib) for r in root.findall("rule")] == [
        (
            {"action": "drop", "direction": "in", "priority": "400"},
            "tcp",
            {
                "srcipaddr": "203.0.113.0",
                "srcipmask": "24",
                "dstportstart": "25",
                "dstportend": "25",
            },
        ),
        (
            {"action": "drop", "direction": "in", "priority": "400"},
            "all-ipv6",
            {"srcipaddr": "2001:db8:bad::", "srcipmask": "48"},
        ),
    ]


def test_a_bad_provider_rule_is_refused_by_type() -> None:
    bad = ProviderFirewallRule(
        id="40000000-0000-4000-8000-000000000001",
        protocol="icmp",
        from_port=8,
        cidr="2001:db8::/32",
    )
    with pytest.raises(InvalidProviderFirewallRule) as caught:
        provider_filter([bad])
    assert str(caught.value) == (
        "provider firewall rule 40000000-0000-4000-8000-000000000001: "
        "protocol icmp is for IPv4, not IPv6"
    )


def test_the_interface_filter_passes_mac_ips_and_dhcp_server_and_references_each_group() -> None:
    groups = [SecurityGroup(id=DB, name="db"), SecurityGroup(id=WEB, name="web")]
    built = interface_filter(INSTANCE, vif(), groups)
    assert built.name == f"virtactor-{INSTANCE}-fa163e000001"
    root = ET.fromstring(built.xml)
    refs = [
        (ref.get("filter"), [(p.get("name"), p.get("value")) for p in ref])
        for ref in root.findall("filterref")
    ]
    assert refs == [
        (
            "virtactor-base",
            [("IP", "10.0.0.5"), ("IP", "10.0.0.7"), ("MAC", "fa:16:3e:00:00:01")],
        ),
        ("virtactor-allow-dhcp-server", [("DHCPSERVER", "10.0.0.2")]),
        ("virtactor-provider", []),
        (f"virtactor-secgroup-{WEB}", []),
        (f"virtactor-secgroup-{DB}", []),
    ]
    assert root.findall("rule") == []


def test_an_interface_without_a_dhcp_server_does_not_reference_the_dhcp_filter() -> None:
    root = ET.fromstring(interface_filter(INSTANCE, vif(dhcp=None), []).xml)
    assert [ref.get("filter") for ref in root.findall("filterref")] == [
        "virtactor-base",
        "virtactor-provider",
    ]


def test_the_base_filters_stop_spoofing_and_foreign_dhcp_and_drop_the_rest() -> None:
    built = {f.name: ET.fromstring(f.xml) for f in base_filters()}
    assert list(built) == [
        "virtactor-no-mac-spoofing",
        "virtactor-no-ip-spoofing",
        "virtactor-no-arp-mac-spoofing",
        "virtactor-no-arp-ip-spoofing",
        "virtactor-base",
        "virtactor-allow-dhcp-server",
    ]
    chains = {name: root.get("chain") for name, root in built.items()}
    assert chains["virtactor-no-mac-spoofing"] == "mac"
    assert chains["virtactor-no-ip-spoofing"] == "ipv4-ip"
    no_mac = built["virtactor-no-mac-spoofing"].findall("rule")
    assert [(r.get("action"), [(c.tag, c.attrib) for c in r]) for r in no_mac] == [
        ("return", [("mac", {"srcmacaddr": "$MAC"})]),
        ("drop", []),
    ]
    base = built["virtactor-base"]
    assert [ref.get("filter") for ref in base.findall("filterref")] == [
        "virtactor-no-mac-spoofing",
        "virtactor-no-ip-spoofing",
        "virtactor-no-arp-mac-spoofing",
        "virtactor-no-arp-ip-spoofing",
    ]
    assert [
        (r.get("action"), r.get("direction"), r.get("priority"), r[0].tag)
        for r in base.findall("rule")
    ] == [
        ("drop", "in", "110", "udp"),
        ("drop", "inout", "1000", "all"),
        ("drop", "inout", "1000", "all-ipv6"),
    ]
    dhcp = built["virtactor-allow-dhcp-server"].findall("rule")
    assert [(r.get("direction"), r.get("priority"), r[0].attrib) for r in dhcp] == [
        ("out", "100", {"srcportstart": "68", "dstportstart": "67"}),
        ("in", "100", {"srcipaddr": "$DHCPSERVER", "srcportstart": "67", "dstportstart": "68"}),
    ]


def test_the_same_input_in_another_order_builds_the_same_filters_referenced_first() -> None:
    rules = [
        rule(1, protocol="tcp", from_port=22, to_port=22),
        rule(2, protocol="tcp", from_port=80, to_port=80, remote_group_id=DB),
    ]
    members = {DB: [ipaddress.ip_address("10.0.0.9"), ipaddress.ip_address("10.0.0.8")]}
    web = SecurityGroup(id=WEB, name="web", rules=rules)
    db = SecurityGroup(id=DB, name="db")
    first = instance_filters(INSTANCE, [vif(), vif("fa:16:3e:00:00:02")], [web, db], [], members)
    again = instance_filters(
        INSTANCE,
        [vif(), vif("fa:16:3e:00:00:02")],
        [db, SecurityGroup(id=WEB, name="web", rules=rules[::-1])],
        [],
        {DB: members[DB][::-1]},
    )
    assert first == again
    assert [f.name for f in first] == [
        "virtactor-no-mac-spoofing",
        "virtactor-no-ip-spoofing",
        "virtactor-no-arp-mac-spoofing",
        "virtactor-no-arp-ip-spoofing",
        "virtactor-base",
        "virtactor-allow-dhcp-server",
        "virtactor-provider",
        f"virtactor-secgroup-{WEB}",
        f"virtactor-secgroup-{DB}",
        f"virtactor-{INSTANCE}-fa163e000001",
        f"virtactor-{INSTANCE}-fa163e000002",
    ]


def test_an_instance_uuid_that_is_no_uuid_makes_no_filter_name() -> None:
    with pytest.raises(InvalidFilterName, match="is not a filter name libvirt takes"):
        interface_filter_name("web-1'/><rule", "fa:16:3e:00:00:01")
