"""The configuration example operators copy is a valid configuration, and documents every
setting of this release."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from agent.config import _SECTIONS, load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE = DEPLOY / "virtactor.toml.example"
_HEADER = re.compile(r"#?\s*\[(\w+)\]\s*")
_COMMENTED = re.compile(r"#\s*(\w+\s*=.*)")


def uncommented(text: str) -> str:
    """The example with its commented-out sections and settings (`# [section]`,
    `# key = value`) written in; prose comments stay comments."""
    return "\n".join(_uncommented(line) for line in text.splitlines()) + "\n"


def _uncommented(line: str) -> str:
    if _HEADER.fullmatch(line):
        return line.lstrip("# ")
    setting = _COMMENTED.fullmatch(line)
    if setting is not None and _is_toml(setting[1]):
        return setting[1]
    return line


def _is_toml(line: str) -> bool:
    try:
        tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return False
    return True


def test_the_example_configuration_loads_with_every_section() -> None:
    config = load_config(EXAMPLE, environ={})
    assert (config.agent.host, config.libvirt.uri) == ("cmp-001", "qemu:///system")
    assert config.amqp.url.startswith("amqp://") and config.amqp.quorum is True
    assert config.rpc.reply_cache_bytes == 64 * 1024 * 1024


def test_the_example_names_every_setting_of_every_section() -> None:
    named = tomllib.loads(uncommented(EXAMPLE.read_text()))
    missing = [
        f"[{section}] {f.name}"
        for section, cls in _SECTIONS.items()
        for f in dataclasses.fields(cls)
        if f.name not in named.get(section, {})
    ]
    assert missing == []


def test_the_example_with_everything_uncommented_loads_strictly(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text(uncommented(EXAMPLE.read_text()))
    config = load_config(path, environ={}, strict=True)
    assert config.warnings == ()
    assert config.conductor.database_url.startswith("postgresql+asyncpg://")
    assert config.resources.pci_alias["gpu"] == "10de:1eb8"
    assert config.rpc.version_cap == {"Instance": "1.1"}


def test_the_systemd_unit_runs_the_agent_with_that_configuration() -> None:
    unit = (DEPLOY / "systemd" / "virtactor-agent.service").read_text()
    assert "virtactor --log-level INFO run --config /etc/virtactor/virtactor.toml" in unit
