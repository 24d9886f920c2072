"""The tracker's claims: what it set aside, for whom, and what the audit learned of each."""

from __future__ import annotations

from dataclasses import dataclass

from actors.tracker.resources import Resources


def move_key(migration_uuid: str) -> str:
    """The key of a migration's move claim (an instance's own claim is keyed by its uuid, so
    a resize on one host holds both while it lasts)."""
    return f"migration:{migration_uuid}"


@dataclass(slots=True)
class Claim:
    """`seen`: an audit found the instance's domain here. An instance claim whose domain was
    seen and is gone is dropped by the next audit; one never seen is a spawn still building
    (its instance actor releases it if the spawn fails)."""

    key: str
    instance_uuid: str
    resources: Resources
    migration_uuid: str | None = None
    seen: bool = False

    @property
    def is_move(self) -> bool:
        return self.migration_uuid is not None and self.key == move_key(self.migration_uuid)


@dataclass(slots=True, frozen=True)
class DomainUsage:
    """What one domain of the hypervisor holds. `recorded`: its sizes come from this agent's
    own record of the instance (its flavor); otherwise from the domain's XML (a guest this
    agent did not build, whose disk is not counted)."""

    uuid: str
    resources: Resources
    pci_addresses: tuple[str, ...] = ()
    recorded: bool = True
