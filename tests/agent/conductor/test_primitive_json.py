"""The JSON encoding of wire values: every sample object round-trips, datetimes and packed
addresses included, through json text and through each database's JSON column."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from agent.conductor import SqlObjectStore
from agent.conductor.primitive_json import from_json, to_json
from schemas import DecodeError, EncodeError, ObjectPrimitive, VersionedObject, use_object_store
from schemas.objects import ComputeNode, Instance
from tests.schemas import samples

SAMPLES = [
    samples.flavor(),
    samples.network_info(),
    samples.bdms(),
    samples.instance(),
    samples.compute_node(),
]


def without_changes(value: Any) -> Any:
    if isinstance(value, ObjectPrimitive):
        return ObjectPrimitive(value.name, value.version, without_changes(value.data))
    if isinstance(value, dict):
        return {k: without_changes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_changes(v) for v in value]
    return value


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda obj: obj.OBJ_NAME)
def test_every_sample_object_round_trips_through_json_text(obj: VersionedObject) -> None:
    primitive = obj.to_primitive()
    text = json.dumps(to_json(primitive))
    back = from_json(json.loads(text))
    assert back == without_changes(primitive)
    assert type(obj).from_primitive(back) == obj


def test_an_object_document_names_its_type_and_version() -> None:
    doc = to_json(samples.flavor().to_primitive())
    assert doc["$object"]["name"] == "Flavor"
    assert doc["$object"]["version"] == "1.1"
    assert doc["$object"]["data"]["extra_specs"] == {"hw:cpu_policy": "shared"}


def test_datetimes_bytes_and_odd_floats_are_tagged() -> None:
    when = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)
    value = [when, b"\x20\x01", math.inf, 1.5, 2**64 - 1]
    doc = to_json(value)
    assert doc == [
        {"$datetime": "2026-11-21T12:30:15.123456+00:00"},
        {"$bytes": "IAE="},
        {"$float": "inf"},
        1.5,
        2**64 - 1,
    ]
    back = from_json(json.loads(json.dumps(doc)))
    assert back == value
    assert back[0].tzinfo is UTC
    assert math.isnan(from_json(to_json(math.nan)))


def test_a_dict_that_looks_like_a_tag_is_escaped() -> None:
    metadata = {"$object": "not one", "role": {"$bytes": "x"}}
    doc = to_json(metadata)
    assert doc == {"$object": "not one", "role": {"$dict": {"$bytes": "x"}}}
    assert from_json(json.loads(json.dumps(doc))) == metadata


def test_an_unknown_tag_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as caught:
        from_json({"$set": [1]})
    assert str(caught.value) == "cannot decode: stored JSON has an unknown tag '$set'"


def test_a_malformed_tag_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as caught:
        from_json({"$object": {"name": "Flavor"}})
    assert str(caught.value) == (
        "cannot decode: stored JSON $object is malformed: {'name': 'Flavor'}"
    )


def test_a_naive_datetime_is_an_encode_error() -> None:
    with pytest.raises(EncodeError) as caught:
        to_json(datetime(2026, 1, 1))
    assert str(caught.value) == (
        "cannot encode: a naive datetime cannot be stored: datetime.datetime(2026, 1, 1, 0, 0)"
    )


async def test_nested_objects_round_trip_through_the_json_columns(
    sql_store: SqlObjectStore,
) -> None:
    instance = samples.instance(created_at=samples.WHEN)
    node = samples.compute_node()
    with use_object_store(sql_store):
        await instance.create()
        await node.create()
        assert await Instance.get_by_uuid(None, instance.uuid) == instance
        assert await ComputeNode.get_by_uuid(None, node.uuid) == node
    async with sql_store.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT flavor, network_info FROM instances"))).one()
        pools = (await conn.execute(sa.text("SELECT pci_device_pools FROM compute_nodes"))).one()
    flavor, network_info = (json.loads(v) if isinstance(v, str) else v for v in row)
    assert flavor["$object"]["name"] == "Flavor"
    assert flavor["$object"]["data"]["memory_mb"] == 2048
    subnet = network_info["$object"]["data"]["objects"][0]["$object"]["data"]["network"]
    assert subnet["$object"]["data"]["subnets"][1]["$object"]["data"]["gateway"] == {
        "$bytes": "IAENuAAAAAAAAAAAAAAAAQ=="
    }
    assert "PciDevicePoolList" in str(pools[0])
