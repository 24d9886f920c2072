"""The instance actor's share of the rest of the ComputeDriver contract (RPC API 1.1): disk
info and device names, the crash-dump NMI, a snapshot's leftovers, the newer diagnostics
name, the port binding host, and the instance methods this hypervisor does not do, each
refused with its reason (`REFUSALS`).
"""

from __future__ import annotations

import json
from typing import Final, NoReturn

from actors.instance.core import InstanceCore
from actors.instance.errors import DeviceInUse, NotSupported
from actors.instance.method import driver_method
from actors.instance.names import (
    DEFAULT_PREFIX,
    DEVICE,
    bus_prefix,
    check_image_id,
    device_name,
    next_device_name,
)
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.enums import PowerState
from schemas.objects.instance import Instance
from schemas.objects.virt import Diagnostics

REFUSALS: Final[dict[str, str]] = {
    "get_rdp_console": "RDP is Hyper-V's console; a QEMU guest has VNC and serial consoles",
    "get_mks_console": "MKS is VMware's console protocol; a QEMU guest has VNC and serial",
    "set_bootable": (
        "a libvirt guest boots from its definition's root disk; rescue boots another disk "
        "without marking volumes bootable"
    ),
    "pre_block_migration": (
        "obsolete in nova: pre_live_migration with block_migration prepares the "
        "destination's disks (overlays on the cached base) before the copy"
    ),
}


class ContractHandlers(InstanceCore):
    """instance_on_disk, get_instance_disk_info, get_device_name_for_instance,
    trigger_crash_dump, post_interrupted_snapshot_cleanup, get_instance_diagnostics,
    network_binding_host_id, and the refusals."""

    # --- files and disks ---------------------------------------------------------------------

    @driver_method
    async def instance_on_disk(self, instance: Instance) -> bool:
        """Whether the instance's files are reachable here: its directory exists on this
        host's disk (or a shared one) and is writable, as nova asks before an evacuation.
        The instance need not have a domain here."""
        self._check_target(instance)
        return await self._need_driver().instance_on_disk(self.uuid)

    @driver_method
    async def get_instance_disk_info(
        self, instance: Instance, block_device_info: BlockDeviceMappingList | None = None
    ) -> str:
        """nova's JSON list of the guest's local disks (attached volumes left out, those of
        the record and of `block_device_info`): type, path, virt_disk_size, backing_file,
        disk_size, over_committed_disk_size (bytes)."""
        volumes = {
            device_name(self.method, self.uuid, m.device_name)
            for m in (block_device_info or [])
            if m.is_volume and m.device_name
        }
        record = await self._begin(instance)
        volumes.update(
            _target(m) for m in record.instance.block_device_mappings or [] if m.is_volume
        )
        disks = await self._need_driver().disk_info(self.uuid, sorted(volumes))
        return json.dumps(disks)

    @driver_method
    async def get_device_name_for_instance(
        self,
        instance: Instance,
        bdms: BlockDeviceMappingList | None = None,
        block_device_obj: BlockDeviceMapping | None = None,
    ) -> str:
        """The device a new disk gets: `block_device_obj`'s own name when free, else the
        first free name on its bus (the root disk's bus when it names none), free of the
        disks the guest has, the record's mappings and `bdms`. /dev/vdb after /dev/vda."""
        wanted = None
        if block_device_obj is not None and block_device_obj.device_name:
            wanted = device_name(self.method, self.uuid, block_device_obj.device_name)
        given = [
            device_name(self.method, self.uuid, m.device_name)
            for m in (bdms or [])
            if m.device_name
        ]
        record = await self._begin(instance)
        used = set(given) | set(await self._need_driver().disk_devices(self.uuid))
        used.update(_target(m) for m in record.instance.block_device_mappings or [])
        root = DEVICE.fullmatch(record.instance.root_device_name or "/dev/vda")
        used.add(root.group(1) if root else "vda")
        if wanted is not None:
            if wanted in used:
                raise DeviceInUse(uuid=self.uuid, device=wanted)
            return f"/dev/{wanted}"
        bus = block_device_obj.disk_bus if block_device_obj is not None else None
        prefix = bus_prefix(bus) if bus else (root.group(2) if root else DEFAULT_PREFIX)
        try:
            return f"/dev/{next_device_name(prefix, used)}"
        except ValueError as exc:
            raise self._bad_argument("block_device_obj", str(exc)) from None

    # --- the guest ---------------------------------------------------------------------------

    @driver_method
    async def trigger_crash_dump(self, instance: Instance) -> None:
        """Send the running guest a non-maskable interrupt: a kernel set to panic or dump on
        an NMI does so (nova's libvirt driver: `virDomainInjectNMI`). The guest must be
        running (`InstanceInvalidState` otherwise)."""
        record = await self._begin(instance)
        if record.instance.power_state != PowerState.RUNNING:
            raise self._invalid_state("power_state", record.instance.power_state)
        await self._need_driver().inject_nmi(self.uuid)

    @driver_method
    async def post_interrupted_snapshot_cleanup(
        self, instance: Instance, image_id: str
    ) -> list[str]:
        """Remove what snapshot `image_id` of the instance left when it was interrupted
        (the agent stopped while qemu-img copied): its partial image files. Returns their
        paths; [] when the snapshot left none."""
        image_id = check_image_id(self.method, self.uuid, image_id)
        self._check_target(instance)
        return await self._need_driver().remove_partial_snapshot(image_id)

    @driver_method
    async def get_instance_diagnostics(self, instance: Instance) -> Diagnostics:
        """nova's later name of `get_diagnostics`: the same `Diagnostics`."""
        self._check_target(instance)
        return await self._need_driver().diagnostics(self.uuid)

    @driver_method
    async def network_binding_host_id(self, instance: Instance) -> str | None:
        """The host the instance's ports are bound to: the instance's host (nova's answer
        for every driver but Ironic's); this agent's host for an instance that names none."""
        self._check_target(instance)
        if instance.obj_attr_is_set("host") and instance.host:
            return str(instance.host)
        return self.host

    # --- refused, each with its reason -------------------------------------------------------

    @driver_method
    async def get_rdp_console(self, instance: Instance) -> NoReturn:
        self._check_target(instance)
        raise NotSupported(operation=self.method, reason=REFUSALS[self.method])

    @driver_method
    async def get_mks_console(self, instance: Instance) -> NoReturn:
        self._check_target(instance)
        raise NotSupported(operation=self.method, reason=REFUSALS[self.method])

    @driver_method
    async def set_bootable(self, instance: Instance, is_bootable: bool) -> NoReturn:
        self._check_target(instance)
        raise NotSupported(operation=self.method, reason=REFUSALS[self.method])

    @driver_method
    async def pre_block_migration(
        self, instance: Instance, disk_info: str | None = None
    ) -> NoReturn:
        self._check_target(instance)
        raise NotSupported(operation=self.method, reason=REFUSALS[self.method])


def _target(mapping: BlockDeviceMapping) -> str:
    return (mapping.device_name or "").removeprefix("/dev/")
