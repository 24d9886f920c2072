"""`FirewallSettings`: how the host filters its guests' traffic (`[firewall]`)."""

from __future__ import annotations

from dataclasses import dataclass

DRIVERS = ("none", "nwfilter")


@dataclass(frozen=True, slots=True)
class FirewallSettings:
    """- `driver`: `nwfilter` filters every interface the agent builds with libvirt's network
      filters, from the instance's security groups and the provider's rules
      (docs/networking.md); `none` filters nothing and the filtering methods do nothing
      (nova's NoopFirewallDriver, for deployments whose network service filters ports).
    - `defer_max_seconds`: the longest `filter_defer_apply_on` holds refreshes back; past
      it they are applied as if `filter_defer_apply_off` had come (a control plane that
      died between the two must not leave rule changes unapplied forever).
    - `lookup_timeout`: the longest one read of groups, rules or members from the object
      backend may take.
    """

    driver: str = "none"
    defer_max_seconds: float = 60.0
    lookup_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, got {self.driver!r}")
        if not self.defer_max_seconds > 0:
            raise ValueError(f"defer_max_seconds must be > 0, got {self.defer_max_seconds}")
        if not self.lookup_timeout > 0:
            raise ValueError(f"lookup_timeout must be > 0, got {self.lookup_timeout}")

    @property
    def enabled(self) -> bool:
        return self.driver != "none"
