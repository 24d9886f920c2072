"""The seam between the instance actor and the hypervisor: one guest's operations.

The instance actor owns policy (which operation is allowed in which state, what state it moves
to, which events are published); an `InstanceDriver` owns the mechanics of one domain and holds
no policy. The agent implements it with libvirt (`agent.virt.instance_driver`); tests use an
in-memory fake. Methods may be added here; existing signatures do not change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.enums import PowerState
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.network import VIF, NetworkInfo
from schemas.objects.virt import ConsoleInfo, Diagnostics, InstanceInfo
from schemas.objects.volume import VolumeConnection, VolumeConnector


class InstanceDriver(Protocol):
    """What the instance actor needs from the hypervisor, for one guest at a time. Every method is
    a coroutine that runs its blocking libvirt/qemu-img work in the thread pool. Raises
    HypervisorUnavailable-like VirtactorErrors; never leaves half-done state behind.

    `filter_interfaces`: the host's firewall is on, and the interfaces it builds name their
    network filters."""

    filter_interfaces: bool

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
        """Create disks (overlays on the cached base image) and, for an instance with
        `config_drive`, its config drive (with `injected_files` and `admin_password`), define
        and start the domain with `recovery` stored in its <metadata>. On failure everything
        created is removed before the error propagates."""
        ...

    async def destroy(self, instance: Instance, destroy_disks: bool) -> bool:
        """Stop and undefine the domain; False: there was no domain."""
        ...

    async def power_state(self, uuid: str) -> PowerState: ...

    async def info(self, uuid: str) -> InstanceInfo: ...

    async def shutdown(self, uuid: str, timeout: float, retry_interval: float) -> bool:
        """Clean (ACPI) shutdown; True: the guest shut down cleanly within `timeout`."""
        ...

    async def power_off_hard(self, uuid: str) -> None: ...

    async def power_on(self, uuid: str) -> None:
        """Start the defined domain."""
        ...

    async def reboot_soft(self, uuid: str, timeout: float) -> bool:
        """True: the guest rebooted via ACPI within `timeout`."""
        ...

    async def reboot_hard(self, instance: Instance) -> None:
        """Destroy and recreate the domain from its config."""
        ...

    async def pause(self, uuid: str) -> None: ...

    async def unpause(self, uuid: str) -> None: ...

    async def suspend(self, uuid: str) -> None:
        """Managed save."""
        ...

    async def resume(self, uuid: str) -> None: ...

    async def attach_volume(
        self, uuid: str, connection: VolumeConnection, mountpoint: str
    ) -> None: ...

    async def detach_volume(
        self, uuid: str, connection: VolumeConnection, mountpoint: str, timeout: float
    ) -> None:
        """Waits for DEVICE_REMOVED, retries; a typed error if the guest never lets go."""
        ...

    async def attach_interface(self, uuid: str, vif: VIF, image_meta: ImageMeta | None) -> None: ...

    async def detach_interface(self, uuid: str, vif: VIF, timeout: float) -> None: ...

    async def snapshot(
        self, instance: Instance, image_id: str, progress: Callable[[int], Awaitable[None]]
    ) -> str:
        """Write a qcow2 image of the root disk; returns its path."""
        ...

    async def console_output(self, uuid: str, max_bytes: int) -> str: ...

    async def diagnostics(self, uuid: str) -> Diagnostics: ...

    async def block_stats(self, uuid: str, disk_id: str) -> list[int]: ...

    async def interface_stats(self, uuid: str, iface_id: str) -> list[int]: ...

    async def vnc_console(self, uuid: str) -> ConsoleInfo: ...

    async def serial_console(self, uuid: str) -> ConsoleInfo: ...

    async def spice_console(self, uuid: str) -> ConsoleInfo:
        """The SPICE display (host, port, tls_port); a typed error when the guest has none."""
        ...

    async def store_recovery(self, uuid: str, recovery: bytes) -> None:
        """Rewrite the domain's <metadata> recovery element."""
        ...

    async def load_recovery(self, uuid: str) -> bytes | None: ...

    async def volume_connector(self, instance: Instance) -> VolumeConnector: ...

    async def guest_agent_command(
        self, uuid: str, command: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """QEMU guest agent; raises NotSupported when the guest has no agent channel/agent.

        `command` is one agent command ({"execute": ..., "arguments": {...}}); the result is
        the agent's parsed JSON reply, {"return": ...}."""
        ...

    # --- added after the first version of the seam ------------------------------------------

    async def rescue(self, instance: Instance, image_meta: ImageMeta, recovery: bytes) -> None:
        """Boot the guest from a fresh disk of `image_meta` (an overlay on its cached base),
        with the guest's own root disk attached as the second disk; keep the original
        definition so `unrescue` can restore it. `recovery` goes into the rescue domain's
        <metadata>. On failure the original definition is back in place (and started again if
        it was running) before the error propagates."""
        ...

    async def unrescue(self, instance: Instance, recovery: bytes) -> None:
        """Stop the rescue domain, restore the definition `rescue` kept (with `recovery` in its
        <metadata>), remove the rescue disk and start the guest."""
        ...

    async def swap_volume(
        self,
        uuid: str,
        old: VolumeConnection,
        new: VolumeConnection,
        mountpoint: str,
        resize_to: int,
    ) -> None:
        """Copy the disk at `mountpoint` from `old` to `new` while the guest runs (libvirt's
        block copy), then switch the guest to `new`; `old` is left as it was. `resize_to`
        (GiB, 0: keep the size) grows the new disk after the pivot. A failed copy is aborted
        and the guest keeps `old`."""
        ...

    # --- the rest of the contract (RPC API 1.1) ---------------------------------------------

    async def instance_on_disk(self, uuid: str) -> bool:
        """Whether the instance's directory is on this host's disk and writable here (nova:
        its files are reachable, e.g. on shared storage, for an evacuation)."""
        ...

    async def disk_info(self, uuid: str, volume_devices: list[str]) -> list[dict[str, Any]]:
        """nova's disk info of each local disk (file or block) of the domain, leaving out the
        disks at `volume_devices` (target names such as "vdb"): type, path, virt_disk_size,
        backing_file, disk_size, over_committed_disk_size."""
        ...

    async def disk_devices(self, uuid: str) -> list[str]:
        """The target names of every disk the domain has now ("vda", "vdb", ...)."""
        ...

    async def inject_nmi(self, uuid: str) -> None:
        """Send the running guest a non-maskable interrupt (a kernel may dump on it)."""
        ...

    async def remove_partial_snapshot(self, image_id: str) -> list[str]:
        """Remove the partial files an interrupted snapshot `image_id` left; their paths."""
        ...

    async def snapshot_image(self, image_id: str) -> str | None:
        """The path of snapshot `image_id`'s image, None if there is none. An image found is
        whole: it is written under a partial name and renamed into place only once qemu-img
        finished."""
        ...

    async def has_managed_save(self, uuid: str) -> bool:
        """Whether libvirt holds a managed save image of the domain (a suspend wrote it; the
        start that restores it removes it)."""
        ...

    # --- host networking --------------------------------------------------------------------

    async def plug_vifs(self, uuid: str, vifs: Sequence[VIF]) -> list[str]:
        """Plug the guest's taps into their bridges on this host (idempotent); what changed."""
        ...

    async def unplug_vifs(self, uuid: str, vifs: Sequence[VIF]) -> list[str]:
        """Take the guest's taps off their bridges (idempotent); what changed."""
        ...

    async def set_interface_filters(
        self, uuid: str, macs: Sequence[str], filtered: bool
    ) -> list[str]:
        """Make the interfaces of `macs` reference their network filters (`filtered`) or none,
        in the running guest and its definition; the MACs whose interface changed. No
        domain: nothing. Asked only when `filter_interfaces`."""
        ...

    # --- crash safety -------------------------------------------------------------------------

    async def volume_at(self, uuid: str, connection: VolumeConnection, mountpoint: str) -> bool:
        """Whether the disk at `mountpoint` (live or in the definition) is that volume: an
        attach the agent was stopped in the middle of leaves it without a record."""
        ...
