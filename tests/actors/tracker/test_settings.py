"""`TrackerSettings` refuses what cannot be meant (ratios <= 0, negative reservations, an
audit interval <= 0) and parses `pci_device_spec` and `pci_alias`, each error message naming
the key and the value that was wrong."""

from __future__ import annotations

import math

import pytest

from actors.tracker import TrackerSettings
from actors.tracker.settings import PciAlias, PciSpec, parse_pci_alias, parse_pci_spec


def test_the_defaults_are_novas() -> None:
    settings = TrackerSettings()
    assert (
        settings.cpu_allocation_ratio,
        settings.ram_allocation_ratio,
        settings.disk_allocation_ratio,
    ) == (4.0, 1.0, 1.0)
    assert (settings.reserved_host_cpus, settings.reserved_host_memory_mb) == (0, 512)
    assert settings.reserved_host_disk_mb == 0
    assert settings.specs() == ()  # no device is passed through unless named
    assert settings.aliases() == {}


@pytest.mark.parametrize(
    "name", ["cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"]
)
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan])
def test_an_allocation_ratio_must_be_above_zero(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be > 0, got {value}$"):
        TrackerSettings(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"]
)
def test_a_small_positive_ratio_is_accepted(name: str) -> None:
    assert getattr(TrackerSettings(**{name: 0.01}), name) == 0.01  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["reserved_host_cpus", "reserved_host_memory_mb", "reserved_host_disk_mb"]
)
def test_a_reservation_must_not_be_negative(name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be >= 0, got -1$"):
        TrackerSettings(**{name: -1})  # type: ignore[arg-type]
    assert getattr(TrackerSettings(**{name: 0}), name) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.0, -5.0, math.nan])
def test_the_audit_interval_must_be_above_zero(value: float) -> None:
    with pytest.raises(ValueError, match=f"^audit_interval must be > 0 seconds, got {value}$"):
        TrackerSettings(audit_interval=value)


# --- pci_device_spec -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("8086:154c", PciSpec("8086", "154c")),
        ("10de:*", PciSpec("10de", "*")),
        ("*:*", PciSpec("*", "*")),
        ("0x8086:0x154C", PciSpec("8086", "154c")),  # lower case, without 0x
        (" 8086 : 154c ", PciSpec("8086", "154c")),
    ],
)
def test_a_pci_device_spec_entry_is_vendor_colon_product(text: str, spec: PciSpec) -> None:
    assert parse_pci_spec(text) == spec
    assert TrackerSettings(pci_device_spec=(text,)).specs() == (spec,)


def test_a_pci_spec_matches_its_ids_and_star_matches_any() -> None:
    assert PciSpec("8086", "154c").matches("8086", "154c")
    assert not PciSpec("8086", "154c").matches("8086", "1572")
    assert PciSpec("10de", "*").matches("10de", "1db4")
    assert not PciSpec("10de", "*").matches("8086", "1db4")
    assert PciSpec("*", "*").matches("14e4", "165f")


@pytest.mark.parametrize("text", ["8086", "8086:154c:1", "", "8086;154c"])
def test_a_pci_device_spec_entry_without_one_colon_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=f"^pci_device_spec entry {text!r} is not VENDOR:PRODUCT$"):
        TrackerSettings(pci_device_spec=("8086:154c", text))


@pytest.mark.parametrize(
    ("text", "what", "value"),
    [
        ("808:154c", "vendor id", "808"),
        ("zz:154c", "vendor id", "zz"),
        ("8086:154cc", "product id", "154cc"),
        ("8086:", "product id", ""),
        ("8086:15*", "product id", "15*"),
    ],
)
def test_a_pci_device_spec_entry_with_a_bad_id_is_refused_naming_the_id(
    text: str, what: str, value: str
) -> None:
    with pytest.raises(ValueError) as refused:
        TrackerSettings(pci_device_spec=(text,))
    assert f"{what} {value!r} is not 4 hex digits or '*'" in str(refused.value)


def test_a_bad_id_in_pci_device_spec_names_the_setting_and_the_entry() -> None:
    # Set directly (not through the config file, which adds the key), the message must still
    # say which setting and which entry, as pci_alias's do ("pci_alias gpu: vendor id ...").
    with pytest.raises(ValueError) as refused:
        TrackerSettings(pci_device_spec=("8086:154c", "zz:154c"))
    message = str(refused.value)
    assert "pci_device_spec" in message, message
    assert "'zz:154c'" in message, message


# --- pci_alias ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alias"),
    [
        ("10de:1db4", PciAlias("gpu", "10de", "1db4", None)),
        ("0x10DE:0x1DB4", PciAlias("gpu", "10de", "1db4", None)),
        ("8086:154c:type-VF", PciAlias("gpu", "8086", "154c", "type-VF")),
        ("8086:1572:type-PF", PciAlias("gpu", "8086", "1572", "type-PF")),
        ("10de:1db4:type-PCI", PciAlias("gpu", "10de", "1db4", "type-PCI")),
    ],
)
def test_a_pci_alias_is_vendor_product_and_an_optional_type(text: str, alias: PciAlias) -> None:
    assert parse_pci_alias("gpu", text) == alias
    assert TrackerSettings(pci_alias={"gpu": text}).aliases() == {"gpu": alias}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("gpu", "10de", "pci_alias gpu = '10de' is not VENDOR:PRODUCT[:TYPE]"),
        ("gpu", "10de:1db4:type-PCI:x", "pci_alias gpu = '10de:1db4:type-PCI:x' is not"),
        ("gpu", "10de:1db4:PCI", "pci_alias gpu: device type 'PCI' is not one of"),
        ("gpu", "10de:*", "pci_alias gpu: product id '*' is not 4 hex digits"),
        ("gpu", "*:1db4", "pci_alias gpu: vendor id '*' is not 4 hex digits"),
        ("gpu", "10d:1db4", "pci_alias gpu: vendor id '10d' is not 4 hex digits"),
        ("", "10de:1db4", "pci_alias name '' must be non-empty, without ',' or ':'"),
        ("g:pu", "10de:1db4", "pci_alias name 'g:pu' must be non-empty"),
        ("g,pu", "10de:1db4", "pci_alias name 'g,pu' must be non-empty"),
    ],
)
def test_a_bad_pci_alias_is_refused_naming_the_key_and_the_alias(
    name: str, text: str, message: str
) -> None:
    with pytest.raises(ValueError) as refused:
        TrackerSettings(pci_alias={"nic": "8086:154c", name: text})
    assert str(refused.value).startswith(message), str(refused.value)
