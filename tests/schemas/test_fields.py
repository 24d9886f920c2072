"""Every field type: what it coerces, what it refuses (with which message), and its wire form."""

from __future__ import annotations

import enum
import ipaddress
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas import (
    ObjectFieldError,
    ObjectRegistry,
    ReadOnlyFieldError,
    UnknownFieldError,
    UnsetFieldError,
    VersionedObject,
    decode,
    encode,
    fields,
)

registry = ObjectRegistry()


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


@registry.register
class Leaf(VersionedObject):
    __slots__ = ()
    label: str = fields.String()


@registry.register
class Sample(VersionedObject):
    __slots__ = ()

    text: str = fields.String()
    count: int = fields.Integer()
    ratio: float = fields.Float()
    flag: bool = fields.Boolean()
    ident: str = fields.UUID()
    when: datetime = fields.DateTime()
    color: str = fields.Enum(Color)
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address = fields.IPAddress()
    net: ipaddress.IPv4Network | ipaddress.IPv6Network = fields.IPNetwork()
    mac: str = fields.MACAddress()
    labels: dict[str, str] = fields.Dict(fields.String())
    sizes: list[int] = fields.List(fields.Integer())
    tags: set[str] = fields.Set(fields.String())
    leaf: Leaf = fields.Object("Leaf")
    leaves: list[Leaf] = fields.ListOfObjects("Leaf")
    maybe: str | None = fields.String(nullable=True)
    fallback: int = fields.Integer(default=7)
    created: str = fields.UUID(read_only=True)
    hosts: list[str | None] = fields.List(fields.String(nullable=True))


def roundtrip(obj: Sample) -> Sample:
    back = decode(encode(obj), registry=registry)
    assert isinstance(back, Sample)
    return back


def assert_field_error(exc: pytest.ExceptionInfo[ObjectFieldError], field: str, value: Any) -> None:
    assert exc.value.objname == "Sample"
    assert exc.value.field == field
    assert exc.value.value == value


# -- accepted spellings ------------------------------------------------------------------------

