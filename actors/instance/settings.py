"""`InstanceSettings`: the bounds of an instance actor's operations, from `[instance]`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class InstanceSettings:
    """Bounds of the instance operations, in seconds (bytes for the console)."""

    reboot_timeout: float = 120.0  # a soft reboot falls back to a hard one after this
    shutdown_timeout: float = 60.0  # power_off's clean shutdown, unless the call sets one
    shutdown_retry_interval: float = 10.0  # ACPI power button pressed again this often
    detach_timeout: float = 30.0  # waiting for the guest to let a device go
    guest_agent_timeout: float = 30.0
    console_max_bytes: int = 100 * 1024  # get_console_output returns at most this tail
    # The instance's metadata map, keys and values in UTF-8. It is written into the domain's
    # <metadata> twice (the instance and the recovery record) and libvirt refuses a domain
    # XML over a few MiB ("Unable to encode message payload"), long after the request was
    # taken: so the map is bounded well below that, up front.
    metadata_max_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        for name in ("reboot_timeout", "detach_timeout", "guest_agent_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.shutdown_timeout < 0 or self.shutdown_retry_interval <= 0:
            raise ValueError(
                f"shutdown_timeout must be >= 0 and shutdown_retry_interval > 0 seconds, got "
                f"{self.shutdown_timeout} and {self.shutdown_retry_interval}"
            )
        for name in ("console_max_bytes", "metadata_max_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
