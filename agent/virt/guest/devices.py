"""Attaching and detaching a guest's volumes and interfaces.

Attach changes the persistent config and, when the guest runs, the live domain in one libvirt
call (libvirt applies the live change first and leaves the config alone if it fails).

Detach is a request the guest must honour: libvirt returns at once and reports the end with a
DEVICE_REMOVED event. `detach_device` asks, then waits for the event (fed by `DeviceEvents`)
while checking the live XML every `poll` seconds (the XML is the truth; the event is the fast
path), asks again every `attempt_timeout`, and gives up with `DeviceDetachFailed` at the
deadline. Only once the live device is gone is it removed from the persistent config, so a
guest that never lets go keeps a consistent definition.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from agent.virt.guest.device_events import REMOVED, DeviceEvents, DeviceWait
from agent.virt.guest.domain import Guest
from agent.virt.guest.errors import DeviceDetachFailed, DeviceNotAttached, GuestConfigError
from agent.virt.guest.info import alias_of
from agent.virt.host import Host
from agent.virt.libvirt_errors import has_code

log = logging.getLogger(__name__)

Finder = Callable[[ET.Element], ET.Element | None]
# QEMU's answer to a second unplug request while the first is pending.
_UNPLUG_PENDING = "already in the process of unplug"


@dataclass(slots=True, frozen=True)
class DetachTiming:
    timeout: float  # the whole wait
    attempt_timeout: float  # between two requests
    poll: float  # between two looks at the live XML


async def attach_device(host: Host, uuid: str, xml: str, label: str, find: Finder) -> None:
    """Attach `xml` (a device `find` locates once attached) to the running guest and its
    definition. Idempotent: where `find` finds the same device already (same source: an
    attach the agent was stopped in the middle of, or sent again), only what is missing is
    attached; a different device there is `GuestConfigError` (the name `label` is taken)."""
    wanted = ET.fromstring(xml)

    def job(conn: libvirt.virConnect) -> None:
        guest = Guest.lookup(conn, uuid)
        active = guest.is_active()
        live = find(guest.config()) if active else None
        config = find(guest.config(inactive=True))
        for found in (live, config):
            if found is not None and not same_device(found, wanted):
                raise GuestConfigError(uuid=uuid, reason=f"{label} is already attached")
        if live is None and config is None:
            guest.attach_device(xml, live=active)
            return
        if active and live is None:
            guest.attach_device_to(xml, live=True)
        if config is None:
            guest.attach_device_to(xml, live=False)
        log.info("%s of %s was attached already: completed", label, uuid)

    await host.run_on(uuid, job)


def same_device(found: ET.Element, wanted: ET.Element) -> bool:
    """Whether a device libvirt has is the one `wanted` describes: the same kind, source and
    serial, or (an interface) the same MAC address. libvirt adds aliases, addresses and
    defaults to what it keeps, so the whole XML never compares equal."""
    if found.tag != wanted.tag or found.get("type") != wanted.get("type"):
        return False
    if found.tag == "interface":
        return (
            _attrib(found, "mac").get("address", "").lower()
            == _attrib(wanted, "mac").get("address", "").lower()
        )
    return _subtree(found.find("source")) == _subtree(wanted.find("source")) and (
        found.findtext("serial") == wanted.findtext("serial")
    )


def _attrib(element: ET.Element, tag: str) -> dict[str, str]:
    node = element.find(tag)
    return {} if node is None else dict(node.attrib)


def _subtree(node: ET.Element | None) -> object:
    if node is None:
        return None
    # libvirt fills in attributes of its own (index=...); compare what the request set.
    attrib = {k: v for k, v in node.attrib.items() if k != "index"}
    return (node.tag, sorted(attrib.items()), tuple(_subtree(child) for child in node))


async def detach_device(
    host: Host,
    events: DeviceEvents | None,
    uuid: str,
    label: str,
    find: Finder,
    timing: DetachTiming,
) -> None:
    """Detach the device `find` locates (named `label` in errors); see the module docstring.
    `DeviceNotAttached` if the guest has no such device."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.timeout
    live, config, active = await host.run_on(uuid, _read, uuid, find)
    if live is None and config is None:
        raise DeviceNotAttached(uuid=uuid, device=label)
    if active and live is not None:
        alias = alias_of(live)
        wait = events.expect(uuid, alias) if events is not None and alias else None
        try:
            await _detach_live(host, wait, uuid, label, find, live, timing, deadline)
        finally:
            if wait is not None:
                wait.close()
    if config is not None:
        config_xml = ET.tostring(config, encoding="unicode")
        await host.run_on(
            uuid, lambda conn: Guest.lookup(conn, uuid).detach_device(config_xml, False)
        )
    log.info("detached %s from %s", label, uuid, extra={"instance_uuid": uuid})


async def _detach_live(
    host: Host,
    wait: DeviceWait | None,
    uuid: str,
    label: str,
    find: Finder,
    live: ET.Element,
    timing: DetachTiming,
    deadline: float,
) -> None:
    loop = asyncio.get_running_loop()
    xml = ET.tostring(live, encoding="unicode")
    requests = 0
    while True:
        requests += 1
        if not await host.run_on(uuid, _request_detach, uuid, xml):
            return  # libvirt no longer has it
        next_request = min(loop.time() + timing.attempt_timeout, deadline)
        while loop.time() < next_request:
            step = min(timing.poll, next_request - loop.time())
            if wait is not None:
                if await wait.result(step) == REMOVED:
                    return
            else:
                await asyncio.sleep(step)
            still, _config, _active = await host.run_on(uuid, _read, uuid, find)
            if still is None:
                return
        if loop.time() >= deadline:
            raise DeviceDetachFailed(
                uuid=uuid,
                device=label,
                reason=f"still attached after {requests} requests over {timing.timeout}s",
            )


def _read(
    conn: libvirt.virConnect, uuid: str, find: Finder
) -> tuple[ET.Element | None, ET.Element | None, bool]:
    guest = Guest.lookup(conn, uuid)
    active = guest.is_active()
    live = find(guest.config()) if active else None
    return live, find(guest.config(inactive=True)), active


def _request_detach(conn: libvirt.virConnect, uuid: str, xml: str) -> bool:
    """Ask for a live detach; False when libvirt says the device is gone already."""
    try:
        Guest.lookup(conn, uuid).detach_device(xml, live=True)
    except libvirt.libvirtError as exc:
        if has_code(exc, libvirt.VIR_ERR_DEVICE_MISSING):
            return False
        if _UNPLUG_PENDING in str(exc):
            return True
        raise
    return True
