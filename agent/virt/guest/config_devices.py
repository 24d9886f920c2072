"""The devices of a domain that are neither disks nor NICs: consoles, graphics, controllers.

- Serial console: a pty (for `get_serial_console` and `virsh console`) whose output libvirt
  also appends to a log file (`<log file=... append='on'>`), which `get_console_output`
  tails. The guest's `console=ttyS0` is this port.
- VNC graphics on the configured listen address, autoport, with a video card; SPICE graphics
  the same way when enabled.
- The QEMU guest agent channel when the image says it has an agent (`hw_qemu_guest_agent`).
- A virtio RNG (`hw_rng_model`), a USB tablet (`hw_pointer_model=usbtablet`), a SCSI
  controller (`hw_scsi_model`, or any disk on the scsi bus), and a virtio memory balloon.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from agent.virt.guest.elements import element, sub
from agent.virt.guest.errors import GuestConfigError
from agent.virt.guest.settings import GuestSettings
from schemas.objects.enums import SCSIModel
from schemas.objects.image import ImageMetaProps

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
MEMBALLOON_STATS_PERIOD = "10"  # seconds; feeds the memory numbers of get_diagnostics


def console_devices(console_log: str | None) -> list[ET.Element]:
    """`<serial type='pty'>` on port 0 (logged to `console_log` when given) and its
    `<console>`."""
    serial = element("serial", type="pty")
    if console_log is not None:
        # append: a hard reboot or a restart must not wipe what the guest printed before.
        sub(serial, "log", file=console_log, append="on")
    sub(serial, "target", port="0")
    console = element("console", type="pty")
    sub(console, "target", type="serial", port="0")
    return [serial, console]


def extra_devices(
    uuid: str, props: ImageMetaProps, settings: GuestSettings, disks: Sequence[ET.Element]
) -> list[ET.Element]:
    """Controllers, input, graphics, video, channels, RNG and balloon, in libvirt's order."""
    devices: list[ET.Element] = []
    scsi_disk = any(
        target.get("bus") == "scsi" for disk in disks if (target := disk.find("target")) is not None
    )
    if props.hw_scsi_model is not None or scsi_disk:
        devices.append(
            element("controller", type="scsi", index="0", model=_scsi_model(props.hw_scsi_model))
        )
    if props.hw_pointer_model is not None:
        if props.hw_pointer_model != "usbtablet":
            raise GuestConfigError(
                uuid=uuid, reason=f"hw_pointer_model {props.hw_pointer_model!r} is not usbtablet"
            )
        devices.append(element("input", type="tablet", bus="usb"))
    if settings.vnc_enabled:
        graphics = element("graphics", type="vnc", autoport="yes", listen=settings.vnc_listen)
        sub(graphics, "listen", type="address", address=settings.vnc_listen)
        devices.append(graphics)
    if settings.spice_enabled:
        graphics = element("graphics", type="spice", autoport="yes", listen=settings.spice_listen)
        sub(graphics, "listen", type="address", address=settings.spice_listen)
        devices.append(graphics)
    if settings.vnc_enabled or settings.spice_enabled:
        video = element("video")
        sub(video, "model", type=props.hw_video_model or "vga")
        devices.append(video)
    if props.hw_qemu_guest_agent:
        channel = element("channel", type="unix")
        sub(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
        devices.append(channel)
    if props.hw_rng_model is not None:
        if props.hw_rng_model != "virtio":
            raise GuestConfigError(
                uuid=uuid, reason=f"hw_rng_model {props.hw_rng_model!r} is not virtio"
            )
        rng = element("rng", model="virtio")
        sub(rng, "backend", "/dev/urandom", model="random")
        devices.append(rng)
    balloon = element("memballoon", model="virtio")
    sub(balloon, "stats", period=MEMBALLOON_STATS_PERIOD)
    devices.append(balloon)
    return devices


def _scsi_model(model: str | None) -> str:
    # nova's default: virtio-scsi, the one model every Linux guest drives.
    return SCSIModel.VIRTIO_SCSI.value if model is None else model
