"""Interface drivers: bridge, Open vSwitch, tap/ethernet and libvirt networks; model from the
image."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from agent.virt.guest.elements import to_xml
from agent.virt.guest.errors import InvalidVIF
from agent.virt.vifs import interface_element
from schemas.objects.image import ImageMetaProps
from schemas.objects.network import VIF, Network
from tests.agent.virt.guest.samples import vif

VIF_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def iface(the_vif: VIF, props: ImageMetaProps | None = None) -> ET.Element:
    return ET.fromstring(to_xml(interface_element(the_vif, props)))


def test_a_bridge_vif_plugs_a_named_tap_into_its_bridge() -> None:
    element = iface(vif("bridge", "br-private"))
    assert element.get("type") == "bridge"
    assert [(e.tag, e.attrib) for e in element] == [
        ("source", {"bridge": "br-private"}),
        ("mac", {"address": "fa:16:3e:11:22:33"}),
        ("model", {"type": "virtio"}),
        ("target", {"dev": "tap9a8b7c6d-5e"}),
    ]


def test_an_ovs_vif_is_a_port_of_its_ovs_bridge_named_by_the_port_id() -> None:
    element = iface(vif("ovs", "br-int"))
    assert element.get("type") == "bridge"
    assert [(e.tag, e.attrib) for e in element] == [
        ("source", {"bridge": "br-int"}),
        ("virtualport", {"type": "openvswitch"}),
        ("mac", {"address": "fa:16:3e:11:22:33"}),
        ("model", {"type": "virtio"}),
        ("target", {"dev": "tap9a8b7c6d-5e"}),
    ]
    parameters = element.find("virtualport/parameters")
    assert parameters is not None
    assert parameters.attrib == {"interfaceid": VIF_ID}


def test_an_ovs_vif_takes_its_ovs_interfaceid_when_it_has_one() -> None:
    other = "0f1e2d3c-4b5a-4968-8776-655443322110"
    element = iface(vif("ovs", "br-int", ovs_interfaceid=other.upper()))
    parameters = element.find("virtualport/parameters")
    assert parameters is not None
    assert parameters.attrib == {"interfaceid": other}


def test_an_ovs_vif_without_hybrid_plug_is_plugged_directly() -> None:
    element = iface(vif("ovs", "br-int", details={"ovs_hybrid_plug": "False"}))
    assert element.find("virtualport").get("type") == "openvswitch"  # type: ignore[union-attr]


def test_the_image_vif_model_wins_over_the_vif_model() -> None:
    element = iface(vif(model="e1000"), ImageMetaProps(hw_vif_model="rtl8139"))
    assert element.find("model").get("type") == "rtl8139"  # type: ignore[union-attr]
    assert iface(vif(model="e1000")).find("model").get("type") == "e1000"  # type: ignore[union-attr]


@pytest.mark.parametrize("vif_type", ["tap", "ethernet"])
def test_tap_and_ethernet_vifs_are_ethernet_interfaces_on_their_devname(vif_type: str) -> None:
    element = iface(vif(vif_type, None, devname="tap-web1"))
    assert element.get("type") == "ethernet"
    assert element.find("source") is None
    assert element.find("target").attrib == {"dev": "tap-web1"}  # type: ignore[union-attr]


def test_a_libvirt_network_vif_and_the_network_mtu() -> None:
    network = Network(id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", label="l", mtu=1450)
    element = iface(vif("other", network=network, details={"libvirt_network": "default"}))
    assert element.get("type") == "network"
    assert element.find("source").attrib == {"network": "default"}  # type: ignore[union-attr]
    assert element.find("mtu").attrib == {"size": "1450"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("the_vif", "message"),
    [
        (vif("bridge", None), "network.bridge is missing"),
        (vif("bridge", "br0'/><x"), 'network.bridge "br0\'/><x" is not a bridge name'),
        (
            vif("bridge", "a-very-long-bridge-name"),
            "network.bridge 'a-very-long-bridge-name' is not a bridge name",
        ),
        (vif("tap", devname="tap 1"), "devname 'tap 1' is not a Linux interface name"),
        (
            vif("vhostuser"),
            "type 'vhostuser' cannot be plugged here (bridge, ovs, tap, ethernet, "
            "or other with details['libvirt_network'])",
        ),
        (vif("ovs", None), "network.bridge is missing"),
        (
            vif("ovs", "br-int", details={"ovs_hybrid_plug": "True"}),
            "details['ovs_hybrid_plug'] 'True': the hybrid plug (a Linux bridge per port) is "
            "not supported, only a direct Open vSwitch port",
        ),
        (
            vif("ovs", "br-int", ovs_interfaceid="port-1"),
            "ovs_interfaceid 'port-1' is not a UUID",
        ),
        (
            vif("other", details={"libvirt_network": "a/b"}),
            "details['libvirt_network'] 'a/b' is not a libvirt network name",
        ),
    ],
)
def test_vifs_that_cannot_be_plugged_are_refused_naming_the_field(
    the_vif: VIF, message: str
) -> None:
    with pytest.raises(InvalidVIF) as caught:
        interface_element(the_vif, None)
    assert str(caught.value) == f"invalid network interface {VIF_ID}: {message}"


def test_an_mtu_out_of_range_is_refused() -> None:
    network = Network(id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", label="l", bridge="br0", mtu=20)
    with pytest.raises(InvalidVIF, match=r"network\.mtu 20 is out of range"):
        interface_element(vif(network=network), None)


def test_with_the_firewall_on_an_interface_names_its_own_filter() -> None:
    instance_uuid = "6f6a3f5e-0000-4000-8000-0000000000aa"
    element = ET.fromstring(
        to_xml(interface_element(vif("bridge", "br-private"), None, instance_uuid))
    )
    refs = element.findall("filterref")
    assert [ref.attrib for ref in refs] == [{"filter": f"virtactor-{instance_uuid}-fa163e112233"}]
    assert iface(vif("bridge", "br-private")).find("filterref") is None
