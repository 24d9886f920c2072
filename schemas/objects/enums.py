"""The fixed value sets of the objects, named as nova names them."""

from __future__ import annotations

import enum
from typing import Final


class VMState(enum.StrEnum):
    """nova.compute.vm_states: the stable state of an instance."""

    ACTIVE = "active"
    BUILDING = "building"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    RESCUED = "rescued"
    RESIZED = "resized"
    SOFT_DELETED = "soft-delete"
    DELETED = "deleted"
    ERROR = "error"
    SHELVED = "shelved"
    SHELVED_OFFLOADED = "shelved_offloaded"


class TaskState(enum.StrEnum):
    """nova.compute.task_states: the operation in progress on an instance, if any."""

    SCHEDULING = "scheduling"
    BLOCK_DEVICE_MAPPING = "block_device_mapping"
    NETWORKING = "networking"
    SPAWNING = "spawning"
    IMAGE_SNAPSHOT = "image_snapshot"
    IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
    IMAGE_PENDING_UPLOAD = "image_pending_upload"
    IMAGE_UPLOADING = "image_uploading"
    IMAGE_BACKUP = "image_backup"
    UPDATING_PASSWORD = "updating_password"
    RESIZE_PREP = "resize_prep"
    RESIZE_MIGRATING = "resize_migrating"
    RESIZE_MIGRATED = "resize_migrated"
    RESIZE_FINISH = "resize_finish"
    RESIZE_REVERTING = "resize_reverting"
    RESIZE_CONFIRMING = "resize_confirming"
    REBOOTING = "rebooting"
    REBOOT_PENDING = "reboot_pending"
    REBOOT_STARTED = "reboot_started"
    REBOOTING_HARD = "rebooting_hard"
    REBOOT_PENDING_HARD = "reboot_pending_hard"
    REBOOT_STARTED_HARD = "reboot_started_hard"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    RESCUING = "rescuing"
    UNRESCUING = "unrescuing"
    REBUILDING = "rebuilding"
    REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
    REBUILD_SPAWNING = "rebuild_spawning"
    MIGRATING = "migrating"
    DELETING = "deleting"
    SOFT_DELETING = "soft-deleting"
    RESTORING = "restoring"
    SHELVING = "shelving"
    SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
    SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
    SHELVING_OFFLOADING = "shelving_offloading"
    UNSHELVING = "unshelving"


class PowerState(enum.StrEnum):
    """nova.compute.power_state, by the names of its STATE_MAP rather than the numbers."""

    PENDING = "pending"  # NOSTATE
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    CRASHED = "crashed"
    SUSPENDED = "suspended"


# nova's numeric power states, for peers and databases that still speak them.
POWER_STATE_BY_CODE: Final[dict[int, PowerState]] = {
    0x00: PowerState.PENDING,
    0x01: PowerState.RUNNING,
    0x03: PowerState.PAUSED,
    0x04: PowerState.SHUTDOWN,
    0x06: PowerState.CRASHED,
    0x07: PowerState.SUSPENDED,
}


class MigrationPhase(enum.StrEnum):
    """What a running live migration's job is doing (`MigrationProgress.phase`)."""

    PRE_COPY = "pre-copy"
    POST_COPY = "post-copy"
    POST_COPY_PAUSED = "post-copy-paused"  # the stream broke; the guest waits for pages
    POST_COPY_RECOVERING = "post-copy-recovering"  # a new stream is being set up


