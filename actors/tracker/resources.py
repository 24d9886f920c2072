"""Sizes and capacity: the arithmetic of claims, pure and exact (whole units throughout).

A flavor needs `vcpus`, `memory_mb` and, on local disk, `root_gb + ephemeral_gb` plus its
swap (MiB) rounded up to whole GiB, as nova's scheduler counts it. A host offers, per
resource, placement's capacity: (total - reserved) x allocation ratio, rounded down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from actors.tracker.errors import ClaimFailed
from actors.tracker.settings import TrackerSettings
from schemas.objects.flavor import Flavor

MIB_PER_GIB = 1024


@dataclass(slots=True, frozen=True)
class Resources:
    """An amount of each countable resource."""

    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus + other.vcpus,
            self.memory_mb + other.memory_mb,
            self.disk_gb + other.disk_gb,
        )

    @classmethod
    def of_flavor(cls, flavor: Flavor) -> Resources:
        swap_gb = math.ceil(flavor.swap / MIB_PER_GIB)
        return cls(flavor.vcpus, flavor.memory_mb, flavor.root_gb + flavor.ephemeral_gb + swap_gb)

    def negative(self) -> str | None:
        """The name of a field below zero, if any."""
        return next((f.name for f in fields(self) if getattr(self, f.name) < 0), None)


def total(amounts: list[Resources]) -> Resources:
    summed = Resources()
    for amount in amounts:
        summed = summed + amount
    return summed


@dataclass(slots=True, frozen=True)
class Inventory:
    """What the hypervisor has, before reservations and ratios."""

    vcpus: int
    memory_mb: int
    local_gb: int


def reserved_disk_gb(settings: TrackerSettings) -> int:
    return math.ceil(settings.reserved_host_disk_mb / MIB_PER_GIB)


def capacity(inventory: Inventory, settings: TrackerSettings) -> Resources:
    """What may be claimed in all: (total - reserved) x ratio, rounded down, never below 0."""

    def cap(amount: int, reserved: int, ratio: float) -> int:
        return max(0, math.floor((amount - reserved) * ratio))

    return Resources(
        cap(inventory.vcpus, settings.reserved_host_cpus, settings.cpu_allocation_ratio),
        cap(inventory.memory_mb, settings.reserved_host_memory_mb, settings.ram_allocation_ratio),
        cap(inventory.local_gb, reserved_disk_gb(settings), settings.disk_allocation_ratio),
    )


def check_fits(uuid: str, requested: Resources, used: Resources, limit: Resources) -> None:
    """`ClaimFailed` naming the first resource of `requested` that `limit - used` cannot hold."""
    for name in ("vcpus", "memory_mb", "disk_gb"):
        wanted = getattr(requested, name)
        free = max(0, getattr(limit, name) - getattr(used, name))
        if wanted > free:
            raise ClaimFailed(uuid=uuid, resource=name, requested=wanted, free=free)
