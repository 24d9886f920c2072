"""The libvirt network filters (nwfilter) of an instance, built from its VIFs, the rules of its
security groups and the provider's rules: pure, with no libvirt.

The chain, as libvirt instantiates it for one interface (https://libvirt.org/formatnwfilter.html):

    virtactor-<instance uuid>-<mac without colons>      one per interface, named from its
    │                                                   <interface><filterref filter=.../>
    ├── virtactor-base (MAC, IP)      anti-spoofing, no DHCP server but ours, default drop
    │   ├── virtactor-no-mac-spoofing       frames out only from the VIF's MAC
    │   ├── virtactor-no-ip-spoofing        IPv4 out only from its fixed IPs (or DHCP)
    │   ├── virtactor-no-arp-mac-spoofing   ARP out only with its MAC
    │   └── virtactor-no-arp-ip-spoofing    ARP out only for its fixed IPs
    ├── virtactor-allow-dhcp-server (DHCPSERVER)   when its subnets have a DHCP server
    ├── virtactor-provider            the provider's drops, before any group allows
    └── virtactor-secgroup-<group id> one per group: its allow rules

The interface filter carries the parameters (MAC, IP, DHCPSERVER), so the interface XML only
names it. libvirt merges the rules of a chain from every filter by priority, lower first:
DHCP (100-110), provider drops (400), group accepts (500), the default drop (1000). IP rules
are stateful (conntrack): accepting a connection in one direction accepts its replies.

Each filter's XML is built with the checked helpers of `agent.virt.guest.elements` and is the
same for the same input (groups, rules and members are sorted), so a filter that did not
change compares equal to the one defined and is not written again. Every rule is checked
first: a bad one raises its typed error before any XML exists.
"""

from __future__ import annotations

