"""`Firewall`: the instances' network filters on one libvirt host, through `Host.run`.

It holds no policy: the caller builds the filters (`agent.virt.firewall.filters`) and says
which to define or remove. It only touches filters named `virtactor-...`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from agent.virt.firewall.errors import InvalidFilterName
from agent.virt.firewall.filters import PREFIX, NWFilter
from agent.virt.guest.elements import element, to_xml

if TYPE_CHECKING:
    import libvirt

    from agent.virt.host import Host

Canonical = tuple[str, tuple[tuple[str, str], ...], str, tuple[Any, ...]]


class Firewall:
    """Defines and removes the `virtactor-` nwfilters of the host `host` is connected to.

    Every call is one `Host.run` (the blocking executor); libvirt's errors come out
    translated (`HypervisorUnavailable`, `HypervisorError`). Cancelling a call stops the
    wait, not the work under way in the executor: the filters written by then stay written,
    and the next `define` finds them equal and leaves them.
    """

    def __init__(self, host: Host) -> None:
        self.host = host

    async def define(self, filters: Sequence[NWFilter]) -> list[str]:
        """Define each filter that is new or whose XML differs from the defined one, in the
        order given (referenced filters first); the names written. An unchanged filter is
        not written: libvirt re-instantiates a filter's rules on every running guest that
        uses it when it is redefined."""
        for flt in filters:
            _ours(flt.name)
        return await self.host.run(_define_changed, list(filters))

    async def undefine(self, names: Iterable[str]) -> list[str]:
        """Remove the named filters that exist, in the order given (referencing filters
        first); the names removed. A filter a running guest's interface uses cannot go
        (libvirt refuses: `HypervisorError`)."""
        wanted = [_ours(name) for name in names]
        return await self.host.run(_undefine, wanted)

    async def defined(self) -> list[str]:
        """The names of the `virtactor-` filters defined on the host, sorted."""
        return await self.host.run(_defined_names)

    async def documents(self) -> dict[str, str]:
        """Every `virtactor-` filter defined on the host: name -> its XML."""
        return await self.host.run(_documents)


def canonical_filter(xml: str) -> Canonical:
    """What two filter documents must share to be the same filter: elements, attributes
    (in any order), text; not the `<uuid>` libvirt adds to the one it keeps."""
    root = ET.fromstring(xml)
    for uuid in root.findall("uuid"):
        root.remove(uuid)
    return _canonical(root)


def _canonical(node: ET.Element) -> Canonical:
    return (
        node.tag,
        tuple(sorted(node.attrib.items())),
        (node.text or "").strip(),
        tuple(_canonical(child) for child in node),
    )


def _ours(name: str) -> str:
    if not name.startswith(PREFIX):
        raise InvalidFilterName(name=name)
    return name


def _by_name(conn: libvirt.virConnect) -> dict[str, libvirt.virNWFilter]:
    return {flt.name(): flt for flt in conn.listAllNWFilters(0)}


def _define_changed(conn: libvirt.virConnect, filters: list[NWFilter]) -> list[str]:
    defined = _by_name(conn)
    written = []
    for flt in filters:
        current = defined.get(flt.name)
        if current is not None and canonical_filter(current.XMLDesc(0)) == canonical_filter(
            flt.xml
        ):
            continue
        # libvirt takes a new definition of an existing filter only with its uuid.
        xml = flt.xml if current is None else _with_uuid(flt.xml, current.UUIDString())
        conn.nwfilterDefineXML(xml)
        written.append(flt.name)
    return written


def _with_uuid(xml: str, uuid: str) -> str:
    root = ET.fromstring(xml)
    root.insert(0, element("uuid", uuid))
    return to_xml(root)


def _undefine(conn: libvirt.virConnect, names: list[str]) -> list[str]:
    defined = _by_name(conn)
    removed = []
    for name in names:
        flt = defined.get(name)
        if flt is not None:
            flt.undefine()
            removed.append(name)
    return removed


def _documents(conn: libvirt.virConnect) -> dict[str, str]:
    return {name: flt.XMLDesc(0) for name, flt in _by_name(conn).items() if name.startswith(PREFIX)}


def _defined_names(conn: libvirt.virConnect) -> list[str]:
    return sorted(name for name in _by_name(conn) if name.startswith(PREFIX))
