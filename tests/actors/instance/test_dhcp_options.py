"""`dhcp_options_for_instance`'s answer, from the instance's network info (pure)."""

from __future__ import annotations

import ipaddress

from actors.instance.network import dhcp_options
from schemas.objects import VIF, NetworkInfo
from schemas.objects.network import Network, Subnet

NET = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def network_info(*subnets: Subnet) -> NetworkInfo:
    network = Network(id=NET, label="n", bridge="br0", subnets=list(subnets))
    return NetworkInfo(
        objects=[VIF(id=NET, address="fa:16:3e:11:22:33", type="bridge", network=network)]
    )


def test_router_dns_and_server_per_ipv4_subnet_in_order() -> None:
    v4 = Subnet(
        cidr=ipaddress.ip_network("10.0.0.0/24"),
        gateway=ipaddress.ip_address("10.0.0.1"),
        dhcp_server=ipaddress.ip_address("10.0.0.2"),
        dns=[ipaddress.ip_address("10.0.0.53"), ipaddress.ip_address("10.0.1.53")],
    )
    v6 = Subnet(
        cidr=ipaddress.ip_network("2001:db8::/64"), gateway=ipaddress.ip_address("2001:db8::1")
    )
    assert dhcp_options(network_info(v4, v6)) == [
        {"opt_name": "router", "opt_value": "10.0.0.1"},
        {"opt_name": "dns-server", "opt_value": "10.0.0.53,10.0.1.53"},
        {"opt_name": "server-ip-address", "opt_value": "10.0.0.2"},
    ]


def test_none_without_anything_to_offer() -> None:
    assert dhcp_options(None) is None
    assert dhcp_options(NetworkInfo()) is None
    assert dhcp_options(network_info(Subnet(cidr=ipaddress.ip_network("10.0.0.0/24")))) is None
