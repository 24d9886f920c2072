"""A release reads the configuration files of the release before it, and those of the release
after it with a warning per setting it does not know (an error only when strict)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent import config as config_module
from agent.config import ConfigError, load_config

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def future_file(tmp_path: Path) -> Path:
    path = tmp_path / "virtactor.toml"
    path.write_text('[amqp]\nprefetch = 8\n[rpc]\ncall_timeout = 30.0\nfuture_knob = "on"\n')
    return path


def test_the_0_1_0_example_configuration_loads_without_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.config"):
        config = load_config(DATA / "virtactor-0.1.0.toml.example", environ={})
    assert (config.agent.host, config.rpc.reply_cache_entries) == ("cmp-001", 10_000)
    assert config.warnings == ()
    assert caplog.records == []


def test_every_setting_of_0_1_0_is_read_without_warnings() -> None:
    config = load_config(DATA / "virtactor-0.1.0-every-setting.toml", environ={})
    assert config.warnings == ()
    assert (config.agent.storage_ip, config.guest.cpu_mode) == ("198.51.100.10", "host-model")
    assert config.rpc.version_cap == {"Instance": "1.0"}


def test_a_future_setting_is_one_warning_naming_the_file_section_and_key(
    future_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.config"):
        config = load_config(future_file, environ={})
    warning = (
        f"configuration {future_file} [rpc] future_knob: unknown setting, ignored "
        "(written for a newer release?)"
    )
    assert config.warnings == (warning,)
    assert [r.getMessage() for r in caplog.records] == [warning]
    assert (config.amqp.prefetch, config.rpc.call_timeout) == (8, 30.0)


def test_a_future_section_is_a_warning_naming_the_file_and_section(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text('[events]\npublish_cap = "1.0"\n[amqp]\nprefetch = 8\n')
    config = load_config(path, environ={})
    assert config.warnings == (
        f"configuration {path} [events]: unknown section, ignored (written for a newer release?)",
    )
    assert config.amqp.prefetch == 8


def test_strict_refuses_a_future_setting_naming_the_file_section_and_key(
    future_file: Path,
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(future_file, environ={}, strict=True)
    assert str(refused.value) == (
        f"configuration {future_file} [rpc] future_knob: unknown setting, refused in strict mode"
    )


def test_strict_refuses_a_future_section(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text("[events]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"\[events\]: unknown section, refused in strict mode"):
        load_config(path, environ={}, strict=True)


def test_an_unknown_variable_of_a_known_section_is_a_warning_naming_the_variable() -> None:
    config = load_config(environ={"VIRTACTOR_AMQP_PORT": "5673", "VIRTACTOR_AMQP_PREFETCH": "8"})
    assert config.warnings == (
        "configuration environment VIRTACTOR_AMQP_PORT: unknown setting, ignored "
        "(written for a newer release?)",
    )
    assert config.amqp.prefetch == 8
    with pytest.raises(ConfigError, match="VIRTACTOR_AMQP_PORT: unknown setting, refused"):
        load_config(environ={"VIRTACTOR_AMQP_PORT": "5673"}, strict=True)


def test_variables_of_no_known_section_belong_to_other_tools_and_are_left_alone() -> None:
    config = load_config(
        environ={"VIRTACTOR_HOSTS_DIR": "/var/tmp/h", "VIRTACTOR_RELEASE_CACHE": "/c"},
        strict=True,
    )
    assert config.warnings == ()


def test_a_known_setting_of_the_wrong_type_stays_an_error_without_strict(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text('[amqp]\nprefetch = "many"\nfuture_knob = 1\n')
    with pytest.raises(ConfigError, match=r"\[amqp\] prefetch: 'many' is not a valid int"):
        load_config(path, environ={})


def test_a_renamed_setting_is_read_under_its_old_name_with_a_deprecation_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(config_module.RENAMED, ("amqp", "prefetch_count"), "prefetch")
    path = tmp_path / "virtactor.toml"
    path.write_text("[amqp]\nprefetch_count = 8\n")
    config = load_config(path, environ={}, strict=True)
    assert config.amqp.prefetch == 8
    assert config.warnings == (
        f"configuration {path} [amqp] prefetch_count: deprecated name, read as [amqp] prefetch",
    )
    # The new name wins over the old one, wherever each was set.
    both = load_config(path, environ={"VIRTACTOR_AMQP_PREFETCH": "16"})
    assert both.amqp.prefetch == 16


@pytest.mark.parametrize(
    ("cap", "reason"),
    [
        ("1", "it is not of the form 'MAJOR.MINOR'"),
        ("1.99", "it is newer than this release's RPC API version"),
        ("0.9", "it is of another major than this release's RPC API version"),
    ],
)
def test_an_rpc_version_cap_this_release_cannot_send_is_refused_at_load(
    cap: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(environ={"VIRTACTOR_RPC_RPC_VERSION_CAP": cap})
    assert str(refused.value).startswith(
        f"configuration [rpc] rpc_version_cap: RPC API version cap {cap!r} cannot be used: {reason}"
    )


def test_the_rpc_version_cap_is_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text('[rpc]\nrpc_version_cap = "1.0"\n')
    assert load_config(path, environ={}).rpc.rpc_version_cap == "1.0"
    assert load_config(environ={}).rpc.rpc_version_cap == ""


def test_virtactor_run_strict_exits_non_zero_naming_the_unknown_setting(
    future_file: Path,
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(future_file), "--strict"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=environ,
    )
    assert done.returncode == 2
    assert f"{future_file} [rpc] future_knob: unknown setting, refused in strict mode" in (
        done.stderr
    )


def test_the_example_configuration_of_this_release_loads_without_warnings() -> None:
    config = load_config(ROOT / "deploy" / "virtactor.toml.example", environ={}, strict=True)
    assert config.warnings == ()
