"""The configuration example operators copy is a valid configuration."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_example_configuration_loads_with_every_section() -> None:
    config = load_config(DEPLOY / "virtactor.toml.example", environ={})
    assert (config.agent.host, config.libvirt.uri) == ("cmp-001", "qemu:///system")
    assert config.amqp.url.startswith("amqp://") and config.amqp.quorum is True
    assert config.rpc.reply_cache_bytes == 64 * 1024 * 1024


def test_the_systemd_unit_runs_the_agent_with_that_configuration() -> None:
    unit = (DEPLOY / "systemd" / "virtactor.service").read_text()
    assert "virtactor --log-level INFO run --config /etc/virtactor/virtactor.toml" in unit