class MigrationStatus(enum.StrEnum):
    """The status strings nova's compute manager and conductor give a migration."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    ERROR = "error"
    ACCEPTED = "accepted"
    PRE_MIGRATING = "pre-migrating"
    MIGRATING = "migrating"
    POST_MIGRATING = "post-migrating"
    FINISHED = "finished"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    DONE = "done"


class MigrationType(enum.StrEnum):
    MIGRATION = "migration"  # cold migration
    RESIZE = "resize"
    LIVE_MIGRATION = "live-migration"
    EVACUATION = "evacuation"


class DriverVolumeType(enum.StrEnum):
    """The connection types a volume can be attached by (os-brick's protocol names)."""

    FILE = "file"
    BLOCK = "block"
    NBD = "nbd"
    ISCSI = "iscsi"
    RBD = "rbd"


class DiskBus(enum.StrEnum):
    """nova.objects.fields.DiskBus."""

    FDC = "fdc"
    IDE = "ide"
    SATA = "sata"
    SCSI = "scsi"
    USB = "usb"
    VIRTIO = "virtio"
    XEN = "xen"
    LXC = "lxc"
    UML = "uml"


class VIFModel(enum.StrEnum):
    """nova.objects.fields.VIFModel (the guest-visible NIC model)."""

    VIRTIO = "virtio"
    NE2K_PCI = "ne2k_pci"
    PCNET = "pcnet"
    RTL8139 = "rtl8139"
    E1000 = "e1000"
    E1000E = "e1000e"
    NETFRONT = "netfront"
    SPAPR_VLAN = "spapr-vlan"
    LAN9118 = "lan9118"
    VMXNET3 = "vmxnet3"
    IGB = "igb"


class FirmwareType(enum.StrEnum):
    BIOS = "bios"
    UEFI = "uefi"


class VideoModel(enum.StrEnum):
    VGA = "vga"
    CIRRUS = "cirrus"
    VMVGA = "vmvga"
    XEN = "xen"
    QXL = "qxl"
    VIRTIO = "virtio"
    GOP = "gop"
    BOCHS = "bochs"
    NONE = "none"


class SCSIModel(enum.StrEnum):
    VIRTIO_SCSI = "virtio-scsi"
    LSILOGIC = "lsilogic"
    BUSLOGIC = "buslogic"
    LSISAS1068 = "lsisas1068"
    IBMVSCSI = "ibmvscsi"


class BlockDeviceSourceType(enum.StrEnum):
    BLANK = "blank"
    SNAPSHOT = "snapshot"
    IMAGE = "image"
    VOLUME = "volume"


class BlockDeviceDestinationType(enum.StrEnum):
    LOCAL = "local"
    VOLUME = "volume"


class BlockDeviceType(enum.StrEnum):
    DISK = "disk"
    CDROM = "cdrom"
    FLOPPY = "floppy"
    LUN = "lun"


class VolumeAccessMode(enum.StrEnum):
    READ_WRITE = "rw"
    READ_ONLY = "ro"


class VIFType(enum.StrEnum):
    """nova.network.model VIF_TYPE_* (how the host side of the NIC is plugged)."""

    BRIDGE = "bridge"
    OVS = "ovs"
    TAP = "tap"
    VHOSTUSER = "vhostuser"
    HW_VEB = "hw_veb"
    HOSTDEV = "hostdev_physical"
    MACVTAP = "macvtap"
    ETHERNET = "ethernet"
    OTHER = "other"


class VNICType(enum.StrEnum):
    NORMAL = "normal"
    DIRECT = "direct"
    MACVTAP = "macvtap"
    DIRECT_PHYSICAL = "direct-physical"
    BAREMETAL = "baremetal"
    VIRTIO_FORWARDER = "virtio-forwarder"
    VDPA = "vdpa"
    REMOTE_MANAGED = "remote-managed"


class PciDeviceType(enum.StrEnum):
    STANDARD = "type-PCI"
    SRIOV_PF = "type-PF"
    SRIOV_VF = "type-VF"
    VDPA = "vdpa"


class PciDeviceStatus(enum.StrEnum):
    AVAILABLE = "available"
    CLAIMED = "claimed"
    ALLOCATED = "allocated"
    REMOVED = "removed"
    DELETED = "deleted"
    UNAVAILABLE = "unavailable"
    UNCLAIMABLE = "unclaimable"


class LifecycleTransition(enum.StrEnum):
    """nova.virt.event EVENT_LIFECYCLE_*, by name."""

    STARTED = "started"
    STOPPED = "stopped"
    PAUSED = "paused"
    RESUMED = "resumed"
    SUSPENDED = "suspended"
    MIGRATION_COMPLETED = "migration_completed"
    POSTCOPY_STARTED = "postcopy_started"


class ConsoleType(enum.StrEnum):
    VNC = "vnc"
    SPICE = "spice"
    SERIAL = "serial"
    RDP = "rdp"
    MKS = "mks"


class MigrationAction(enum.StrEnum):
    """What a live migration's policy may do when a timeout fires or a convergence step is
    reached: raise the allowed downtime, switch to post-copy, pause the guest so the last
    pages copy (force complete), or give up (the guest stays on the source)."""

    SET_DOWNTIME = "set_downtime"
    POST_COPY = "post_copy"
    FORCE_COMPLETE = "force_complete"
    ABORT = "abort"
