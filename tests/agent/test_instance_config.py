"""`[instance]` in the configuration file is exactly the instance actors' settings."""

from __future__ import annotations

import dataclasses

from actors.instance import InstanceSettings
from agent.config import InstanceSection


def test_the_instance_section_has_the_settings_fields_and_defaults() -> None:
    section = {f.name: f.default for f in dataclasses.fields(InstanceSection)}
    settings = {f.name: f.default for f in dataclasses.fields(InstanceSettings)}
    assert section == settings
