"""Real libvirtd + QEMU can define, start and destroy a TCG domain on this machine."""

from __future__ import annotations

import uuid

import libvirt
import pytest

pytestmark = pytest.mark.libvirt_qemu


def firmware_only_domain_xml(name: str, domain_uuid: str) -> str:
    # No disk and a network boot: the guest sits in firmware, enough for lifecycle tests.
    return f"""
<domain type='qemu'>
  <name>{name}</name>
  <uuid>{domain_uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <devices><graphics type='vnc' listen='127.0.0.1' autoport='yes'/></devices>
</domain>"""


def test_qemu_domain_is_defined_started_and_destroyed(qemu_uri: str) -> None:
    domain_uuid = str(uuid.uuid4())
    name = f"virtactor-test-{domain_uuid[:8]}"
    conn = libvirt.open(qemu_uri)
    try:
        dom = conn.defineXML(firmware_only_domain_xml(name, domain_uuid))
        try:
            dom.create()
            state, _reason = dom.state()
            assert state == libvirt.VIR_DOMAIN_RUNNING
            assert dom.UUIDString() == domain_uuid
            dom.destroy()
            state, reason = dom.state()
            assert (state, reason) == (
                libvirt.VIR_DOMAIN_SHUTOFF,
                libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED,
            )
        finally:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    finally:
        conn.close()
