"""Every value is checked when the configuration is loaded, and every problem is reported at
once, a line each naming where the value came from, the value and what was expected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import _SECTIONS, ConfigError, load_config


def refusal_of(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as refused:
        load_config(environ=environ)
    return str(refused.value)


def test_every_bad_value_in_a_file_is_one_line_naming_the_file_section_and_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text(
        "[agent]\nblocking_workers = 2.9\nheartbeat_interval = -1\n"
        '[libvirt]\nuri = "htp://nowhere"\n'
        '[guest]\nvnc_enabled = "yes"\n'
        '[amqp]\nurl = "htp://nowhere"\nprefetch = 0\n'
        '[conductor]\ndatabase_url = "mysql://db.example.net/virtactor"\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    expected = [
        f"{path} [agent] blocking_workers: 2.9 is not a valid int (expected a whole number)",
        f"{path} [agent] heartbeat_interval: -1.0 is out of range (expected > 0)",
        f"{path} [libvirt] uri: 'htp://nowhere' is not a libvirt URI (expected "
        "driver[+transport]://[host]/path, e.g. qemu:///system, qemu+ssh://host/system, "
        "qemu+tls://host/system, test:///default)",
        f"{path} [guest] vnc_enabled: 'yes' is not a valid bool (expected true or false, unquoted)",
        f"{path} [amqp] url: 'htp://nowhere' is not an AMQP URL (expected empty for the "
        "in-process bus, or amqp://user:password@host:5672/vhost or amqps://...)",
        f"{path} [amqp] prefetch: 0 is out of range (expected 1 to 65535)",
        f"{path} [conductor] database_url: 'mysql://db.example.net/virtactor': driver 'mysql' "
        "is not supported (use a file path, sqlite+aiosqlite:// or postgresql+asyncpg://)",
    ]
    assert refused.value.problems == tuple(f"configuration {line}" for line in expected)
    assert str(refused.value) == "\n".join(refused.value.problems)


def test_a_bad_variable_names_the_setting_and_the_variable() -> None:
    assert refusal_of({"VIRTACTOR_AMQP_PREFETCH": "2.9"}) == (
        "configuration [amqp] prefetch: '2.9' is not a valid int (expected a whole number) "
        "(from environment VIRTACTOR_AMQP_PREFETCH)"
    )


def test_a_float_setting_takes_a_whole_number_and_an_int_setting_refuses_a_fraction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text("[agent]\nheartbeat_interval = 5\n[rpc]\nreply_cache_entries = 2.0\n")
    with pytest.raises(ConfigError, match=r"reply_cache_entries: 2\.0 is not a valid int"):
        load_config(path, environ={})
    path.write_text("[agent]\nheartbeat_interval = 5\n")
    heartbeat = load_config(path, environ={}).agent.heartbeat_interval
    assert (heartbeat, type(heartbeat)) == (5.0, float)


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("0", False), ("FALSE", False)])
def test_a_bool_from_the_environment_is_one_of_the_usual_words(text: str, value: bool) -> None:
    config = load_config(environ={"VIRTACTOR_AMQP_QUORUM": text})
    assert config.amqp.quorum is value


def test_a_bool_from_the_environment_that_is_no_such_word_is_refused() -> None:
    assert refusal_of({"VIRTACTOR_AMQP_QUORUM": "on"}) == (
        "configuration [amqp] quorum: 'on' is not a valid bool (expected true, false, 1, 0, "
        "yes or no) (from environment VIRTACTOR_AMQP_QUORUM)"
    )


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite_is_refused(text: str) -> None:
    assert "is not a valid float (expected a finite number)" in refusal_of(
        {"VIRTACTOR_RPC_CALL_TIMEOUT": text}
    )


# 0 means something for these: publish at once / do not wait / power off without waiting.
ZERO_IS_MEANINGFUL = {
    ("agent", "reboot_flap_delay"),
    ("rpc", "subscriber_answer_wait"),
    ("instance", "shutdown_timeout"),
    # 0: the image cache is cleaned only when manage_image_cache is asked.
    ("guest", "image_cache_interval"),
    # A migration's timeouts and bandwidth: 0 is "none" / "no limit".
    ("migration", "completion_timeout_per_gib"),
    ("migration", "progress_timeout"),
    ("migration", "bandwidth_mibps"),
    # 0: the dead letter of a refused request keeps its headers and none of its body.
    ("amqp", "dead_letter_body_bytes"),
}
DURATIONS = [
    (section, f.name)
    for section, cls in _SECTIONS.items()
    for f in dataclasses.fields(cls)
    if isinstance(f.default, float)
    and f.name.endswith(("_interval", "_timeout", "_wait", "_seconds", "_delay", "_max_age"))
]
COUNTS = [
    (section, f.name)
    for section, cls in _SECTIONS.items()
    for f in dataclasses.fields(cls)
    if type(f.default) is int and not f.name.startswith("reserved_host_")
]


def test_the_lists_of_checked_numbers_are_not_empty() -> None:
    assert len(DURATIONS) >= 18 and len(COUNTS) >= 8


@pytest.mark.parametrize(("section", "key"), DURATIONS)
def test_no_duration_is_negative_or_zero_unless_zero_means_something(
    section: str, key: str
) -> None:
    variable = f"VIRTACTOR_{section.upper()}_{key.upper()}"
    assert f"[{section}] {key}:" in refusal_of({variable: "-1"})
    if (section, key) in ZERO_IS_MEANINGFUL:
        assert getattr(getattr(load_config(environ={variable: "0"}), section), key) == 0.0
    else:
        assert f"[{section}] {key}:" in refusal_of({variable: "0"})


@pytest.mark.parametrize(("section", "key"), COUNTS)
def test_no_count_or_size_is_zero_unless_zero_means_something(section: str, key: str) -> None:
    variable = f"VIRTACTOR_{section.upper()}_{key.upper()}"
    assert f"[{section}] {key}:" in refusal_of({variable: "-1"})
    if (section, key) in ZERO_IS_MEANINGFUL:
        assert getattr(getattr(load_config(environ={variable: "0"}), section), key) == 0
    else:
        assert f"[{section}] {key}:" in refusal_of({variable: "0"})


def test_the_prefetch_is_within_amqps_sixteen_bits() -> None:
    assert load_config(environ={"VIRTACTOR_AMQP_PREFETCH": "65535"}).amqp.prefetch == 65535
    assert "65536 is out of range (expected 1 to 65535)" in refusal_of(
        {"VIRTACTOR_AMQP_PREFETCH": "65536"}
    )


@pytest.mark.parametrize(
    "url", ["", "amqp://guest:guest@127.0.0.1:1/", "amqps://rabbit.example.net/virtactor"]
)
def test_an_amqp_url_is_empty_or_amqp_or_amqps(url: str) -> None:
    assert load_config(environ={"VIRTACTOR_AMQP_URL": url}).amqp.url == url


@pytest.mark.parametrize(
    "url", ["htp://nowhere", "http://rabbit/", "rabbit:5672", "amqp://rabbit:99999/"]
)
def test_any_other_amqp_url_is_refused(url: str) -> None:
    assert refusal_of({"VIRTACTOR_AMQP_URL": url}).startswith(f"configuration [amqp] url: {url!r}")


@pytest.mark.parametrize(
    "uri",
    [
        "qemu:///system",
        "qemu+ssh://root@cmp-2/system",
        "qemu+tls://cmp-2.example.net/system",
        "qemu+tcp://192.0.2.3:16509/system",
        "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
        "test:///default",
        "lxc:///",
    ],
)
def test_a_libvirt_uri_names_a_driver_and_transport_libvirt_knows(uri: str) -> None:
    assert load_config(environ={"VIRTACTOR_LIBVIRT_URI": uri}).libvirt.uri == uri


@pytest.mark.parametrize(
    "uri", ["htp://nowhere", "qemu+smoke://cmp-2/system", "/run/libvirt", "qemu:/system", ""]
)
def test_any_other_libvirt_uri_is_refused(uri: str) -> None:
    refusal = refusal_of({"VIRTACTOR_LIBVIRT_URI": uri})
    assert refusal.startswith(f"configuration [libvirt] uri: {uri!r} is not a libvirt URI")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/var/lib/virtactor/conductor.sqlite",
        "sqlite+aiosqlite:////var/lib/virtactor/conductor.sqlite",
        "postgresql+asyncpg://virtactor:secret@db.example.net:5432/virtactor",
        "postgresql://virtactor@db.example.net/virtactor",
    ],
)
def test_a_database_url_is_empty_a_path_sqlite_or_postgresql(url: str) -> None:
    config = load_config(environ={"VIRTACTOR_CONDUCTOR_DATABASE_URL": url})
    assert config.conductor.database_url == url


@pytest.mark.parametrize("url", ["mysql://db/virtactor", "htp://nowhere", "://nowhere"])
def test_any_other_database_url_is_refused(url: str) -> None:
    assert refusal_of({"VIRTACTOR_CONDUCTOR_DATABASE_URL": url}).startswith(
        f"configuration [conductor] database_url: {url!r}"
    )


def test_resources_are_checked_by_the_tracker_each_problem_at_its_key(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text(
        "[resources]\ncpu_allocation_ratio = 0.0\nreserved_host_cpus = -1\n"
        'pci_device_spec = ["zz:154c"]\npci_alias = { gpu = "10de" }\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert sorted(refused.value.problems) == [
        f"configuration {path} [resources] cpu_allocation_ratio: cpu_allocation_ratio must "
        "be > 0, got 0.0",
        f"configuration {path} [resources] pci_alias: pci_alias gpu = '10de' is not "
        "VENDOR:PRODUCT[:TYPE]",
        f"configuration {path} [resources] pci_device_spec: pci_device_spec entry 'zz:154c': "
        "vendor id 'zz' is not 4 hex digits or '*'",
        f"configuration {path} [resources] reserved_host_cpus: reserved_host_cpus must be >= "
        "0, got -1",
    ]


def test_both_addresses_are_reported_when_both_are_wrong(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text('[agent]\nhost_ip = "cmp-1"\nstorage_ip = "storage"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert refused.value.problems == (
        f"configuration {path} [agent] host_ip: 'cmp-1' is not an IP address",
        f"configuration {path} [agent] storage_ip: 'storage' is not an IP address",
    )


def test_strict_reports_unknown_settings_among_the_other_problems(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text("[amqp]\nprefetch = 0\nport = 5672\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={"VIRTACTOR_GUEST_CACHE": "none"}, strict=True)
    assert set(refused.value.problems) == {
        "configuration environment VIRTACTOR_GUEST_CACHE: unknown setting, refused in strict mode",
        f"configuration {path} [amqp] prefetch: 0 is out of range (expected 1 to 65535)",
        f"configuration {path} [amqp] port: unknown setting, refused in strict mode",
    }


def test_a_config_error_keeps_its_problems_when_rebuilt_from_its_fields() -> None:
    error = ConfigError.listing([("[amqp] url", "bad"), ("[amqp] prefix", "empty")])
    rebuilt = type(error)(error.message, **error.fields)
    assert (
        rebuilt.problems
        == error.problems
        == (
            "configuration [amqp] url: bad",
            "configuration [amqp] prefix: empty",
        )
    )
    assert ConfigError(where="[amqp] url", reason="bad").problems == (
        "configuration [amqp] url: bad",
    )


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("virt_type", "xen", "kvm, qemu"),
        ("cpu_mode", "host", "host-model, host-passthrough, custom, none"),
        ("disk_cachemode", "fast", "none, writethrough, writeback, directsync, unsafe"),
    ],
)
def test_the_guest_layers_choices_are_checked_at_load(key: str, value: str, allowed: str) -> None:
    assert refusal_of({f"VIRTACTOR_GUEST_{key.upper()}": value}) == (
        f"configuration [guest] {key}: {value!r} is not one of {allowed} "
        f"(from environment VIRTACTOR_GUEST_{key.upper()})"
    )
