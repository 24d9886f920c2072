"""SPICE graphics in the domain XML when enabled, and its ports read back from libvirt's XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from agent.virt.guest.config_devices import extra_devices
from agent.virt.guest.info import spice_ports
from agent.virt.guest.settings import GuestSettings
from schemas.objects import ImageMetaProps
from tests.agent.virt.guest import samples

UUID = "aaaaaaaa-0000-4000-8000-000000000001"


def devices(**overrides: object) -> list[ET.Element]:
    settings: GuestSettings = samples.settings(Path("/srv/virtactor"), **overrides)
    return extra_devices(UUID, ImageMetaProps(), settings, [])


def test_spice_is_off_by_default_and_vnc_keeps_its_video_card() -> None:
    found = devices()
    assert [g.get("type") for g in found if g.tag == "graphics"] == ["vnc"]
    assert [d.tag for d in found].count("video") == 1


def test_enabled_spice_listens_on_its_address_beside_vnc_with_one_video_card() -> None:
    found = devices(spice_enabled=True, spice_listen="192.0.2.7")
    graphics = [g for g in found if g.tag == "graphics"]
    assert [g.get("type") for g in graphics] == ["vnc", "spice"]
    spice = graphics[1]
    assert spice.attrib == {"type": "spice", "autoport": "yes", "listen": "192.0.2.7"}
    listen = spice.find("listen")
    assert listen is not None and listen.get("address") == "192.0.2.7"
    assert [d.tag for d in found].count("video") == 1


def test_spice_alone_still_gets_a_video_card() -> None:
    found = devices(spice_enabled=True, vnc_enabled=False)
    assert [g.get("type") for g in found if g.tag == "graphics"] == ["spice"]
    assert [d.tag for d in found].count("video") == 1


def test_the_ports_libvirt_allocated_are_read_back() -> None:
    live = ET.fromstring(
        "<domain><devices><graphics type='vnc' port='5900'/>"
        "<graphics type='spice' port='5901' tlsPort='-1' listen='127.0.0.1'/></devices></domain>"
    )
    assert spice_ports(live) == ("127.0.0.1", 5901, None)
    inactive = ET.fromstring(
        "<domain><devices><graphics type='spice' port='-1'/></devices></domain>"
    )
    assert spice_ports(inactive) == (None, None, None)
    assert spice_ports(ET.fromstring("<domain><devices/></domain>")) == (None, None, None)
