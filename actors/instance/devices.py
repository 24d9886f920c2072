"""The instance actor's device handlers: volumes, interfaces and guest device names.

Attached volumes are the record's block device mappings and attached ports its network
info, so both survive an agent restart in the domain's <metadata> and every change is an
`instance.<uuid>.state` event. Connection info, device names and port names are checked
before the driver is called (`instance_names`).
"""

from __future__ import annotations

import uuid as uuid_module

from actors.instance.errors import (
    DeviceInUse,
    InterfaceAlreadyAttached,
    InterfaceNotAttached,
    VolumeNotAttached,
)
from actors.instance.filtering import FilteringCore
from actors.instance.method import driver_method
from actors.instance.names import (
    check_connection,
    check_vif,
    default_device_names,
    device_name,
)
from actors.instance.names import default_root_device_name as root_device_name_for
from actors.instance.states import Operation
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.enums import (
    BlockDeviceDestinationType,
    BlockDeviceSourceType,
    BlockDeviceType,
)
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.network import VIF, NetworkInfo
from schemas.objects.volume import VolumeConnection, VolumeConnector


class DeviceHandlers(FilteringCore):
    """attach/detach/swap_volume, attach/detach_interface, connector and device names."""

    # --- volumes -----------------------------------------------------------------------------

    @driver_method
    async def attach_volume(
        self, instance: Instance, connection_info: VolumeConnection, mountpoint: str
    ) -> Instance:
        """Attach the volume at `mountpoint` (/dev/vdb): to the running guest and to its
        definition. Refused for a device already in use. The same volume found there without
        a record of it (an attach the agent was stopped in the middle of, sent again) is
        completed and recorded."""
        device = device_name(self.method, self.uuid, mountpoint)
        check_connection(self.uuid, connection_info)
        record = await self._begin(instance)
        driver = self._need_driver()
        if device in self._devices_in_use():
            raise DeviceInUse(uuid=self.uuid, device=device)
        mapping = BlockDeviceMapping(
            uuid=str(uuid_module.uuid4()),
            instance_uuid=self.uuid,
            source_type=BlockDeviceSourceType.VOLUME,
            destination_type=BlockDeviceDestinationType.VOLUME,
            device_type=BlockDeviceType.DISK,
            device_name=f"/dev/{device}",
            volume_id=connection_info.data.volume_id,
            connection_info=connection_info,
        )

        async def attach(op: Operation) -> None:
            await driver.attach_volume(self.uuid, connection_info, f"/dev/{device}")
            mappings = self._mappings()
            mappings.objects.append(mapping)
            await self._commit(block_device_mappings=mappings)

        await self._operate(attach)
        return record.instance.obj_clone()

    @driver_method
    async def detach_volume(
        self, instance: Instance, connection_info: VolumeConnection, mountpoint: str
    ) -> Instance:
        """Detach the volume at `mountpoint`; waits for the guest to let it go (the driver
        retries, and raises a typed error if the guest never does). A volume the guest has
        there without a record of it (an attach the agent was stopped in the middle of) is
        detached too."""
        device = device_name(self.method, self.uuid, mountpoint)
        check_connection(self.uuid, connection_info)
        record = await self._begin(instance)
        driver = self._need_driver()
        try:
            self._attached_volume(device)
        except VolumeNotAttached:
            if not await driver.volume_at(self.uuid, connection_info, f"/dev/{device}"):
                raise

        async def detach(op: Operation) -> None:
            await driver.detach_volume(
                self.uuid, connection_info, f"/dev/{device}", self.settings.detach_timeout
            )
            mappings = self._mappings()
            mappings.objects = [m for m in mappings if _device_of(m) != device]
            await self._commit(block_device_mappings=mappings)

        await self._operate(detach)
        return record.instance.obj_clone()

    @driver_method
    async def swap_volume(
        self,
        instance: Instance,
        old_connection_info: VolumeConnection,
        new_connection_info: VolumeConnection,
        mountpoint: str,
        resize_to: int = 0,
    ) -> Instance:
        """Move the disk at `mountpoint` from the old volume to the new one while the guest
        runs (the data is copied); `resize_to` GiB grows the new one (0: same size)."""
        device = device_name(self.method, self.uuid, mountpoint)
        check_connection(self.uuid, old_connection_info)
        check_connection(self.uuid, new_connection_info)
        if resize_to < 0:
            raise self._bad_argument("resize_to", f"{resize_to} is negative")
        record = await self._begin(instance)
        driver = self._need_driver()
        self._attached_volume(device)

        async def swap(op: Operation) -> None:
            await driver.swap_volume(
                self.uuid, old_connection_info, new_connection_info, f"/dev/{device}", resize_to
            )
            mappings = self._mappings()
            for mapping in mappings:
                if _device_of(mapping) == device:
                    mapping.connection_info = new_connection_info
                    mapping.volume_id = new_connection_info.data.volume_id
            await self._commit(block_device_mappings=mappings)

        await self._operate(swap)
        return record.instance.obj_clone()

    def _mappings(self) -> BlockDeviceMappingList:
        """A copy of the record's mappings to change and commit."""
        assert self.record is not None
        current = self.record.instance.block_device_mappings
        return BlockDeviceMappingList() if current is None else current.obj_clone()

    def _devices_in_use(self) -> set[str]:
        assert self.record is not None
        instance = self.record.instance
        in_use = {_device_of(m) for m in self._mappings()}
        root = instance.root_device_name or "/dev/vda"
        in_use.add(root.removeprefix("/dev/"))
        return in_use

    def _attached_volume(self, device: str) -> BlockDeviceMapping:
        for mapping in self._mappings():
            if mapping.is_volume and _device_of(mapping) == device:
                return mapping
        raise VolumeNotAttached(uuid=self.uuid, device=device)

    # --- interfaces --------------------------------------------------------------------------

    @driver_method
    async def attach_interface(
        self, instance: Instance, vif: VIF, image_meta: ImageMeta | None = None
    ) -> Instance:
        """Plug port `vif` into the guest (NIC model from `image_meta`, else the image the
        guest was built from). Refused for a port already attached."""
        check_vif(self.method, self.uuid, vif)
        record = await self._begin(instance)
        driver = self._need_driver()
        if any(v.id == vif.id for v in self._vifs()):
            raise InterfaceAlreadyAttached(uuid=self.uuid, port=vif.id)
        image = image_meta if image_meta is not None else record.image_meta

        async def attach(op: Operation) -> None:
            vifs = self._vifs()
            vifs.objects.append(vif)
            # The new interface names its filter: it must exist first.
            await self._filter(vifs)
            try:
                await driver.attach_interface(self.uuid, vif, image)
            except BaseException:
                await self._unfilter_macs_quietly([vif.address])
                raise
            await self._commit(network_info=vifs)

        await self._operate(attach)
        return record.instance.obj_clone()

    @driver_method
    async def detach_interface(self, instance: Instance, vif: VIF) -> Instance:
        """Unplug port `vif` (matched by its id); waits for the guest to let it go."""
        record = await self._begin(instance)
        driver = self._need_driver()
        attached = next((v for v in self._vifs() if v.id == vif.id), None)
        if attached is None:
            raise InterfaceNotAttached(uuid=self.uuid, port=vif.id)

        async def detach(op: Operation) -> None:
            await driver.detach_interface(self.uuid, attached, self.settings.detach_timeout)
            vifs = self._vifs()
            vifs.objects = [v for v in vifs if v.id != vif.id]
            await self._commit(network_info=vifs)
            await self._unfilter_macs_quietly([attached.address])

        await self._operate(detach)
        return record.instance.obj_clone()

    def _vifs(self) -> NetworkInfo:
        assert self.record is not None
        current = self.record.instance.network_info
        return NetworkInfo() if current is None else current.obj_clone()

    # --- device names and the connector ------------------------------------------------------

    @driver_method
    async def get_volume_connector(self, instance: Instance) -> VolumeConnector:
        """This host as a storage initiator, for the volume service's connection info."""
        self._check_target(instance)
        return await self._need_driver().volume_connector(instance)

    @driver_method
    async def default_root_device_name(
        self,
        instance: Instance,
        image_meta: ImageMeta,
        root_bdm: BlockDeviceMapping | None = None,
    ) -> str:
        """The root disk's device: /dev/vda for virtio, /dev/sda for SCSI/SATA/USB, /dev/hda
        for IDE (the root mapping's bus first, then the image's hw_disk_bus)."""
        self._check_target(instance)
        return root_device_name_for(image_meta, root_bdm)

    @driver_method
    async def default_device_names_for_instance(
        self,
        instance: Instance,
        root_device_name: str,
        block_device_mappings: BlockDeviceMappingList,
    ) -> BlockDeviceMappingList:
        """`block_device_mappings` with a device name for each that has none."""
        self._check_target(instance)
        root = f"/dev/{device_name(self.method, self.uuid, root_device_name)}"
        return default_device_names(root, block_device_mappings)


def _device_of(mapping: BlockDeviceMapping) -> str:
    return (mapping.device_name or "").removeprefix("/dev/")
