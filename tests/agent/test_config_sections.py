"""Configuration sections that are an inner layer's settings field for field: `[instance]` is
the instance actors' settings, `[guest]` a part of the Guest layer's."""

from __future__ import annotations

import dataclasses

from actors.instance import InstanceSettings
from agent.config import AgentConfig, GuestSection, InstanceSection
from agent.virt.guest.settings import GuestSettings, guest_settings_from_config


def defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_the_instance_section_has_the_settings_fields_and_defaults() -> None:
    assert defaults(InstanceSection) == defaults(InstanceSettings)


def test_every_guest_setting_in_the_file_is_a_guest_layer_setting_of_that_name() -> None:
    assert set(defaults(GuestSection)) <= set(defaults(GuestSettings))


def test_the_guest_settings_take_the_sections_values_and_default_the_empty_paths() -> None:
    config = AgentConfig(guest=GuestSection(cpu_mode="none", vnc_listen="192.0.2.5"))
    settings = guest_settings_from_config(config)
    assert (settings.cpu_mode, settings.vnc_listen) == ("none", "192.0.2.5")
    assert settings.image_cache_path == f"{config.agent.instances_path}/_base"
    assert settings.snapshots_path == config.guest.images_path
    assert settings.storage_ip == config.agent.storage_ip
