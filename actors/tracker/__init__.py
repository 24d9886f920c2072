"""The resource tracker actor and what it is made of (see `actors.tracker.actor`)."""

from actors.tracker.actor import ResourceTrackerActor, TrackerHypervisor, resources_topic
from actors.tracker.claims import Claim, DomainUsage, move_key
from actors.tracker.errors import (
    ClaimFailed,
    ClaimNotFound,
    ClaimRequestError,
    InvalidClaim,
    PciAliasNotDefined,
)
from actors.tracker.pci import PciDevice, PciInventory
from actors.tracker.resources import Resources
from actors.tracker.settings import TrackerSettings

__all__ = [
    "Claim",
    "ClaimFailed",
    "ClaimNotFound",
    "ClaimRequestError",
    "DomainUsage",
    "InvalidClaim",
    "PciAliasNotDefined",
    "PciDevice",
    "PciInventory",
    "ResourceTrackerActor",
    "Resources",
    "TrackerHypervisor",
    "TrackerSettings",
    "move_key",
    "resources_topic",
]
