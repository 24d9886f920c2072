"""Pointing a guest's interfaces at their network filters, or at none, without restarting it.

`set_interface_filters` runs in one `Host.run_on` job: for each interface of the given MACs,
in the running guest and in its persistent definition, it sets (or removes) the
`<filterref>` and updates the device in place (libvirt tears down the old filter's rules
and instantiates the new ones on the live tap). A filter must exist before an interface
names it; it can be removed only once no running interface names it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

import libvirt

from agent.virt.firewall.filters import interface_filter_name
from agent.virt.guest.domain import Guest
from agent.virt.guest.elements import sub, to_xml
from agent.virt.guest.info import find_interface


def set_interface_filters(
    conn: libvirt.virConnect, uuid: str, macs: Iterable[str], filtered: bool
) -> list[str]:
    """Make the interfaces of `macs` reference their filters (`filtered`) or none; the MACs
    whose interface changed (in the guest or its definition). No domain: nothing."""
    guest = Guest.find(conn, uuid)
    if guest is None:
        return []
    changed: set[str] = set()
    views = [(False, guest.is_persistent())]
    if guest.is_active():
        views.append((True, True))
    for live, present in views:
        if not present:
            continue
        config = guest.config(inactive=not live)
        for mac in macs:
            iface = find_interface(config, mac)
            if iface is None:
                continue
            wanted = interface_filter_name(uuid, mac) if filtered else None
            if _filter_of(iface) == wanted:
                continue
            for ref in iface.findall("filterref"):
                iface.remove(ref)
            if wanted is not None:
                sub(iface, "filterref", filter=wanted)
            guest.update_device(to_xml(iface), live=live)
            changed.add(mac.lower())
    return sorted(changed)


def _filter_of(iface: ET.Element) -> str | None:
    ref = iface.find("filterref")
    return None if ref is None else ref.get("filter")
