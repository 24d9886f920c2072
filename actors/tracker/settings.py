"""`TrackerSettings`: how much of the host the resource tracker hands out, from `[resources]`.

A resource's capacity is placement's: (total - reserved) x allocation ratio, rounded down.
PCI devices are handed out only when `pci_device_spec` names them (nothing by default, as in
nova: passing the host's own NIC or disk controller to a guest must be a decision), and a
flavor asks for them by the names of `pci_alias`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_HEX_ID = re.compile(r"[0-9a-f]{4}")
DEVICE_TYPES = ("type-PCI", "type-PF", "type-VF")


@dataclass(slots=True, frozen=True)
class PciSpec:
    """Which devices may be passed through: vendor and product ids, `*` for any."""

    vendor_id: str
    product_id: str

    def matches(self, vendor_id: str, product_id: str) -> bool:
        return self.vendor_id in ("*", vendor_id) and self.product_id in ("*", product_id)


@dataclass(slots=True, frozen=True)
class PciAlias:
    """What a flavor's `pci_passthrough:alias` name stands for; `dev_type` None: any type."""

    name: str
    vendor_id: str
    product_id: str
    dev_type: str | None = None


def _hex_id(text: str, what: str, wildcard: bool) -> str:
    value = text.strip().lower().removeprefix("0x")
    if (wildcard and value == "*") or _HEX_ID.fullmatch(value):
        return value
    allowed = "4 hex digits or '*'" if wildcard else "4 hex digits"
    raise ValueError(f"{what} {text!r} is not {allowed}")


def parse_pci_spec(text: str) -> PciSpec:
    """`VENDOR:PRODUCT`, each 4 hex digits or `*` (`8086:154c`, `10de:*`)."""
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"pci_device_spec entry {text!r} is not VENDOR:PRODUCT")
    return PciSpec(
        _hex_id(parts[0], f"pci_device_spec entry {text!r}: vendor id", wildcard=True),
        _hex_id(parts[1], f"pci_device_spec entry {text!r}: product id", wildcard=True),
    )


def parse_pci_alias(name: str, text: str) -> PciAlias:
    """`VENDOR:PRODUCT[:TYPE]`, TYPE one of type-PCI, type-PF, type-VF."""
    parts = text.split(":")
    if not name or "," in name or ":" in name:
        raise ValueError(f"pci_alias name {name!r} must be non-empty, without ',' or ':'")
    if len(parts) not in (2, 3):
        raise ValueError(f"pci_alias {name} = {text!r} is not VENDOR:PRODUCT[:TYPE]")
    dev_type = parts[2].strip() if len(parts) == 3 else None
    if dev_type is not None and dev_type not in DEVICE_TYPES:
        raise ValueError(f"pci_alias {name}: device type {dev_type!r} is not one of {DEVICE_TYPES}")
    return PciAlias(
        name,
        _hex_id(parts[0], f"pci_alias {name}: vendor id", wildcard=False),
        _hex_id(parts[1], f"pci_alias {name}: product id", wildcard=False),
        dev_type,
    )


@dataclass(slots=True, frozen=True)
class TrackerSettings:
    """Allocation ratios, what the host keeps for itself, the audit's interval (seconds) and
    the PCI passthrough rules. A value out of range is a ValueError naming it."""

    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_cpus: int = 0
    reserved_host_memory_mb: int = 512
    reserved_host_disk_mb: int = 0
    audit_interval: float = 60.0
    # Devices that may be passed through, VENDOR:PRODUCT each ("8086:154c", "10de:*").
    pci_device_spec: tuple[str, ...] = ()
    # Names flavors use in `pci_passthrough:alias`: name -> VENDOR:PRODUCT[:TYPE].
    pci_alias: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("reserved_host_cpus", "reserved_host_memory_mb", "reserved_host_disk_mb"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.audit_interval > 0:
            raise ValueError(f"audit_interval must be > 0 seconds, got {self.audit_interval}")
        self.specs()
        self.aliases()

    def specs(self) -> tuple[PciSpec, ...]:
        return tuple(parse_pci_spec(text) for text in self.pci_device_spec)

    def aliases(self) -> dict[str, PciAlias]:
        return {name: parse_pci_alias(name, text) for name, text in self.pci_alias.items()}
