"""Configuration comes from defaults, a TOML file and VIRTACTOR_* variables, in that order."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
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


def test_an_unknown_setting_is_refused_when_strict(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[libvirt]\nurl = 'qemu:///system'\n")
    with pytest.raises(ConfigError, match=r"\[libvirt\] url: unknown setting"):
        load_config(path, environ={}, strict=True)


def test_instance_bounds_come_from_the_instance_section_and_are_checked() -> None:
    from agent.config import AgentConfig, InstanceSection
    from agent.service import instance_settings_from_config

    config = load_config(environ={"VIRTACTOR_INSTANCE_REBOOT_TIMEOUT": "45"})
    assert instance_settings_from_config(config).reboot_timeout == 45.0
    with pytest.raises(ConfigError) as refused:
        load_config(environ={"VIRTACTOR_INSTANCE_DETACH_TIMEOUT": "0"})
    assert str(refused.value) == (
        "configuration [instance] detach_timeout: detach_timeout must be > 0 seconds, got 0.0 "
        "(from environment VIRTACTOR_INSTANCE_DETACH_TIMEOUT)"
    )
    # A configuration built in code, not loaded, is still checked when the agent uses it.
    bad = AgentConfig(instance=InstanceSection(detach_timeout=0))
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


def test_the_default_host_ip_is_this_hosts_default_route_address() -> None:
    from agent.host_address import default_host_ip

    agent = load_config(environ={}).agent
    assert agent.host_ip == default_host_ip()
    assert not ipaddress.ip_address(agent.host_ip).is_loopback  # this machine has a route
    assert agent.storage_ip == agent.host_ip


def test_storage_ip_is_its_own_setting_and_host_ip_stays_as_set() -> None:
    agent = load_config(
        environ={"VIRTACTOR_AGENT_HOST_IP": "192.0.2.10", "VIRTACTOR_AGENT_STORAGE_IP": "fd00::9"}
    ).agent
    assert (agent.host_ip, agent.storage_ip) == ("192.0.2.10", "fd00::9")
    assert load_config(environ={"VIRTACTOR_AGENT_HOST_IP": "192.0.2.10"}).agent.storage_ip == (
        "192.0.2.10"
    )


def test_an_address_that_is_not_an_ip_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(environ={"VIRTACTOR_AGENT_STORAGE_IP": "storage.example.net"})
    assert str(exc.value) == (
        "configuration [agent] storage_ip: 'storage.example.net' is not an IP address "
        "(from environment VIRTACTOR_AGENT_STORAGE_IP)"
    )


@pytest.mark.parametrize(
    ("route_sources", "interfaces", "chosen"),
    [
        (["192.0.2.2", "fd00::2"], ["127.0.0.1", "198.51.100.1"], "192.0.2.2"),
        ([], ["127.0.0.1", "169.254.0.5", "198.51.100.1"], "198.51.100.1"),
        (["fd00::2"], [], "fd00::2"),
        ([], ["127.0.0.1"], "127.0.0.1"),
        ([], [], "127.0.0.1"),
    ],
)
def test_the_host_ip_is_the_route_source_then_an_interface_address_then_loopback(
    route_sources: list[str], interfaces: list[str], chosen: str
) -> None:
    from agent.host_address import choose_host_ip

    assert choose_host_ip(route_sources, interfaces) == chosen


def test_in_a_network_namespace_with_no_route_the_host_ip_is_loopback() -> None:
    # A fresh network namespace has only a loopback device, and it is down.
    found = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", NO_ROUTE_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert found.stdout.split() == ["[]", "[]", "127.0.0.1"]


NO_ROUTE_PROBE = """
from agent import host_address
print(host_address._route_source_addresses(), host_address._interface_addresses(),
      host_address.default_host_ip())
"""