COERCIONS: list[tuple[str, Any, Any]] = [
    ("text", "hello", "hello"),
    ("text", Color.RED, "red"),
    ("count", 5, 5),
    ("count", "42", 42),
    ("count", 3.0, 3),
    ("count", -(2**63), -(2**63)),
    ("count", 2**64 - 1, 2**64 - 1),
    ("ratio", 1.5, 1.5),
    ("ratio", 2, 2.0),
    ("ratio", "0.25", 0.25),
    ("flag", True, True),
    (
        "ident",
        uuid.UUID("7F0D8F4E-1C2B-4A3D-9E8F-0A1B2C3D4E5F"),
        "7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f",
    ),
    ("ident", "7F0D8F4E1C2B4A3D9E8F0A1B2C3D4E5F", "7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f"),
    ("color", "green", "green"),
    ("color", Color.RED, "red"),
    ("addr", "10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
    ("addr", "2001:db8::1", ipaddress.IPv6Address("2001:db8::1")),
    ("addr", ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.1")),
    ("net", "10.1.0.0/16", ipaddress.IPv4Network("10.1.0.0/16")),
    ("net", "2001:db8::/48", ipaddress.IPv6Network("2001:db8::/48")),
    ("mac", "FA-16-3E-00-00-0A", "fa:16:3e:00:00:0a"),
    ("mac", "fa:16:3e:00:00:0b", "fa:16:3e:00:00:0b"),
    ("labels", {"a": "b"}, {"a": "b"}),
    ("sizes", (1, "2", 3.0), [1, 2, 3]),
    ("tags", ["x", "y", "x"], {"x", "y"}),
    ("tags", frozenset({"z"}), {"z"}),
    ("maybe", None, None),
    ("hosts", ["a", None], ["a", None]),
]


@pytest.mark.parametrize(("name", "given", "stored"), COERCIONS)
def test_assignment_coerces_accepted_spellings(name: str, given: Any, stored: Any) -> None:
    obj = Sample()
    setattr(obj, name, given)
    assert getattr(obj, name) == stored
    assert type(getattr(obj, name)) is type(stored)


def test_datetime_assignment_normalises_to_utc_and_accepts_iso_text() -> None:
    obj = Sample()
    plus_two = datetime(2026, 1, 2, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    obj.when = plus_two
    assert obj.when == datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert obj.when.tzinfo is UTC
    obj.when = "2026-01-02T12:00:00.000001+00:00"
    assert obj.when == datetime(2026, 1, 2, 12, 0, 0, 1, tzinfo=UTC)


# -- refused values ----------------------------------------------------------------------------

REFUSALS: list[tuple[str, Any, str]] = [
    ("text", 5, "a string"),
    ("text", None, "a string"),
    ("count", True, "an integer"),
    ("count", 2.5, "an integer"),
    ("count", "ten", "an integer"),
    ("count", 2**64, "an integer"),
    ("count", -(2**63) - 1, "an integer"),
    ("ratio", "fast", "a float"),
    ("ratio", False, "a float"),
    ("flag", 1, "a boolean"),
    ("flag", "yes", "a boolean"),
    ("ident", "not-a-uuid", "a UUID"),
    ("ident", 12, "a UUID"),
    ("when", datetime(2026, 1, 1), "a timezone-aware datetime"),
    ("when", "yesterday", "a timezone-aware datetime"),
    ("color", "blue", "one of ['green', 'red']"),
    ("addr", "10.0.0.256", "an IP address"),
    ("addr", 167772161, "an IP address"),
    ("net", "10.0.0.1/24", "an IP network"),
    ("net", "nonsense", "an IP network"),
    ("mac", "fa:16:3e:00:00", "a MAC address"),
    ("mac", "fa:16-3e:00:00:0a", "a MAC address"),
    ("labels", ["a"], "a dict of str to a string"),
    ("sizes", "123", "a list of an integer"),
    ("tags", "abc", "a set of a string"),
    ("leaf", "leaf", "a Leaf object"),
    ("leaves", [Leaf(label="x"), "y"], "a Leaf object"),
    ("maybe", 3, "a string or None"),
]


@pytest.mark.parametrize(("name", "given", "expected"), REFUSALS)
def test_assignment_refuses_bad_values_naming_object_field_type_and_value(
    name: str, given: Any, expected: str
) -> None:
    obj = Sample()
    with pytest.raises(ObjectFieldError) as exc:
        setattr(obj, name, given)
    assert exc.value.objname == "Sample"
    assert exc.value.field.startswith(name)
    assert exc.value.expected == expected
    assert (
        str(exc.value) == f"Sample.{exc.value.field}: expected {expected}, got {exc.value.value!r}"
    )
    assert not obj.obj_attr_is_set(name)


def test_container_element_errors_name_the_element() -> None:
    obj = Sample()
    with pytest.raises(ObjectFieldError) as exc:
        obj.labels = {"ok": "fine", "bad": 3}
    assert exc.value.field == "labels['bad']"
    assert exc.value.expected == "a string"
    assert str(exc.value) == "Sample.labels['bad']: expected a string, got 3"
    with pytest.raises(ObjectFieldError) as exc:
        obj.sizes = [1, 2, "three"]
    assert str(exc.value) == "Sample.sizes[2]: expected an integer, got 'three'"
    with pytest.raises(ObjectFieldError) as exc:
        obj.leaves = [Leaf(label="a"), Sample()]
    assert exc.value.field == "leaves[1]"


def test_dict_keys_must_be_strings() -> None:
    with pytest.raises(ObjectFieldError) as exc:
        Sample(labels={1: "one"})
    assert str(exc.value) == "Sample.labels key: expected a string, got 1"


def test_object_field_refuses_an_object_of_another_name() -> None:
    with pytest.raises(ObjectFieldError) as exc:
        Sample(leaf=Sample())
    assert exc.value.field == "leaf"
    assert exc.value.expected == "a Leaf object"


# -- unset, None, defaults, read-only ----------------------------------------------------------


def test_unset_is_distinct_from_none_and_reading_it_raises_a_clear_error() -> None:
    obj = Sample(maybe=None)
    assert obj.obj_attr_is_set("maybe")
    assert obj.maybe is None
    assert not obj.obj_attr_is_set("text")
    with pytest.raises(UnsetFieldError) as exc:
        _ = obj.text
    assert str(exc.value) == "Sample.text is not set and has no default"
    assert isinstance(exc.value, AttributeError)
    assert getattr(obj, "text", "fallback") == "fallback"


def test_reading_an_unset_field_with_a_default_stores_it_without_marking_it_changed() -> None:
    obj = Sample()
    assert not obj.obj_attr_is_set("fallback")
    assert obj.fallback == 7
    assert obj.obj_attr_is_set("fallback")
    assert obj.obj_what_changed() == set()


def test_obj_set_defaults_sets_and_marks_unset_fields_with_defaults() -> None:
    obj = Sample()
    obj.obj_set_defaults()
    assert obj.obj_get_changes() == {"fallback": 7}


def test_a_read_only_field_can_be_set_once() -> None:
    obj = Sample(created="7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f")
    with pytest.raises(ReadOnlyFieldError) as exc:
        obj.created = "00000000-0000-4000-8000-000000000000"
    assert str(exc.value) == (
        "Sample.created is read-only and already set to '7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f'"
    )


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(UnknownFieldError) as exc:
        Sample(colour="red")
    assert str(exc.value) == "Sample has no field 'colour'"
    with pytest.raises(UnknownFieldError):
        Sample().obj_attr_is_set("colour")


def test_deleting_a_field_unsets_it() -> None:
    obj = Sample(text="x")
    del obj.text
    assert not obj.obj_attr_is_set("text")
    assert obj.obj_what_changed() == set()


def test_a_default_that_does_not_fit_fails_at_class_definition() -> None:
    with pytest.raises(RuntimeError) as exc:

        class Broken(VersionedObject):
            __slots__ = ()
            size: int = fields.Integer(default="big")

    assert isinstance(exc.value.__cause__, ObjectFieldError)
    assert str(exc.value.__cause__) == "Broken.size: expected an integer, got 'big'"


def test_declarations_need_slots_and_annotations() -> None:
    with pytest.raises(TypeError, match="must declare __slots__"):

        class NoSlots(VersionedObject):
            name: str = fields.String()

    with pytest.raises(TypeError, match="needs a type annotation"):

        class NoAnnotation(VersionedObject):
            __slots__ = ()
            name = fields.String()

    with pytest.raises(TypeError, match="default can only be None"):
        fields.Object("Leaf", default=Leaf(label="shared"))


# -- wire form ---------------------------------------------------------------------------------


def full_sample() -> Sample:
    return Sample(
        text="t",
        count=-3,
        ratio=0.5,
        flag=False,
        ident=uuid.UUID(int=1),
        when=datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        color="red",
        addr="2001:db8::7",
        net="192.0.2.0/28",
        mac="fa:16:3e:aa:bb:cc",
        labels={"k": "v"},
        sizes=[1, 2],
        tags={"a", "b"},
        leaf=Leaf(label="one"),
        leaves=[Leaf(label="two"), Leaf(label="three")],
        maybe=None,
        created=uuid.UUID(int=2),
        hosts=["h", None],
    )


def test_every_field_type_survives_the_wire_exactly() -> None:
    obj = full_sample()
    back = roundtrip(obj)
    assert back == obj
    assert back.when.tzinfo is UTC
    assert type(back.addr) is ipaddress.IPv6Address
    assert type(back.net) is ipaddress.IPv4Network
    assert back.tags == {"a", "b"}
    for name in Sample.obj_fields():
        assert back.obj_attr_is_set(name) == obj.obj_attr_is_set(name)


def test_ipv4_and_ipv6_values_use_their_compact_wire_forms() -> None:
    v4 = Sample(addr="10.0.0.1", net="10.1.0.0/16").to_primitive().data
    assert v4 == {"addr": 0x0A000001, "net": 0x0A010000 << 8 | 16}
    v6 = Sample(addr="::1", net="2001:db8::/32").to_primitive().data
    assert v6["addr"] == b"\x00" * 15 + b"\x01"
    assert v6["net"] == ipaddress.IPv6Address("2001:db8::").packed + bytes([32])


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("text", 5),
        ("count", "5"),
        ("count", True),
        ("flag", 1),
        ("ident", "7F0D8F4E-1C2B-4A3D-9E8F-0A1B2C3D4E5F"),  # lenient on assignment, not on wire
        ("color", "blue"),
        ("addr", "10.0.0.1"),
        ("addr", 2**32),
        ("addr", b"\x01\x02\x03"),
        ("net", 0x0A000001 << 8 | 24),  # host bits set
        ("net", 0x0A000000 << 8 | 33),  # prefix longer than the address
        ("mac", "FA:16:3E:00:00:01"),
        ("labels", {"a": 1}),
        ("sizes", [1, "2"]),
        ("tags", "ab"),
        ("leaf", {"label": "x"}),
        ("maybe", 1.5),
        ("hosts", ["a", 1]),
    ],
)
def test_the_wire_accepts_only_the_exact_wire_form(name: str, wire: Any) -> None:
    field = Sample._obj_fields[name]
    with pytest.raises(ObjectFieldError) as exc:
        field.from_wire("Sample", wire)
    assert exc.value.objname == "Sample"
    assert exc.value.field.startswith(name)


def test_field_descriptions_cover_type_nullability_default_and_read_only() -> None:
    described = {name: field.describe() for name, field in Sample._obj_fields.items()}
    assert described["maybe"] == "StringField(nullable=True)"
    assert described["fallback"] == "IntegerField(nullable=False, default=7)"
    assert described["created"] == "UUIDField(nullable=False, read_only=True)"
    assert described["color"] == "EnumField(values=['green', 'red'], nullable=False)"
    assert described["leaves"] == "ListOfObjectsField('Leaf', nullable=False)"
    assert described["labels"] == "DictField(StringField(nullable=False), nullable=False)"
