"""libvirt's domain states as the agent's power states: a pure mapping, nova's table.

https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainState
"""

from __future__ import annotations

import libvirt

from schemas.objects.enums import PowerState

_BY_DOMAIN_STATE: dict[int, PowerState] = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.PENDING,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    # BLOCKED is a running guest waiting on a resource (Xen only in practice).
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    # SHUTDOWN is "being shut down": nova reports it as shut down already.
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}


def power_state_of(domain_state: int | None, reason: int | None = None) -> PowerState | None:
    """The power state of a `virDomainState` (and its reason); None (unknown) when libvirt
    could not tell or reported a state this mapping does not know. Never a guess of "shut down".

    A domain being started is PAUSED with reason STARTING_UP for a moment, while libvirt
    finishes setting QEMU up before it starts the vCPUs: that is a guest starting, not one a
    user paused, so it maps to RUNNING rather than flapping through "paused".
    """
    if domain_state is None:
        return None
    if (
        domain_state == libvirt.VIR_DOMAIN_PAUSED
        and reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP
    ):
        return PowerState.RUNNING
    return _BY_DOMAIN_STATE.get(domain_state)
