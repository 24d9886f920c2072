"""libvirt domain states to power states: nova's table, and unknown for what it cannot tell."""

from __future__ import annotations

import libvirt
import pytest

from agent.virt.power_state import power_state_of
from schemas.objects.enums import PowerState


@pytest.mark.parametrize(
    ("domain_state", "power_state"),
    [
        (libvirt.VIR_DOMAIN_NOSTATE, PowerState.PENDING),
        (libvirt.VIR_DOMAIN_RUNNING, PowerState.RUNNING),
        (libvirt.VIR_DOMAIN_BLOCKED, PowerState.RUNNING),
        (libvirt.VIR_DOMAIN_PAUSED, PowerState.PAUSED),
        (libvirt.VIR_DOMAIN_SHUTDOWN, PowerState.SHUTDOWN),
        (libvirt.VIR_DOMAIN_SHUTOFF, PowerState.SHUTDOWN),
        (libvirt.VIR_DOMAIN_CRASHED, PowerState.CRASHED),
        (libvirt.VIR_DOMAIN_PMSUSPENDED, PowerState.SUSPENDED),
    ],
)
def test_each_libvirt_state_maps_to_novas_power_state(
    domain_state: int, power_state: PowerState
) -> None:
    assert power_state_of(domain_state) == power_state


@pytest.mark.parametrize("domain_state", [None, 99])
def test_a_state_libvirt_could_not_tell_is_unknown_never_shutdown(
    domain_state: int | None,
) -> None:
    assert power_state_of(domain_state) is None


def test_a_domain_paused_while_starting_up_is_running_not_paused() -> None:
    starting = power_state_of(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP)
    assert starting == PowerState.RUNNING
    paused = power_state_of(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER)
    assert paused == PowerState.PAUSED
