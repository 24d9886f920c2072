"""`GuestSettings`: the configuration values the Guest layer builds and runs guests with.

Read once from `agent.config` (`[guest]`, plus `[agent] host`/`storage_ip`/`instances_path`) by
`guest_settings_from_config` and passed down; nothing below reads configuration itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from agent.virt.guest.errors import GuestSettingsError

if TYPE_CHECKING:
    from agent.config import AgentConfig

CPU_MODES = ("host-model", "host-passthrough", "custom", "none")
VIRT_TYPES = ("kvm", "qemu")
CACHE_MODES = ("none", "writethrough", "writeback", "directsync", "unsafe")


@dataclass(slots=True, frozen=True)
class GuestSettings:
    """Where guests' files live and how their domains are shaped.

    - `instances_path`: one directory per instance (`<uuid>/`: disks, console log).
    - `images_path`: the images guests are built from, one file per image id (the kernel
      and ramdisk of direct kernel boot too). Read only.
    - `image_cache_path`: the cached base images the root disks are overlays on.
    - `snapshots_path`: where `snapshot` writes `<image id>.qcow2`.
    - `virt_type`: libvirt domain type, `kvm`, or `qemu` (TCG, no KVM needed).
    - `machine_type`, `arch`: defaults when the image names none (`hw_machine_type`).
    - `cpu_mode`: `host-model`, `host-passthrough`, `custom` (with `cpu_model`), or `none`
      (no CPU model element, only the topology).
    - `vnc_enabled`, `vnc_listen`: VNC graphics and the address it listens on.
    - `spice_enabled`, `spice_listen`: SPICE graphics (beside VNC, or alone) and its address;
      off by default (nova's `[spice] enabled`), as not every packaged QEMU has SPICE.
    - `console_log_max_bytes`: the most `console_output` returns (nova: 100 KiB).
    - `disk_cachemode`: QEMU cache mode of local disks (`none` needs O_DIRECT).
    - `iscsi_initiator`: this host's iSCSI initiator IQN (QEMU's own initiator uses it).
    - `image_cache_max_age`: seconds an unused base image stays cached.
    - `image_cache_interval`: seconds between the host's `manage_image_cache` passes (0:
      only when asked over RPC; nova's `[image_cache] manager_interval` is 2400).
    - `host`, `storage_ip`: this host, as the volume connector names it to storage.
    - `state_poll_interval`: how often a wait for a guest's state (shutdown, reboot) looks.
    - `detach_attempt_timeout`: how long one detach request waits for DEVICE_REMOVED.
    - `block_copy_timeout`: the longest a volume swap's copy may take.
    """

    instances_path: str
    images_path: str
    image_cache_path: str
    snapshots_path: str
    host: str = "localhost"
    storage_ip: str | None = None
    virt_type: str = "kvm"
    machine_type: str = "pc"
    arch: str = "x86_64"
    cpu_mode: str = "host-model"
    cpu_model: str = ""
    vnc_enabled: bool = True
    vnc_listen: str = "127.0.0.1"
    spice_enabled: bool = False
    spice_listen: str = "127.0.0.1"
    console_log_max_bytes: int = 100 * 1024
    disk_cachemode: str = "none"
    iscsi_initiator: str | None = None
    image_cache_max_age: float = 24 * 3600.0
    image_cache_interval: float = 2400.0
    state_poll_interval: float = 0.25
    detach_attempt_timeout: float = 5.0
    block_copy_timeout: float = 3600.0

    def __post_init__(self) -> None:
        _one_of("virt_type", self.virt_type, VIRT_TYPES)
        _one_of("cpu_mode", self.cpu_mode, CPU_MODES)
        _one_of("disk_cachemode", self.disk_cachemode, CACHE_MODES)
        if self.cpu_mode == "custom" and not self.cpu_model:
            raise GuestSettingsError(setting="cpu_mode", reason="'custom' needs a cpu_model")
        for name in ("console_log_max_bytes", "state_poll_interval", "detach_attempt_timeout"):
            if getattr(self, name) <= 0:
                raise GuestSettingsError(
                    setting=name, reason=f"must be positive, got {getattr(self, name)!r}"
                )


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise GuestSettingsError(setting=name, reason=f"{value!r} is not one of {allowed}")


def guest_settings_from_config(config: AgentConfig) -> GuestSettings:
    """The settings of `config`'s `[guest]` section (every one of its fields is a setting of
    the same name), with `[agent]`'s host, address and paths, and the empty paths defaulted."""
    guest, agent = config.guest, config.agent
    instances = agent.instances_path
    values = {f.name: getattr(guest, f.name) for f in fields(guest)}
    values.update(
        instances_path=instances,
        image_cache_path=guest.image_cache_path or f"{instances}/_base",
        snapshots_path=guest.snapshots_path or guest.images_path,
        host=agent.host,
        storage_ip=agent.storage_ip or None,
        iscsi_initiator=guest.iscsi_initiator or None,
    )
    return GuestSettings(**values)
