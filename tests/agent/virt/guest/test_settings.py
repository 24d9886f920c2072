"""GuestSettings from the agent's configuration, and the values it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.virt.guest.errors import GuestSettingsError
from agent.virt.guest.settings import GuestSettings, guest_settings_from_config


def test_the_guest_section_and_agent_paths_become_guest_settings(tmp_path: Path) -> None:
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        '[agent]\nhost = "compute-7"\ninstances_path = "/srv/instances"\n'
        '[guest]\nimages_path = "/srv/images"\nvirt_type = "qemu"\ncpu_mode = "none"\n'
    )
    config = load_config(config_file, environ={"VIRTACTOR_GUEST_VNC_LISTEN": "192.0.2.5"})
    settings = guest_settings_from_config(config)
    assert settings.host == "compute-7"
    assert settings.instances_path == "/srv/instances"
    assert settings.image_cache_path == "/srv/instances/_base"
    assert settings.snapshots_path == "/srv/images"
    assert (settings.virt_type, settings.cpu_mode, settings.vnc_listen) == (
        "qemu",
        "none",
        "192.0.2.5",
    )
    assert settings.iscsi_initiator is None


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"virt_type": "xen"}, "virt_type: 'xen' is not one of ('kvm', 'qemu')"),
        ({"cpu_mode": "custom"}, "cpu_mode: 'custom' needs a cpu_model"),
        ({"console_log_max_bytes": 0}, "console_log_max_bytes: must be positive, got 0"),
    ],
)
def test_settings_that_cannot_work_are_refused(override: dict[str, object], reason: str) -> None:
    values: dict[str, object] = {
        "instances_path": "/i",
        "images_path": "/g",
        "image_cache_path": "/c",
        "snapshots_path": "/s",
    }
    with pytest.raises(GuestSettingsError) as caught:
        GuestSettings(**{**values, **override})  # type: ignore[arg-type]
    assert str(caught.value) == f"guest setting {reason}"
