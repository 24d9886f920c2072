"""What the virt layer reports about a guest: info, diagnostics, consoles, lifecycle events."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objects.enums import ConsoleType, LifecycleTransition, PowerState
from schemas.registry import default_registry


@default_registry.register
class InstanceInfo(VersionedObject):
    """A guest's state and basic counters (the driver's `get_info`)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    state: str = fields.Enum(PowerState)
    internal_id: str | None = fields.String(nullable=True, default=None)  # libvirt domain id
    max_mem_kb: int = fields.Integer(default=0)
    mem_kb: int = fields.Integer(default=0)
    num_cpu: int = fields.Integer(default=0)
    cpu_time_ns: int = fields.Integer(default=0)


@default_registry.register
class CpuDiagnostics(VersionedObject):
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    id: int = fields.Integer()
    time: int | None = fields.Integer(nullable=True, default=None)  # ns of CPU time
    utilisation: int | None = fields.Integer(nullable=True, default=None)  # percent


@default_registry.register
class NicDiagnostics(VersionedObject):
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    mac_address: str | None = fields.MACAddress(nullable=True, default=None)
    rx_octets: int = fields.Integer(default=0)
    rx_errors: int = fields.Integer(default=0)
    rx_drop: int = fields.Integer(default=0)
    rx_packets: int = fields.Integer(default=0)
    rx_rate: int | None = fields.Integer(nullable=True, default=None)
    tx_octets: int = fields.Integer(default=0)
    tx_errors: int = fields.Integer(default=0)
    tx_drop: int = fields.Integer(default=0)
    tx_packets: int = fields.Integer(default=0)
    tx_rate: int | None = fields.Integer(nullable=True, default=None)


@default_registry.register
class DiskDiagnostics(VersionedObject):
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    read_bytes: int = fields.Integer(default=0)
    read_requests: int = fields.Integer(default=0)
    write_bytes: int = fields.Integer(default=0)
    write_requests: int = fields.Integer(default=0)
    errors_count: int = fields.Integer(default=0)


@default_registry.register
class MemoryDiagnostics(VersionedObject):
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    maximum: int = fields.Integer(default=0)  # MiB
    used: int = fields.Integer(default=0)  # MiB


@default_registry.register
class Diagnostics(VersionedObject):
    """A guest's detailed counters (the driver's `get_instance_diagnostics`)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {
        "cpu_details": [("1.0", "1.0")],
        "nic_details": [("1.0", "1.0")],
        "disk_details": [("1.0", "1.0")],
        "memory_details": [("1.0", "1.0")],
    }

    state: str = fields.Enum(PowerState)
    driver: str = fields.String()  # "libvirt"
    hypervisor: str | None = fields.String(nullable=True, default=None)  # "qemu", "kvm"
    hypervisor_os: str | None = fields.String(nullable=True, default=None)
    uptime: int | None = fields.Integer(nullable=True, default=None)  # seconds
    config_drive: bool = fields.Boolean(default=False)
    num_cpus: int = fields.Integer(default=0)
    num_nics: int = fields.Integer(default=0)
    num_disks: int = fields.Integer(default=0)
    cpu_details: list[CpuDiagnostics] = fields.ListOfObjects("CpuDiagnostics", default=[])
    nic_details: list[NicDiagnostics] = fields.ListOfObjects("NicDiagnostics", default=[])
    disk_details: list[DiskDiagnostics] = fields.ListOfObjects("DiskDiagnostics", default=[])
    memory_details: MemoryDiagnostics | None = fields.Object(
        "MemoryDiagnostics", nullable=True, default=None
    )


@default_registry.register
class ConsoleInfo(VersionedObject):
    """Where a guest console listens (the driver's `get_vnc_console` and siblings)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    console_type: str = fields.Enum(ConsoleType)
    host: str = fields.String()
    port: int = fields.Integer()
    tls_port: int | None = fields.Integer(nullable=True, default=None)
    internal_access_path: str | None = fields.String(nullable=True, default=None)


@default_registry.register
class LifecycleEvent(VersionedObject):
    """A guest changed state (from a libvirt domain event), with when it happened."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    instance_uuid: str = fields.UUID()
    transition: str = fields.Enum(LifecycleTransition)
    timestamp: datetime = fields.DateTime()
