"""`LibvirtResizeDriver`: a host's part in resizes and cold migrations, over the Host.

As the source it reads the guest's local files and sends them to the destination's libvirtd
(`agent.virt.resize.transfer`); as the destination it builds the guest on what arrived
(`agent.virt.resize.finish`). Every blocking step goes through the Host's executor.
"""

from __future__ import annotations

from pathlib import Path

import libvirt

from actors.instance.resize_checks import ResizeDestination
from actors.migration.errors import ResizeRefused
from agent.virt.errors import InstancesPathUnavailable
from agent.virt.guest.disks import InstancePaths
from agent.virt.guest.settings import GuestSettings
from agent.virt.guest.spawn import plan_spawn
from agent.virt.host import Host
from agent.virt.images import ImageCache
from agent.virt.migration.disks import LocalFiles, read_local_disks
from agent.virt.resize.finish import run_finish
from agent.virt.resize.transfer import plan_uploads, send_files
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo


class LibvirtResizeDriver:
    """The resize side of the host behind `host`, its guests under `settings.instances_path`
    and its bases in `cache`."""

    def __init__(
        self,
        host: Host,
        settings: GuestSettings,
        cache: ImageCache,
        *,
        filter_interfaces: bool = False,
    ) -> None:
        """`filter_interfaces`: the host's firewall is on (the guest's interfaces name their
        filters, which the instance actor had the firewall actor write first)."""
        self.host = host
        self.settings = settings
        self.cache = cache
        self.filter_interfaces = filter_interfaces

    def instance_dir(self, uuid: str) -> str:
        return str(InstancePaths(self.settings.instances_path, uuid).directory)

    @property
    def image_cache_dir(self) -> str:
        return str(self.cache.cache_path)

    async def local_files(self, uuid: str) -> LocalFiles:
        """The guest's local disks (with their sizes), config drive and cached images;
        `ResizeRefused` for a disk a resize cannot move (not an overlay on a cached image)."""
        paths = InstancePaths(self.settings.instances_path, uuid)
        xml = await self.host.run_on(uuid, lambda conn: conn.lookupByUUIDString(uuid).XMLDesc(0))

        def read() -> LocalFiles:
            try:
                return read_local_disks(xml, paths, self.cache)
            except OSError as exc:
                path = str(paths.directory)
                raise InstancesPathUnavailable(path=path, reason=exc.strerror or str(exc)) from exc

        try:
            return await self.host.run(lambda _conn: read())
        except ValueError as exc:
            raise ResizeRefused(uuid=uuid, reason=str(exc)) from exc

    async def send(self, uuid: str, files: LocalFiles, destination: ResizeDestination) -> list[str]:
        """Send the guest's files to `destination` (the guest must be off); the volume names
        sent. `DiskTransferFailed` after removing what was sent."""
        directory = Path(self.instance_dir(uuid))
        cache_dir = self.cache.cache_path

        def job(_conn: object) -> list[str]:
            return send_files(
                uuid,
                destination,
                lambda cached: plan_uploads(files, directory, cache_dir, cached),
            )

        return await self.host.run(job)

    async def finish(
        self,
        instance: Instance,
        image_meta: ImageMeta,
        block_device_info: BlockDeviceMappingList | None,
        network_info: NetworkInfo | None,
        recovery: bytes,
        arrived: list[str],
        resize_disks: bool,
        power_on: bool,
    ) -> None:
        """Define (and start) `instance` (its new flavor) here on the files that `arrived`."""
        plan = plan_spawn(
            instance,
            image_meta,
            block_device_info,
            network_info,
            recovery,
            self.settings,
            self.cache,
            filter_interfaces=self.filter_interfaces,
        )
        directory = self.instance_dir(instance.uuid)

        def job(conn: libvirt.virConnect) -> None:
            try:
                run_finish(conn, plan, self.cache, arrived, resize_disks, power_on)
            except OSError as exc:  # the files, not libvirt: typed as the instances path's
                reason = exc.strerror or str(exc)
                raise InstancesPathUnavailable(path=directory, reason=reason) from exc

        await self.host.run_on(instance.uuid, job)
