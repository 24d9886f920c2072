"""The objects virtactor exchanges, registered into `schemas.default_registry` on import."""

from __future__ import annotations

from schemas.objects import enums
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.claim import ResourceClaim
from schemas.objects.compute_node import ComputeNode
from schemas.objects.context import RequestContext
from schemas.objects.flavor import Flavor
from schemas.objects.image import ImageMeta, ImageMetaProps
from schemas.objects.instance import Instance
from schemas.objects.migrate_data import LiveMigrateBDMInfo, LiveMigrateData, LiveMigrateDisk
from schemas.objects.migration import Migration
from schemas.objects.migration_policy import ConvergenceStep, MigrationPolicy
from schemas.objects.migration_progress import MigrationProgress
from schemas.objects.network import VIF, Network, NetworkInfo, Subnet
from schemas.objects.pci import PciDevice, PciDevicePool, PciDevicePoolList
from schemas.objects.security_group import (
    ProviderFirewallRule,
    SecurityGroup,
    SecurityGroupMembership,
    SecurityGroupRule,
)
from schemas.objects.service import Service
from schemas.objects.virt import (
    ConsoleInfo,
    CpuDiagnostics,
    Diagnostics,
    DiskDiagnostics,
    InstanceInfo,
    LifecycleEvent,
    MemoryDiagnostics,
    NicDiagnostics,
)
from schemas.objects.volume import VolumeConnection, VolumeConnectionData, VolumeConnector

__all__ = [
    "VIF",
    "BlockDeviceMapping",
    "BlockDeviceMappingList",
    "ComputeNode",
    "ConsoleInfo",
    "ConvergenceStep",
    "CpuDiagnostics",
    "Diagnostics",
    "DiskDiagnostics",
    "Flavor",
    "ImageMeta",
    "ImageMetaProps",
    "Instance",
    "InstanceInfo",
    "LifecycleEvent",
    "LiveMigrateBDMInfo",
    "LiveMigrateData",
    "LiveMigrateDisk",
    "MemoryDiagnostics",
    "Migration",
    "MigrationPolicy",
    "MigrationProgress",
    "Network",
    "NetworkInfo",
    "NicDiagnostics",
    "PciDevice",
    "PciDevicePool",
    "PciDevicePoolList",
    "ProviderFirewallRule",
    "RequestContext",
    "ResourceClaim",
    "SecurityGroup",
    "SecurityGroupMembership",
    "SecurityGroupRule",
    "Service",
    "Subnet",
    "VolumeConnection",
    "VolumeConnectionData",
    "VolumeConnector",
    "enums",
]
