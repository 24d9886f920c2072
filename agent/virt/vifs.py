"""Interface drivers: a `VIF` to the `<interface>` element that plugs it into the guest.

- `bridge`: a tap device libvirt creates and enslaves to the VIF's Linux bridge
  (`network.bridge`), like nova's `LibvirtGenericVIFDriver` for linuxbridge ports.
- `ovs`: a tap device libvirt adds as a port of the VIF's Open vSwitch bridge
  (`network.bridge`, e.g. `br-int`) with `external-ids:iface-id` set to the port id
  (`ovs_interfaceid`, else the VIF's id), so the Neutron agent finds and wires it: nova's
  direct OVS plug, `<virtualport type='openvswitch'>`. The hybrid plug (a Linux bridge per
  port for iptables security groups, `details["ovs_hybrid_plug"]`) needs os-vif to build
  that bridge, and is refused.
- `tap` and `ethernet`: a tap device and nothing more (`<interface type='ethernet'>`); who
  plugs it somewhere is outside libvirt.
- `other` with `details["libvirt_network"]`: a port on a libvirt network (`type='network'`).

With the host's firewall on (`[firewall] driver = "nwfilter"`), every interface names its
network filter, `<filterref filter='virtactor-<instance uuid>-<mac>'/>`
(agent/virt/firewall, docs/networking.md); the filter must be defined before the domain
starts or the interface is attached.

The NIC model is the image's `hw_vif_model`, else the VIF's own `model`, else virtio. The tap
device is named `vif.devname`, else nova's `tap` + the first 11 characters of the port id (an
interface name holds 15).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

from agent.virt.firewall.filters import interface_filter_name
from agent.virt.guest.elements import checked, element, sub
from agent.virt.guest.errors import InvalidVIF
from schemas.objects.enums import VIFModel, VIFType
from schemas.objects.image import ImageMetaProps
from schemas.objects.network import VIF

# Linux interface names: at most 15 bytes, no '/', ':' or whitespace (dev_valid_name).
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_NETWORK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LIBVIRT_NETWORK_DETAIL = "libvirt_network"
OVS_HYBRID_PLUG_DETAIL = "ovs_hybrid_plug"
DEFAULT_MODEL = VIFModel.VIRTIO


def tap_name(vif: VIF) -> str:
    """The host-side tap device of `vif`: its `devname` or `tap<first 11 of the id>`."""
    name = vif.devname or f"tap{vif.id[:11]}"
    if not _IFNAME.fullmatch(name):
        raise InvalidVIF(
            vif_id=vif.id, field="devname", reason=f"{name!r} is not a Linux interface name"
        )
    return name


def vif_model(vif: VIF, props: ImageMetaProps | None) -> str:
    if props is not None and props.hw_vif_model is not None:
        return props.hw_vif_model
    return vif.model or DEFAULT_MODEL.value


def interface_element(
    vif: VIF, props: ImageMetaProps | None, filtered_for: str | None = None
) -> ET.Element:
    """The `<interface>` of `vif`; `InvalidVIF` naming the field for what cannot be plugged.
    `filtered_for`: the instance uuid whose interface filter it references (None: none)."""
    if vif.type == VIFType.BRIDGE:
        iface = _bridge(vif)
    elif vif.type == VIFType.OVS:
        iface = _ovs(vif)
    elif vif.type in (VIFType.TAP, VIFType.ETHERNET):
        iface = element("interface", type="ethernet")
    elif vif.type == VIFType.OTHER and LIBVIRT_NETWORK_DETAIL in vif.details:
        iface = _network(vif)
    else:
        raise InvalidVIF(
            vif_id=vif.id,
            field="type",
            reason=f"{vif.type!r} cannot be plugged here (bridge, ovs, tap, ethernet, "
            f"or other with details[{LIBVIRT_NETWORK_DETAIL!r}])",
        )
    sub(iface, "mac", address=vif.address)
    sub(iface, "model", type=vif_model(vif, props))
    sub(iface, "target", dev=tap_name(vif))
    mtu = vif.network.mtu if vif.network is not None else None
    if mtu is not None:
        if not 68 <= mtu <= 65535:
            raise InvalidVIF(vif_id=vif.id, field="network.mtu", reason=f"{mtu} is out of range")
        sub(iface, "mtu", size=str(mtu))
    if filtered_for is not None:
        sub(iface, "filterref", filter=interface_filter_name(filtered_for, vif.address))
    return iface


def bridge_name(vif: VIF) -> str:
    """The bridge `vif` plugs into (`network.bridge`); `InvalidVIF` when missing or not a
    Linux interface name."""
    bridge = vif.network.bridge if vif.network is not None else None
    if not bridge:
        raise InvalidVIF(vif_id=vif.id, field="network.bridge", reason="is missing")
    if not _IFNAME.fullmatch(bridge):
        raise InvalidVIF(
            vif_id=vif.id, field="network.bridge", reason=f"{bridge!r} is not a bridge name"
        )
    return bridge


def ovs_interface_id(vif: VIF) -> str:
    """The port id an Open vSwitch port of `vif` carries (`ovs_interfaceid`, else the VIF's
    id), as the UUID libvirt and the Neutron agent take; `InvalidVIF` otherwise."""
    interface_id = vif.ovs_interfaceid or vif.id
    try:
        return str(uuid.UUID(interface_id))
    except ValueError:
        raise InvalidVIF(
            vif_id=vif.id, field="ovs_interfaceid", reason=f"{interface_id!r} is not a UUID"
        ) from None


def _bridge(vif: VIF) -> ET.Element:
    iface = element("interface", type="bridge")
    sub(iface, "source", bridge=bridge_name(vif))
    return iface


def _ovs(vif: VIF) -> ET.Element:
    hybrid = vif.details.get(OVS_HYBRID_PLUG_DETAIL, "false")
    if hybrid.lower() not in ("false", "0", "no"):
        raise InvalidVIF(
            vif_id=vif.id,
            field=f"details[{OVS_HYBRID_PLUG_DETAIL!r}]",
            reason=f"{hybrid!r}: the hybrid plug (a Linux bridge per port) is not supported, "
            "only a direct Open vSwitch port",
        )
    interface_id = ovs_interface_id(vif)
    iface = _bridge(vif)
    port = sub(iface, "virtualport", type="openvswitch")
    sub(port, "parameters", interfaceid=interface_id)
    return iface


def _network(vif: VIF) -> ET.Element:
    name = checked(vif.details[LIBVIRT_NETWORK_DETAIL], "libvirt network name")
    if not _NETWORK_NAME.fullmatch(name):
        raise InvalidVIF(
            vif_id=vif.id,
            field=f"details[{LIBVIRT_NETWORK_DETAIL!r}]",
            reason=f"{name!r} is not a libvirt network name",
        )
    iface = element("interface", type="network")
    sub(iface, "source", network=name)
    return iface
