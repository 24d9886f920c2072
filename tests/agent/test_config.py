"""Configuration comes from defaults, a TOML file and VIRTACTOR_* variables, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config


def test_defaults_use_the_embedded_bus_and_the_libvirt_test_driver() -> None:
    config = load_config(environ={})
    assert (config.amqp.url, config.libvirt.uri) == ("", "test:///default")


def test_file_values_are_overridden_by_environment_variables(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\nhost = "cmp-1"\n[amqp]\nurl = "amqp://a/"\nprefetch = 8\n'
        '[rpc]\nversion_cap = { Instance = "1.0" }\n'
    )
    config = load_config(path, environ={"VIRTACTOR_AMQP_PREFETCH": "32", "HOME": "/root"})
    assert config.agent.host == "cmp-1"
    assert (config.amqp.url, config.amqp.prefetch) == ("amqp://a/", 32)
    assert config.rpc.version_cap == {"Instance": "1.0"}


def test_a_setting_of_the_wrong_type_names_the_setting_and_the_value() -> None:
    with pytest.raises(ConfigError, match=r"\[amqp\] prefetch: 'many' is not a valid int"):
        load_config(environ={"VIRTACTOR_AMQP_PREFETCH": "many"})


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[libvirt]\nurl = 'qemu:///system'\n")
    with pytest.raises(ConfigError, match=r"\[libvirt\] url: unknown setting"):
        load_config(path, environ={})


def test_instance_bounds_come_from_the_instance_section_and_are_checked() -> None:
    from agent.service import instance_settings_from_config

    config = load_config(environ={"VIRTACTOR_INSTANCE_REBOOT_TIMEOUT": "45"})
    assert instance_settings_from_config(config).reboot_timeout == 45.0
    bad = load_config(environ={"VIRTACTOR_INSTANCE_DETACH_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match=r"\[instance\]: detach_timeout must be > 0"):
        instance_settings_from_config(bad)


async def test_the_agents_reply_cache_is_bounded_as_configured() -> None:
    from agent.service import Agent

    config = load_config(
        environ={
            "VIRTACTOR_RPC_REPLY_CACHE_ENTRIES": "50",
            "VIRTACTOR_RPC_REPLY_CACHE_BYTES": "1048576",
        }
    )
    cache = Agent(config).dispatcher.cache
    assert (cache.capacity, cache.ttl, cache.max_bytes) == (50, 600.0, 1048576)
