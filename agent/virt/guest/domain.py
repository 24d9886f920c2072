"""`Guest`: one libvirt domain and the verbs that act on it, with no policy.

In the spirit of nova's `libvirt/guest.py`: small blocking methods, one libvirt call each (or
a few), values passed in by the caller, nothing read from configuration. A `Guest` wraps a
`virDomain` of one connection, so it lives only inside one `Host.run` call (after a reconnect
the domain object belongs to a dead connection):

    await host.run_on(uuid, lambda conn: Guest.lookup(conn, uuid).pause())
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import libvirt
import libvirt_qemu

from agent.virt.libvirt_errors import flags_refused, has_code, is_domain_gone

BASIC_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
)
UNDEFINE_FLAGS = (
    BASIC_UNDEFINE_FLAGS
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
)


class Guest:
    """One domain. Every method blocks; libvirt errors propagate unchanged to `Host.run_on`,
    which translates them (a missing domain is `InstanceNotFound` there)."""

    def __init__(self, dom: libvirt.virDomain) -> None:
        self._dom = dom

    # --- finding and defining ------------------------------------------------------------

    @classmethod
    def lookup(cls, conn: libvirt.virConnect, uuid: str) -> Guest:
        return cls(conn.lookupByUUIDString(uuid))

    @classmethod
    def find(cls, conn: libvirt.virConnect, uuid: str) -> Guest | None:
        """The domain `uuid`, or None if libvirt has none."""
        try:
            return cls.lookup(conn, uuid)
        except libvirt.libvirtError as exc:
            if is_domain_gone(exc):
                return None
            raise

    @classmethod
    def define(cls, conn: libvirt.virConnect, xml: str) -> Guest:
        """Define a persistent domain from `xml` (it does not start)."""
        return cls(conn.defineXML(xml))

    @property
    def uuid(self) -> str:
        return str(self._dom.UUIDString())

    @property
    def name(self) -> str:
        return str(self._dom.name())

    # --- state ---------------------------------------------------------------------------

    def is_active(self) -> bool:
        return bool(self._dom.isActive())

    def is_persistent(self) -> bool:
        """Whether the domain has a definition (a transient one exists only while it runs)."""
        return bool(self._dom.isPersistent())

    def state(self) -> int:
        """libvirt's `virDomainState`."""
        return int(self._dom.state()[0])

    def has_managed_save(self) -> bool:
        return bool(self._dom.hasManagedSaveImage(0))

    # --- power ---------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the defined domain (from its managed save image, if it has one)."""
        self._dom.create()

    def poweroff(self) -> None:
        """Pull the plug (`virDomainDestroy`)."""
        self._dom.destroy()

    def request_shutdown(self) -> None:
        """Press the ACPI power button; the guest decides what happens. A driver without one
        (libvirt's test driver) gets its own clean shutdown request instead."""
        try:
            self._dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            if not flags_refused(exc):
                raise
            self._dom.shutdownFlags(0)

    def pause(self) -> None:
        self._dom.suspend()

    def resume(self) -> None:
        self._dom.resume()

    def inject_nmi(self) -> None:
        """A non-maskable interrupt to the guest (`virDomainInjectNMI`; QEMU's `inject-nmi`)."""
        self._dom.injectNMI(0)

    def save_memory_state(self) -> None:
        """Managed save: memory to disk, QEMU stopped; `launch` restores it."""
        self._dom.managedSave(0)

    def remove_managed_save(self) -> None:
        self._dom.managedSaveRemove(0)

    def undefine(self) -> None:
        """Remove the definition, with its managed save, snapshot metadata and NVRAM."""
        try:
            self._dom.undefineFlags(UNDEFINE_FLAGS)
        except libvirt.libvirtError as exc:
            # A driver without NVRAM or checkpoints (libvirt's test driver) refuses those
            # flags as unsupported; it then has none of either to remove.
            if not flags_refused(exc):
                raise
            self._dom.undefineFlags(BASIC_UNDEFINE_FLAGS)

    # --- configuration -------------------------------------------------------------------

    def xml_desc(self, inactive: bool = False) -> str:
        return str(self._dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))

    def config(self, inactive: bool = False) -> ET.Element:
        return ET.fromstring(self.xml_desc(inactive))

    def attach_device(self, xml: str, live: bool) -> None:
        """Attach to the persistent config, and to the running domain when `live`."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if live:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._dom.attachDeviceFlags(xml, flags)

    def attach_device_to(self, xml: str, live: bool) -> None:
        """Attach to the running guest only (`live`) or to its definition only."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        self._dom.attachDeviceFlags(xml, flags)

    def update_device(self, xml: str, live: bool) -> None:
        """Change a device in place: in the running guest (`live`) or its definition."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        self._dom.updateDeviceFlags(xml, flags)

    def detach_device(self, xml: str, live: bool) -> None:
        """Ask to detach from the running domain (`live`: the guest must let go; libvirt
        returns before it does) or from the persistent config."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        self._dom.detachDeviceFlags(xml, flags)

    def set_metadata(self, fragment: str, key: str, uri: str) -> None:
        """Replace the `<metadata>` element of namespace `uri` (config, and live if running;
        a transient domain has only its live one)."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if self.is_active() else 0
        if self.is_persistent():
            flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
        self._dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, fragment, key, uri, flags)

    def get_metadata(self, uri: str) -> str | None:
        """The `<metadata>` element of namespace `uri` in the persistent config (the live
        one of a transient domain), or None."""
        scope = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if not self.is_persistent():
            scope = libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            return str(self._dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, uri, scope))
        except libvirt.libvirtError as exc:
            if has_code(exc, libvirt.VIR_ERR_NO_DOMAIN_METADATA):
                return None
            raise

    # --- block jobs ----------------------------------------------------------------------

    def block_copy(self, disk: str, dest_xml: str) -> None:
        """Start copying `disk` into the existing destination `dest_xml` describes; the job
        ends with the guest, so a persistent domain may run one."""
        flags = (
            libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        )
        self._dom.blockCopy(disk, dest_xml, None, flags)

    def block_job_done(self, disk: str) -> bool:
        """Whether the block job on `disk` has copied everything (mirroring from then on)."""
        job = self._dom.blockJobInfo(disk, 0)
        return bool(job) and job.get("end", 0) > 0 and job.get("cur") == job.get("end")

    def block_job_abort(self, disk: str, pivot: bool) -> None:
        """End the job on `disk`: `pivot` switches the guest to the copy."""
        self._dom.blockJobAbort(disk, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT if pivot else 0)

    def block_resize(self, disk: str, size_bytes: int) -> None:
        self._dom.blockResize(disk, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    # --- counters ------------------------------------------------------------------------

    def info(self) -> tuple[int, int, int, int, int]:
        """(state, max memory KiB, memory KiB, vCPUs, CPU time ns)."""
        state, max_mem, mem, vcpus, cpu_time = self._dom.info()
        return (state, max_mem, mem, vcpus, cpu_time)

    def block_stats(self, disk: str) -> list[int]:
        """[read requests, read bytes, write requests, write bytes, errors] of `disk`."""
        return [int(v) for v in self._dom.blockStats(disk)]

    def interface_stats(self, device: str) -> list[int]:
        """[rx bytes, packets, errors, drops, tx bytes, packets, errors, drops] of `device`."""
        return [int(v) for v in self._dom.interfaceStats(device)]

    def vcpu_times(self) -> list[int]:
        """CPU time in ns of each vCPU (running domains only)."""
        infos, _pins = self._dom.vcpus()
        return [int(info[2]) for info in infos]

    def memory_stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._dom.memoryStats().items()}

    # --- guest agent ---------------------------------------------------------------------

    def agent_command(self, command: dict[str, Any], timeout: int) -> dict[str, Any]:
        """A QEMU guest agent command and its decoded reply."""
        reply = libvirt_qemu.qemuAgentCommand(self._dom, json.dumps(command), timeout, 0)
        decoded = json.loads(reply)
        assert isinstance(decoded, dict)
        return decoded
