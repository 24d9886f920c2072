"""`LibvirtInstanceDriver`: the `InstanceDriver` of the instance actor, on libvirt and QEMU.

The mechanics of one guest, no policy: the instance actor decides what may happen when; this
driver does it, each blocking step through the Host (`Host.run`, the agent's one thread pool),
and leaves nothing half-done. Waits for a guest (clean shutdown, soft reboot) look at the
domain's state every `state_poll_interval` until their deadline. A domain that does not exist
is `InstanceNotFound` everywhere but in `destroy`, where it is success with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from agent.errors import NotSupported
from agent.virt import reports, vif_plug
from agent.virt.guest.device_events import DeviceEvents
from agent.virt.guest.devices import DetachTiming, attach_device, detach_device, same_device
from agent.virt.guest.disk_info import (
    directory_writable,
    disk_info,
    disk_targets,
    local_disks,
    remove_partial_snapshots,
)
from agent.virt.guest.disks import InstancePaths, parse_device_name
from agent.virt.guest.domain import Guest
from agent.virt.guest.elements import to_xml
from agent.virt.guest.errors import ConsoleUnavailable, GuestConfigError, SnapshotFailed
from agent.virt.guest.info import (
    console_log_path,
    diagnostics,
    disk_source_file,
    find_disk,
    find_interface,
    has_agent_channel,
    read_tail,
    serial_pty,
    spice_ports,
    vnc_port,
)
from agent.virt.guest.interface_filters import set_interface_filters
from agent.virt.guest.metadata import (
    RECOVERY_NS,
    RECOVERY_PREFIX,
    parse_recovery,
    recovery_fragment,
)
from agent.virt.guest.rescue import plan_rescue, run_block_copy, run_rescue, run_unrescue
from agent.virt.guest.settings import GuestSettings
from agent.virt.guest.snapshot import convert_to_qcow2
from agent.virt.guest.spawn import plan_spawn, remove_instance_files, run_spawn
from agent.virt.host import Host
from agent.virt.images import ImageCache, check_id
from agent.virt.libvirt_errors import is_domain_gone, is_wrong_state
from agent.virt.power_state import power_state_of
from agent.virt.qemu_img import QemuImgError
from agent.virt.vifs import interface_element
from agent.virt.volumes import volume_disk_element
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.enums import ConsoleType, PowerState
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.network import VIF, NetworkInfo
from schemas.objects.virt import ConsoleInfo, Diagnostics, InstanceInfo
from schemas.objects.volume import VolumeConnection, VolumeConnector

log = logging.getLogger(__name__)

Progress = Callable[[int], Awaitable[None]]


class LibvirtInstanceDriver:
    """The instance actor's driver over `host`. `device_events`, fed by the Host's listener
    (`guest_events.TeeListener`), makes detaches end on DEVICE_REMOVED instead of the next
    look at the domain XML."""

    def __init__(
        self,
        host: Host,
        settings: GuestSettings,
        image_cache: ImageCache,
        device_events: DeviceEvents | None = None,
        *,
        filter_interfaces: bool = False,
    ) -> None:
        """`filter_interfaces`: the host's firewall is on; every interface built references
        its network filter (`agent.virt.vifs`)."""
        self.host = host
        self.settings = settings
        self.image_cache = image_cache
        self.device_events = device_events
        self.filter_interfaces = filter_interfaces

    # --- lifecycle -----------------------------------------------------------------------

    async def spawn(
        self,
        instance: Instance,
        image_meta: ImageMeta,
        block_device_info: BlockDeviceMappingList | None,
        network_info: NetworkInfo | None,
        recovery: bytes,
        injected_files: Sequence[tuple[str, bytes]] = (),
        admin_password: str | None = None,
    ) -> None:
        """Make the disks (and the config drive), define and start the domain with
        `recovery` in its metadata.

        All or nothing: a failure removes what was made before it propagates. Cancellation
        cannot stop the blocking job midway: the job is let finish, and a spawn that
        completed anyway is destroyed with its disks before `CancelledError` propagates.
        """
        plan = plan_spawn(
            instance,
            image_meta,
            block_device_info,
            network_info,
            recovery,
            self.settings,
            self.image_cache,
            injected_files=injected_files,
            admin_password=admin_password,
            filter_interfaces=self.filter_interfaces,
        )
        job = asyncio.ensure_future(
            self.host.run_on(instance.uuid, run_spawn, plan, self.image_cache)
        )
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            await asyncio.wait([job])
            if not job.cancelled() and job.exception() is None:
                await asyncio.shield(self.destroy(instance, destroy_disks=True))
            raise

    async def destroy(self, instance: Instance, destroy_disks: bool) -> bool:
        """Stop and undefine the domain, then (`destroy_disks`) delete its files and image
        references. Idempotent; False when there was no domain (logged as a warning)."""
        uuid = instance.uuid

        def job(conn: libvirt.virConnect) -> bool:
            guest = Guest.find(conn, uuid)
            if guest is None:
                return False
            try:
                # A transient domain (created, never defined) is gone once powered off.
                persistent = guest.is_persistent()
                if guest.is_active():
                    _ignore_not_running(guest.poweroff)
                if persistent:
                    guest.undefine()
            except libvirt.libvirtError as exc:
                # Removed by another party meanwhile: what destroy was asked for holds.
                if not is_domain_gone(exc):
                    raise
            return True

        existed = await self.host.run_on(uuid, job)
        if not existed:
            log.warning("destroy %s: no such domain", uuid, extra={"instance_uuid": uuid})
        if destroy_disks:
            paths = InstancePaths(self.settings.instances_path, uuid)
            await self.host.run(lambda _conn: remove_instance_files(paths, self.image_cache))
        return existed

    async def power_state(self, uuid: str) -> PowerState:
        """The domain's power state; `InstanceNotFound` if there is no domain."""
        record = await self.host.domain_record(uuid)
        return power_state_of(record.state, record.reason) or PowerState.PENDING

    async def info(self, uuid: str) -> InstanceInfo:
        return reports.instance_info(await self.host.domain_info(uuid))

    async def shutdown(self, uuid: str, timeout: float, retry_interval: float) -> bool:
        """Press the ACPI power button (again every `retry_interval`, as a guest may miss
        one early in its boot) until the domain is off or `timeout` passed; True if it
        went off by itself."""
        if not await self._active(uuid):
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_request = loop.time()
        while loop.time() < deadline:
            if loop.time() >= next_request:
                await self._verb(uuid, lambda g: _ignore_not_running(g.request_shutdown))
                next_request = loop.time() + retry_interval
            await asyncio.sleep(min(self.settings.state_poll_interval, deadline - loop.time()))
            if not await self._active(uuid):
                return True
        return False

    async def power_off_hard(self, uuid: str) -> None:
        await self._verb(uuid, lambda g: _ignore_not_running(g.poweroff))

    async def power_on(self, uuid: str) -> None:
        """Start the domain (restoring its managed save, if any); running already is fine."""
        await self._verb(uuid, lambda g: None if g.is_active() else g.launch())

    async def reboot_soft(self, uuid: str, timeout: float) -> bool:
        """ACPI shutdown, then start again, as nova does; False (guest untouched, still
        running) if it did not shut down within `timeout`."""
        if not await self._active(uuid):
            return False
        if not await self.shutdown(uuid, timeout, retry_interval=timeout):
            return False
        await self._verb(uuid, lambda g: g.launch())
        return True

    async def reboot_hard(self, instance: Instance) -> None:
        """Pull the plug and start again from the persistent definition (a managed save is
        discarded: a hard reboot boots afresh)."""

        def verb(guest: Guest) -> None:
            if guest.is_active():
                _ignore_not_running(guest.poweroff)
            if guest.has_managed_save():
                guest.remove_managed_save()
            guest.launch()

        await self._verb(instance.uuid, verb)

    async def pause(self, uuid: str) -> None:
        await self._verb(uuid, lambda g: g.pause())

    async def unpause(self, uuid: str) -> None:
        await self._verb(uuid, lambda g: g.resume())

    async def suspend(self, uuid: str) -> None:
        await self._verb(uuid, lambda g: g.save_memory_state())

    async def resume(self, uuid: str) -> None:
        await self._verb(uuid, lambda g: None if g.is_active() else g.launch())

    # --- rescue --------------------------------------------------------------------------

    async def rescue(self, instance: Instance, image_meta: ImageMeta, recovery: bytes) -> None:
        """Boot from a fresh overlay on `image_meta`'s image (first disk), the guest's own
        root disk second; the original definition is kept for `unrescue`."""
        plan = plan_rescue(instance, image_meta, self.settings, self.image_cache, recovery)
        await self.host.run_on(instance.uuid, run_rescue, plan, self.image_cache)

    async def unrescue(self, instance: Instance, recovery: bytes) -> None:
        paths = InstancePaths(self.settings.instances_path, instance.uuid)
        await self.host.run_on(instance.uuid, run_unrescue, paths, self.image_cache, recovery)

    # --- devices -------------------------------------------------------------------------

    async def attach_volume(self, uuid: str, connection: VolumeConnection, mountpoint: str) -> None:
        target, bus = self._device_name(uuid, mountpoint)
        element = volume_disk_element(
            connection, target, bus, iscsi_initiator=self.settings.iscsi_initiator
        )
        await attach_device(
            self.host, uuid, to_xml(element), mountpoint, lambda c: find_disk(c, target)
        )

    async def swap_volume(
        self,
        uuid: str,
        old: VolumeConnection,
        new: VolumeConnection,
        mountpoint: str,
        resize_to: int,
    ) -> None:
        """Copy the disk at `mountpoint` to `new` under the running guest and pivot to it;
        `old` is left as it was (a block copy reads it, never writes it)."""
        target, bus = self._device_name(uuid, mountpoint)
        new_disk = volume_disk_element(
            new, target, bus, iscsi_initiator=self.settings.iscsi_initiator
        )
        await self.host.run_on(
            uuid,
            run_block_copy,
            uuid,
            target,
            new_disk,
            resize_to,
            self.settings.block_copy_timeout,
            self.settings.state_poll_interval,
        )

    async def volume_at(self, uuid: str, connection: VolumeConnection, mountpoint: str) -> bool:
        target, bus = self._device_name(uuid, mountpoint)
        wanted = volume_disk_element(
            connection, target, bus, iscsi_initiator=self.settings.iscsi_initiator
        )

        def job(conn: libvirt.virConnect) -> bool:
            guest = Guest.lookup(conn, uuid)
            views = [guest.config(inactive=True)] + ([guest.config()] if guest.is_active() else [])
            found = [disk for view in views if (disk := find_disk(view, target)) is not None]
            return any(same_device(disk, wanted) for disk in found)

        return await self.host.run_on(uuid, job)

    async def detach_volume(
        self, uuid: str, connection: VolumeConnection, mountpoint: str, timeout: float
    ) -> None:
        target, _bus = self._device_name(uuid, mountpoint)
        await detach_device(
            self.host,
            self.device_events,
            uuid,
            mountpoint,
            lambda c: find_disk(c, target),
            self._timing(timeout),
        )

    async def attach_interface(self, uuid: str, vif: VIF, image_meta: ImageMeta | None) -> None:
        props = None if image_meta is None else image_meta.properties
        xml = to_xml(interface_element(vif, props, uuid if self.filter_interfaces else None))
        await attach_device(
            self.host, uuid, xml, vif.address, lambda c: find_interface(c, vif.address)
        )

    async def plug_vifs(self, uuid: str, vifs: Sequence[VIF]) -> list[str]:
        return await vif_plug.plug(uuid, vifs)

    async def unplug_vifs(self, uuid: str, vifs: Sequence[VIF]) -> list[str]:
        return await vif_plug.unplug(vifs)

    async def set_interface_filters(
        self, uuid: str, macs: Sequence[str], filtered: bool
    ) -> list[str]:
        return await self.host.run(set_interface_filters, uuid, list(macs), filtered)

    async def detach_interface(self, uuid: str, vif: VIF, timeout: float) -> None:
        await detach_device(
            self.host,
            self.device_events,
            uuid,
            vif.address,
            lambda c: find_interface(c, vif.address),
            self._timing(timeout),
        )

    async def volume_connector(self, instance: Instance) -> VolumeConnector:
        return VolumeConnector(
            host=self.settings.host,
            ip=self.settings.storage_ip,
            initiator=self.settings.iscsi_initiator,
            platform=self.settings.arch,
            os_type="linux",
            multipath=False,
            do_local_attach=False,
        )

    # --- snapshot ------------------------------------------------------------------------

    async def snapshot(self, instance: Instance, image_id: str, progress: Progress) -> str:
        """Write the root disk as one standalone qcow2, `<snapshots_path>/<image_id>.qcow2`.

        A running guest is paused for the copy (QEMU flushes its disks when it stops the
        vCPUs, so the image is consistent) and resumed after, whatever happened.
        """
        uuid = instance.uuid
        check_id(image_id, "a snapshot image id")
        dest = Path(self.settings.snapshots_path) / f"{image_id}.qcow2"
        config, state = await self._verb(uuid, lambda g: (g.config(), g.state()))
        paths = InstancePaths(self.settings.instances_path, uuid)
        root = str(paths.disk("disk"))
        if not any(disk_source_file(d) == root for d in config.iterfind("devices/disk")):
            raise SnapshotFailed(image_id=image_id, uuid=uuid, reason="it has no local root disk")
        if dest.exists():
            raise SnapshotFailed(image_id=image_id, uuid=uuid, reason=f"{dest} exists")
        await self.host.run(lambda _conn: dest.parent.mkdir(parents=True, exist_ok=True))
        running = state == libvirt.VIR_DOMAIN_RUNNING
        active = state != libvirt.VIR_DOMAIN_SHUTOFF
        if running:
            await self.pause(uuid)
        try:
            await convert_to_qcow2(Path(root), dest, progress, force_share=active)
        except QemuImgError as exc:
            raise SnapshotFailed(image_id=image_id, uuid=uuid, reason=str(exc)) from exc
        finally:
            if running:
                await asyncio.shield(self.unpause(uuid))
        return str(dest)

    # --- information and consoles --------------------------------------------------------

    async def console_output(self, uuid: str, max_bytes: int) -> str:
        """The tail of the serial console log, at most `max_bytes` and the configured cap."""
        limit = max(0, min(max_bytes, self.settings.console_log_max_bytes))
        config = await self._verb(uuid, lambda g: g.config())
        default = InstancePaths(self.settings.instances_path, uuid).console_log
        path = Path(console_log_path(config) or default)
        return await self.host.run(lambda _conn: read_tail(path, limit))

    async def diagnostics(self, uuid: str) -> Diagnostics:
        return await self._verb(uuid, lambda g: diagnostics(g, self.settings.virt_type))

    async def block_stats(self, uuid: str, disk_id: str) -> list[int]:
        return await self._verb(uuid, lambda g: g.block_stats(disk_id))

    async def interface_stats(self, uuid: str, iface_id: str) -> list[int]:
        """Counters of the interface named `iface_id` (its tap device or MAC address)."""
        return await self._verb(uuid, lambda g: g.interface_stats(iface_id))

    async def vnc_console(self, uuid: str) -> ConsoleInfo:
        config = await self._verb(uuid, lambda g: g.config())
        listen, port = vnc_port(config)
        if port is None:
            raise ConsoleUnavailable(uuid=uuid, console_type="vnc", reason="no VNC port now")
        return ConsoleInfo(
            console_type=ConsoleType.VNC, host=listen or self.settings.vnc_listen, port=port
        )

    async def spice_console(self, uuid: str) -> ConsoleInfo:
        """The SPICE display's address and ports; `ConsoleUnavailable` when the domain has
        no SPICE graphics (`[guest] spice_enabled` off when it was built) or no port yet."""
        config = await self._verb(uuid, lambda g: g.config())
        listen, port, tls_port = spice_ports(config)
        if port is None and tls_port is None:
            reason = "no SPICE port now" if listen is not None else "the guest has no SPICE display"
            raise ConsoleUnavailable(uuid=uuid, console_type="spice", reason=reason)
        return ConsoleInfo(
            console_type=ConsoleType.SPICE,
            host=listen or self.settings.spice_listen,
            port=port or 0,
            tls_port=tls_port,
        )

    async def serial_console(self, uuid: str) -> ConsoleInfo:
        """The serial console's pty on this host (`internal_access_path`; port 0: no TCP)."""
        config = await self._verb(uuid, lambda g: g.config())
        pty = serial_pty(config)
        if pty is None:
            raise ConsoleUnavailable(uuid=uuid, console_type="serial", reason="no pty now")
        return ConsoleInfo(
            console_type=ConsoleType.SERIAL,
            host=self.settings.host,
            port=0,
            internal_access_path=pty,
        )

    # --- recovery metadata ---------------------------------------------------------------

    async def store_recovery(self, uuid: str, recovery: bytes) -> None:
        fragment = recovery_fragment(recovery)
        await self._verb(uuid, lambda g: g.set_metadata(fragment, RECOVERY_PREFIX, RECOVERY_NS))

    async def load_recovery(self, uuid: str) -> bytes | None:
        xml = await self._verb(uuid, lambda g: g.get_metadata(RECOVERY_NS))
        return None if xml is None else parse_recovery(xml, uuid)

    # --- guest agent ---------------------------------------------------------------------

    async def guest_agent_command(
        self, uuid: str, command: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Run `command` through the QEMU guest agent; `NotSupported` when the guest has no
        agent channel, `GuestAgentUnavailable` (retryable) when no agent answers on it."""

        def verb(guest: Guest) -> dict[str, Any]:
            if not has_agent_channel(guest.config()):
                raise NotSupported(
                    operation="guest agent command",
                    reason=f"instance {uuid} has no guest agent channel",
                )
            return guest.agent_command(command, max(1, int(timeout)))

        return await self._verb(uuid, verb)

    # --- the rest of the contract (RPC API 1.1) ------------------------------------------

    async def instance_on_disk(self, uuid: str) -> bool:
        directory = InstancePaths(self.settings.instances_path, uuid).directory
        return await self.host.run(lambda _conn: directory_writable(directory))

    async def disk_info(self, uuid: str, volume_devices: list[str]) -> list[dict[str, Any]]:
        config, active = await self._verb(uuid, lambda g: (g.config(), g.is_active()))
        disks = local_disks(config, volume_devices)
        return await self.host.run(
            lambda _conn: [disk_info(*disk, force_share=bool(active)) for disk in disks]
        )

    async def disk_devices(self, uuid: str) -> list[str]:
        return disk_targets(await self._verb(uuid, lambda g: g.config()))

    async def inject_nmi(self, uuid: str) -> None:
        await self._verb(uuid, lambda g: g.inject_nmi())

    async def remove_partial_snapshot(self, image_id: str) -> list[str]:
        check_id(image_id, "a snapshot image id")
        path = Path(self.settings.snapshots_path)
        return await self.host.run(lambda _conn: remove_partial_snapshots(path, image_id))

    async def snapshot_image(self, image_id: str) -> str | None:
        check_id(image_id, "a snapshot image id")
        dest = Path(self.settings.snapshots_path) / f"{image_id}.qcow2"
        found = await self.host.run(lambda _conn: dest.is_file())
        return str(dest) if found else None

    async def has_managed_save(self, uuid: str) -> bool:
        return bool(await self._verb(uuid, lambda g: g.has_managed_save()))

    # --- helpers -------------------------------------------------------------------------

    async def _verb(self, uuid: str, verb: Callable[[Guest], Any]) -> Any:
        return await self.host.run_on(uuid, lambda conn: verb(Guest.lookup(conn, uuid)))

    async def _active(self, uuid: str) -> bool:
        return bool(await self._verb(uuid, lambda g: g.is_active()))

    def _timing(self, timeout: float) -> DetachTiming:
        return DetachTiming(
            timeout=timeout,
            attempt_timeout=self.settings.detach_attempt_timeout,
            poll=self.settings.state_poll_interval,
        )

    @staticmethod
    def _device_name(uuid: str, mountpoint: str) -> tuple[str, str]:
        try:
            return parse_device_name(mountpoint)
        except GuestConfigError as exc:
            raise GuestConfigError(uuid=uuid, reason=exc.fields["reason"]) from None


def _ignore_not_running(action: Callable[[], None]) -> None:
    """Run `action`, a verb that fails when the domain stopped meanwhile; that race is fine."""
    try:
        action()
    except libvirt.libvirtError as exc:
        if not is_wrong_state(exc):
            raise


if TYPE_CHECKING:
    from actors.instance.driver import InstanceDriver

    def _implements_the_protocol(driver: LibvirtInstanceDriver) -> InstanceDriver:
        return driver  # mypy checks every method's signature against the protocol here