import ipaddress
import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.virt.firewall.errors import InvalidFilterName, RemoteGroupMembersMissing
from agent.virt.guest.elements import element, sub, to_xml
from schemas.objects import VIF, NetworkInfo, ProviderFirewallRule, SecurityGroup
from schemas.objects.security_group import (
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    EtherType,
    RuleDirection,
    SecurityGroupRule,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PREFIX = "virtactor-"
BASE = "virtactor-base"
NO_MAC_SPOOFING = "virtactor-no-mac-spoofing"
NO_IP_SPOOFING = "virtactor-no-ip-spoofing"
NO_ARP_MAC_SPOOFING = "virtactor-no-arp-mac-spoofing"
NO_ARP_IP_SPOOFING = "virtactor-no-arp-ip-spoofing"
ALLOW_DHCP_SERVER = "virtactor-allow-dhcp-server"
PROVIDER = "virtactor-provider"

# Priorities within a chain (lower first), the order the module docstring gives.
DHCP_PRIORITY = "100"
OTHER_DHCP_PRIORITY = "110"
PROVIDER_PRIORITY = "400"
GROUP_PRIORITY = "500"
DEFAULT_DROP_PRIORITY = "1000"

# libvirt's filter names: virNWFilterIsValidChainName and the XML schema allow these.
_FILTER_NAME = re.compile(r"^[a-zA-Z0-9_.:-]+$")

# (protocol, IP version) -> the nwfilter protocol element; None is "any protocol".
_ELEMENTS = {
    ("tcp", 4): "tcp",
    ("udp", 4): "udp",
    ("icmp", 4): "icmp",
    (None, 4): "all",
    ("tcp", 6): "tcp-ipv6",
    ("udp", 6): "udp-ipv6",
    ("icmpv6", 6): "icmpv6",
    (None, 6): "all-ipv6",
}


@dataclass(frozen=True, slots=True)
class NWFilter:
    """One filter: its name and its XML (without a uuid: libvirt keeps the one it gave)."""

    name: str
    xml: str


def secgroup_filter_name(group_id: str) -> str:
    return _filter_name(f"{PREFIX}secgroup-{group_id}")


def interface_filter_name(instance_uuid: str, mac: str) -> str:
    """`virtactor-<instance uuid>-<mac without colons>`, what the interface XML names."""
    try:
        canonical = uuidlib.UUID(instance_uuid)
    except ValueError:
        raise InvalidFilterName(name=f"{PREFIX}{instance_uuid}-{mac}") from None
    return _filter_name(f"{PREFIX}{canonical}-{mac.replace(':', '').lower()}")


def instance_filters(
    instance_uuid: str,
    network_info: NetworkInfo | Sequence[VIF],
    groups: Sequence[SecurityGroup],
    provider_rules: Sequence[ProviderFirewallRule],
    members: Mapping[str, Iterable[IPAddress]],
) -> list[NWFilter]:
    """Every filter the instance's interfaces need, referenced ones first (the order to
    define them in): the base filters, the provider's, one per group, one per interface.

    `members` maps a group id to its members' IPs, for the rules that allow a remote group;
    a group named by a rule and missing there raises `RemoteGroupMembersMissing`. A bad rule
    raises `InvalidSecurityGroupRule` / `InvalidProviderFirewallRule`.
    """
    ordered = sorted(groups, key=lambda g: g.id)
    filters = [*base_filters(), provider_filter(provider_rules)]
    filters += [secgroup_filter(group, members) for group in ordered]
    filters += [interface_filter(instance_uuid, vif, ordered) for vif in network_info]
    return filters


def base_filters() -> list[NWFilter]:
    """The filters every interface filter references, modelled on libvirt's clean-traffic
    (no-mac-spoofing, no-ip-spoofing, no-arp-*-spoofing), and the DHCP server filter."""
    no_mac = _filter(NO_MAC_SPOOFING, "mac", "-800")
    sub(_rule(no_mac, "return", "out", "500"), "mac", srcmacaddr="$MAC")
    _rule(no_mac, "drop", "out", "1000")

    no_ip = _filter(NO_IP_SPOOFING, "ipv4-ip", "-710")
    # A DHCP request leaves before the guest has an address.
    dhcp_request = _rule(no_ip, "return", "out", DHCP_PRIORITY)
    sub(
        dhcp_request,
        "ip",
        srcipaddr="0.0.0.0",
        protocol="udp",
        srcportstart="68",
        dstportstart="67",
    )
    sub(_rule(no_ip, "return", "out", "500"), "ip", srcipaddr="$IP")
    _rule(no_ip, "drop", "out", "1000")

    no_arp_mac = _filter(NO_ARP_MAC_SPOOFING, "arp-mac", "-520")
    sub(_rule(no_arp_mac, "return", "out", "350"), "arp", arpsrcmacaddr="$MAC")
    _rule(no_arp_mac, "drop", "out", "1000")

    no_arp_ip = _filter(NO_ARP_IP_SPOOFING, "arp-ip", "-510")
    sub(_rule(no_arp_ip, "return", "out", "400"), "arp", arpsrcipaddr="$IP")
    _rule(no_arp_ip, "drop", "out", "1000")

    base = _filter(BASE, "root")
    for name in (NO_MAC_SPOOFING, NO_IP_SPOOFING, NO_ARP_MAC_SPOOFING, NO_ARP_IP_SPOOFING):
        sub(base, "filterref", filter=name)
    # DHCP answers come only from the servers `virtactor-allow-dhcp-server` accepts first.
    sub(_rule(base, "drop", "in", OTHER_DHCP_PRIORITY), "udp", srcportstart="67", dstportstart="68")
    sub(_rule(base, "drop", "inout", DEFAULT_DROP_PRIORITY), "all")
    sub(_rule(base, "drop", "inout", DEFAULT_DROP_PRIORITY), "all-ipv6")

    dhcp = _filter(ALLOW_DHCP_SERVER, "root")
    sub(_rule(dhcp, "accept", "out", DHCP_PRIORITY), "udp", srcportstart="68", dstportstart="67")
    answer = _rule(dhcp, "accept", "in", DHCP_PRIORITY)
    sub(answer, "udp", srcipaddr="$DHCPSERVER", srcportstart="67", dstportstart="68")

    return [_done(f) for f in (no_mac, no_ip, no_arp_mac, no_arp_ip, base, dhcp)]


def provider_filter(rules: Sequence[ProviderFirewallRule]) -> NWFilter:
    """`virtactor-provider`: incoming traffic each rule names is dropped (nova's provider
    firewall rules block), before any group could accept it."""
    for rule in rules:
        rule.validate()
    root = _filter(PROVIDER, "root")
    for rule in sorted(rules, key=lambda r: r.id):
        _protocol_rule(
            root,
            "drop",
            "in",
            PROVIDER_PRIORITY,
            rule.protocol,
            rule.from_port,
            rule.to_port,
            rule.cidr.version,
            remote=rule.cidr,
        )
    return _done(root)


def secgroup_filter(group: SecurityGroup, members: Mapping[str, Iterable[IPAddress]]) -> NWFilter:
    """`virtactor-secgroup-<id>`: one accept rule per rule of the group (a remote-group rule,
    one per member IP of its version; none when the group has no members)."""
    rules = sorted(group.rules, key=lambda r: r.id)
    for rule in rules:
        rule.validate()
        if rule.remote_group_id is not None and rule.remote_group_id not in members:
            raise RemoteGroupMembersMissing(rule=rule.id, group=rule.remote_group_id)
    root = _filter(secgroup_filter_name(group.id), "root")
    for rule in rules:
        for remote in _remotes(rule, members):
            _group_rule(root, rule, remote)
    return _done(root)


def interface_filter(instance_uuid: str, vif: VIF, groups: Sequence[SecurityGroup]) -> NWFilter:
    """`virtactor-<instance uuid>-<mac>`: the base with the VIF's MAC and fixed IPv4s, the
    DHCP server filter when its subnets have one, the provider's, then each group's."""
    root = _filter(interface_filter_name(instance_uuid, vif.address), "root")
    # Parameters in name order: libvirt keeps them so, and the XML must compare equal.
    base = sub(root, "filterref", filter=BASE)
    for ip in sorted({ip for ip in vif.fixed_ips() if ip.version == 4}):
        sub(base, "parameter", name="IP", value=str(ip))
    sub(base, "parameter", name="MAC", value=vif.address)
    servers = sorted(
        {
            subnet.dhcp_server
            for subnet in (vif.network.subnets if vif.network is not None else [])
            if subnet.dhcp_server is not None and subnet.dhcp_server.version == 4
        }
    )
    if servers:
        dhcp = sub(root, "filterref", filter=ALLOW_DHCP_SERVER)
        for server in servers:
            sub(dhcp, "parameter", name="DHCPSERVER", value=str(server))
    sub(root, "filterref", filter=PROVIDER)
    for group in sorted(groups, key=lambda g: g.id):
        sub(root, "filterref", filter=secgroup_filter_name(group.id))
    return _done(root)


# --- rules -----------------------------------------------------------------------------------


def _remotes(
    rule: SecurityGroupRule, members: Mapping[str, Iterable[IPAddress]]
) -> list[IPNetwork | None]:
    """The remote networks of a rule: its CIDR, its remote group's members of its IP version
    (each a /32 or /128), or None for anywhere."""
    if rule.remote_group_id is None:
        return [rule.remote_ip_prefix]
    version = 4 if rule.ethertype == EtherType.IPV4 else 6
    ips = sorted({ip for ip in members[rule.remote_group_id] if ip.version == version})
    return [ipaddress.ip_network(ip) for ip in ips]


def _group_rule(root: ET.Element, rule: SecurityGroupRule, remote: IPNetwork | None) -> None:
    direction = "in" if rule.direction == RuleDirection.INGRESS else "out"
    version = 4 if rule.ethertype == EtherType.IPV4 else 6
    _protocol_rule(
        root,
        "accept",
        direction,
        GROUP_PRIORITY,
        rule.protocol,
        rule.from_port,
        rule.to_port,
        version,
        remote=remote,
    )


def _protocol_rule(
    root: ET.Element,
    action: str,
    direction: str,
    priority: str,
    protocol: str | None,
    from_port: int | None,
    to_port: int | None,
    version: int,
    *,
    remote: IPNetwork | None,
) -> None:
    """One `<rule>` with its protocol element: the remote network as the packet's source
    coming in and its destination going out; ports as destination ports; ICMP type/code."""
    match = sub(_rule(root, action, direction, priority), _ELEMENTS[(protocol, version)])
    if remote is not None:
        end = "src" if direction == "in" else "dst"
        match.set(f"{end}ipaddr", str(remote.network_address))
        match.set(f"{end}ipmask", str(remote.prefixlen))
    if protocol in PORT_PROTOCOLS and from_port is not None and to_port is not None:
        match.set("dstportstart", str(from_port))
        match.set("dstportend", str(to_port))
    if protocol in ICMP_PROTOCOLS:
        if from_port is not None and from_port != -1:
            match.set("type", str(from_port))
        if to_port is not None and to_port != -1:
            match.set("code", str(to_port))


# --- elements --------------------------------------------------------------------------------


def _filter_name(name: str) -> str:
    if not _FILTER_NAME.match(name):
        raise InvalidFilterName(name=name)
    return name


def _filter(name: str, chain: str, priority: str | None = None) -> ET.Element:
    attrib = {"name": _filter_name(name), "chain": chain}
    if priority is not None:
        attrib["priority"] = priority
    return element("filter", **attrib)


def _rule(root: ET.Element, action: str, direction: str, priority: str) -> ET.Element:
    return sub(root, "rule", action=action, direction=direction, priority=priority)


def _done(root: ET.Element) -> NWFilter:
    return NWFilter(root.attrib["name"], to_xml(root))
