"""`MigrationSettings`: the source agent's defaults for live migrations, from `[migration]`.

The policy fields are `MigrationPolicy`'s defaults when a request sends none; the rest say
how often a running one is polled, how long the agents wait for each other, and where other
hosts reach this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.objects.enums import MigrationAction
from schemas.objects.migration_policy import MigrationPolicy


@dataclass(slots=True, frozen=True)
class MigrationSettings:
    completion_timeout_per_gib: int = 800
    progress_timeout: int = 150
    timeout_action: str = "abort"
    max_downtime_ms: int = 500
    bandwidth_mibps: int = 0
    auto_converge: bool = False
    post_copy: bool = False
    poll_interval: float = 0.5
    # How long one step of the workflow may wait for the other agent.
    peer_timeout: float = 120.0
    # This host's libvirtd as other hosts' libvirtd reach it; empty: `[libvirt] uri` when it
    # names a host, else qemu+tcp://<[agent] host_ip>/system.
    peer_uri: str = ""
    # Where this host's QEMU listens for an incoming migration stream; empty: host_ip.
    listen_address: str = ""
    # Where other hosts send this host's incoming migration streams, when not to
    # listen_address (a proxy or NAT in between); empty: listen_address.
    inbound_address: str = ""
    # Jobs run at once per direction: more outgoing wait queued, more incoming are refused
    # with the retryable MigrationBusy and their source asks again every busy_retry_interval,
    # up to busy_wait_timeout. An incoming slot whose source never ends it is freed after
    # incoming_slot_timeout.
    max_outgoing: int = 2
    max_incoming: int = 2
    busy_retry_interval: float = 5.0
    busy_wait_timeout: float = 1800.0
    incoming_slot_timeout: float = 7200.0
    # When the stream breaks after the switch to post-copy, the guest waits paused on the
    # destination: the source asks libvirt to resume every postcopy_retry_interval until
    # postcopy_recovery_timeout, then gives up (the record ends `error`).
    postcopy_retry_interval: float = 2.0
    postcopy_recovery_timeout: float = 600.0

    def __post_init__(self) -> None:
        for name in ("completion_timeout_per_gib", "progress_timeout", "bandwidth_mibps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.timeout_action not in set(MigrationAction) - {MigrationAction.SET_DOWNTIME}:
            raise ValueError(
                f"timeout_action must be abort, post_copy or force_complete, "
                f"got {self.timeout_action!r}"
            )
        if self.max_downtime_ms < 1:
            raise ValueError(f"max_downtime_ms must be >= 1, got {self.max_downtime_ms}")
        for name in ("max_outgoing", "max_incoming"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "poll_interval",
            "peer_timeout",
            "busy_retry_interval",
            "busy_wait_timeout",
            "incoming_slot_timeout",
            "postcopy_retry_interval",
            "postcopy_recovery_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")

    def default_policy(self) -> MigrationPolicy:
        return MigrationPolicy(
            completion_timeout_per_gib=self.completion_timeout_per_gib,
            progress_timeout=self.progress_timeout,
            timeout_action=self.timeout_action,
            max_downtime_ms=self.max_downtime_ms,
            bandwidth_mibps=self.bandwidth_mibps,
            auto_converge=self.auto_converge,
            post_copy=self.post_copy,
        )
