"""The objects and step lists the upgrade scenarios send, as old_client.py commands take them
(JSON, objects named by "$obj"): plain data, so either release's client plays them."""

from __future__ import annotations

from typing import Any

from tests.upgrade.configs import IMAGE_ID

# The domain libvirt's test:///default starts with, in every process that opens it.
TEST_DOMAIN_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"

IMAGE: dict[str, Any] = {
    "$obj": "ImageMeta",
    "id": IMAGE_ID,
    "name": "busybox",
    "disk_format": "qcow2",
    "properties": {"$obj": "ImageMetaProps"},
}


def sample_instance(guest_uuid: str, **values: Any) -> dict[str, Any]:
    """An Instance as a control plane would send it; `values` override its fields."""
    flavor = {
        "$obj": "Flavor",
        "flavorid": "m1.tiny",
        "name": "m1.tiny",
        "memory_mb": 64,
        "vcpus": 1,
        "root_gb": 1,
    }
    return {
        "$obj": "Instance",
        "uuid": guest_uuid,
        "name": f"instance-{guest_uuid[:8]}",
        "display_name": "upgrade guest",
        "project_id": "project-1",
        "vm_state": "building",
        "flavor": flavor,
        "memory_mb": 64,
        "vcpus": 1,
        "root_gb": 1,
    } | values


def host_steps(host: str, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"call": method, "host": host, "args": args} for method, args in calls]


def instance_steps(
    host: str, instance: dict[str, Any], calls: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Calls of `instance`'s actor: each sends the instance, routed by its uuid."""
    return [
        {
            "call": method,
            "host": host,
            "instance": instance["uuid"],
            "args": {"instance": instance, **args},
        }
        for method, args in calls
    ]


def until(topic: str, field: str, value: Any) -> dict[str, Any]:
    return {"topic": topic, "field": field, "value": value}


def values(answer: dict[str, Any], *names: str) -> list[Any]:
    """Each step's result's fields `names` (a tuple per step), a result that is no object
    as it is, an error as (type, message)."""
    out: list[Any] = []
    for result in answer["results"]:
        if "error" in result:
            out.append((result["error"]["type"], result["error"]["message"]))
        elif isinstance(result["ok"], dict):
            out.append(tuple(result["ok"].get(name) for name in names))
        else:
            out.append(result["ok"])
    return out


def payloads(answer: dict[str, Any], topic: str, name: str) -> list[Any]:
    """Field `name` of every event on `topic` that carries it, in arrival order."""
    return [
        e["payload"][name] for e in answer["events"] if e["topic"] == topic and name in e["payload"]
    ]
