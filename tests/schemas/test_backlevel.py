"""Back-levelling between releases: a registry of "release N" classes next to today's."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schemas import (
    DecodeError,
    IncompatibleObjectVersion,
    ObjectPrimitive,
    ObjectRegistry,
    ObjectVersionError,
    VersionedObject,
    decode,
    default_registry,
    encode,
    obj_manifest,
)
from schemas.objects import ComputeNode, Flavor, Instance
from tests.schemas import samples


def old_release(
    current: type[VersionedObject],
    version: str,
    drop: tuple[str, ...],
    relationships: dict[str, list[tuple[str, str]]] | None = None,
) -> type[VersionedObject]:
    """The class an older release had: today's fields minus `drop`, at `version`."""
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__annotations__": {},
        "VERSION": version,
        "OBJ_NAME": current.OBJ_NAME,
        "OBJ_KEY": current.OBJ_KEY,
        "OBJ_RELATIONSHIPS": relationships or {},
    }
    for name, field in current._obj_fields.items():
        if name not in drop:
            namespace[name] = copy.copy(field)
            namespace["__annotations__"][name] = "Any"
    return type(current.__name__, (VersionedObject,), namespace)


def release_n() -> ObjectRegistry:
    """Release N: ComputeNode 1.0 (no PCI pools), Instance 1.0 (no `hidden`), Flavor 1.0."""
    old = ObjectRegistry()
    old.register(old_release(ComputeNode, "1.0", drop=("pci_device_pools", "supported_instances")))
    old.register(old_release(Flavor, "1.0", drop=("description",)))
    old.register(
        old_release(
            Instance,
            "1.0",
            drop=("hidden",),
            relationships={
                "flavor": [("1.0", "1.0")],
                "block_device_mappings": [("1.0", "1.0")],
                "network_info": [("1.0", "1.0")],
            },
        )
    )
    for name in default_registry:
        if name not in old:
            old.register(default_registry.lookup(name))
    return old


OLD = release_n()


def test_the_old_release_advertises_older_versions() -> None:
    manifest = obj_manifest(OLD)
    assert manifest["ComputeNode"] == "1.0"
    assert manifest["Instance"] == "1.0"
    assert manifest["Flavor"] == "1.0"
    assert obj_manifest(default_registry)["ComputeNode"] == "1.3"


# -- ComputeNode 1.0 <-> 1.1 <-> 1.2 -----------------------------------------------------------


def test_compute_node_back_levelled_to_1_1_drops_supported_instances_and_keeps_pools() -> None:
    node = samples.compute_node()
    assert node.supported_instances == [["x86_64", "kvm", "hvm"], ["x86_64", "qemu", "hvm"]]
    primitive = node.to_primitive(target_version="1.1")
    assert primitive.version == "1.1"
    assert "supported_instances" not in primitive.data
    assert "pci_device_pools" in primitive.data


def test_compute_node_back_levelled_to_1_0_drops_supported_instances_too() -> None:
    primitive = samples.compute_node().to_primitive(target_version="1.0")
    assert primitive.version == "1.0"
    assert not {"pci_device_pools", "supported_instances"} & primitive.data.keys()


def test_compute_node_back_levelled_to_1_0_drops_pci_device_pools() -> None:
    node = samples.compute_node()
    primitive = node.to_primitive(target_version="1.0")
    assert primitive.version == "1.0"
    assert "pci_device_pools" not in primitive.data
    assert primitive.data["vcpus"] == 16


def test_a_new_compute_node_reaches_the_old_release_through_its_manifest() -> None:
    node = samples.compute_node()
    received = decode(encode(node, manifest=obj_manifest(OLD)), registry=OLD)
    assert type(received) is OLD.lookup("ComputeNode")
    assert received.VERSION == "1.0"
    new_fields = ("pci_device_pools", "supported_instances")
    assert received.obj_fields() == tuple(n for n in node.obj_fields() if n not in new_fields)
    for name in received.obj_fields():
        assert received.obj_attr_is_set(name) == node.obj_attr_is_set(name)
        if node.obj_attr_is_set(name):
            assert getattr(received, name) == getattr(node, name)


def test_an_old_compute_node_is_read_by_the_new_release_with_the_new_fields_unset() -> None:
    old_node = OLD.lookup("ComputeNode")(
        uuid=samples.NODE_UUID,
        host="compute-1",
        hypervisor_hostname="compute-1",
        hypervisor_type="QEMU",
        hypervisor_version=8002000,
        vcpus=8,
        memory_mb=16384,
        local_gb=100,
    )
    received = decode(encode(old_node))
    assert type(received) is ComputeNode
    assert received.vcpus == 8
    assert not received.obj_attr_is_set("pci_device_pools")
    assert received.pci_device_pools is None  # its default
    assert not received.obj_attr_is_set("supported_instances")
    assert received.supported_instances == []
    assert received.obj_what_changed() == set(old_node.obj_what_changed())


def test_sending_too_new_an_object_raises_incompatible_with_the_receivers_manifest() -> None:
    data = encode(samples.compute_node())
    with pytest.raises(IncompatibleObjectVersion) as exc:
        decode(data, registry=OLD)
    error = exc.value
    assert not isinstance(error, DecodeError)
    assert error.retryable
    assert (error.objname, error.objver, error.supported) == ("ComputeNode", "1.3", "1.0")
    assert error.manifest == obj_manifest(OLD)
    assert str(error) == "ComputeNode version 1.3 is newer than the supported 1.0"
    # What the RPC layer does with it: encode again for the manifest, and it goes through.
    retried = decode(encode(samples.compute_node(), manifest=error.manifest), registry=OLD)
    assert retried.VERSION == "1.0"


# -- Instance 1.0 / 1.1 / 1.2 and the Flavor relationship --------------------------------------


@pytest.mark.parametrize(
    ("target", "has_hidden", "flavor_version"),
    [("1.0", False, "1.0"), ("1.1", True, "1.0"), ("1.2", True, "1.1")],
)
def test_instance_versions_carry_the_flavor_version_of_their_relationship_map(
    target: str, has_hidden: bool, flavor_version: str
) -> None:
    primitive = samples.instance().to_primitive(target_version=target)
    assert primitive.version == target
    assert ("hidden" in primitive.data) is has_hidden
    flavor = primitive.data["flavor"]
    assert isinstance(flavor, ObjectPrimitive)
    assert flavor.version == flavor_version
    assert ("description" in flavor.data) is (flavor_version == "1.1")
    # Children with a single relationship entry stay at their version.
    bdms = primitive.data["block_device_mappings"]
    assert isinstance(bdms, ObjectPrimitive)
    assert bdms.version == "1.0"
    assert [b.version for b in bdms.data["objects"]] == ["1.0", "1.0"]


def test_the_old_release_reads_a_back_levelled_instance_tree() -> None:
    inst = samples.instance()
    received = decode(encode(inst, manifest=obj_manifest(OLD)), registry=OLD)
    assert type(received) is OLD.lookup("Instance")
    assert not hasattr(type(received), "hidden")
    assert type(received.flavor) is OLD.lookup("Flavor")
    assert "description" not in type(received.flavor).obj_fields()
    assert received.flavor.vcpus == inst.flavor.vcpus
    assert received.network_info == inst.network_info


def test_an_old_instance_is_read_by_the_new_release() -> None:
    old_cls = OLD.lookup("Instance")
    old_flavor = OLD.lookup("Flavor")(flavorid="f", name="f", memory_mb=1, vcpus=1, root_gb=1)
    old = old_cls(
        uuid=samples.INSTANCE_UUID,
        name="instance-1",
        vm_state="building",
        flavor=old_flavor,
        memory_mb=1,
        vcpus=1,
        root_gb=1,
    )
    received = decode(encode(old))
    assert type(received) is Instance
    assert type(received.flavor) is Flavor
    assert not received.obj_attr_is_set("hidden")
    assert not received.flavor.obj_attr_is_set("description")


def test_a_manifest_entry_overrides_the_relationship_map() -> None:
    inst = samples.instance()
    manifest = {**obj_manifest(default_registry), "Flavor": "1.0"}
    primitive = inst.to_primitive(manifest=manifest)
    assert primitive.version == "1.3"
    assert primitive.data["flavor"].version == "1.0"
    assert "description" not in primitive.data["flavor"].data
    # The encoder does the same while packing.
    received = decode(encode(inst, manifest=manifest))
    assert not received.flavor.obj_attr_is_set("description")
    assert received.obj_attr_is_set("hidden")


def test_a_newer_peer_gets_our_own_versions() -> None:
    manifest = {"Instance": "1.9", "Flavor": "1.5"}
    primitive = samples.instance().to_primitive(manifest=manifest)
    assert primitive.version == "1.3"
    assert primitive.data["flavor"].version == "1.1"


def test_make_compatible_runs_only_when_back_levelling() -> None:
    calls: list[str] = []

    class Probe(VersionedObject):
        VERSION = "1.3"
        __slots__ = ()

        def make_compatible(self, primitive: dict[str, Any], target_version: Any) -> None:
            calls.append(str(target_version))

    Probe().to_primitive()
    Probe().to_primitive(target_version="1.3")
    Probe().to_primitive(target_version="1.1")
    assert calls == ["1.1"]


# -- what cannot be bridged --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("2.0", "back-levelling reaches only older minor versions of the same major"),
        ("1.7", "back-levelling reaches only older minor versions of the same major"),
        ("one", "not a 'major.minor' version"),
    ],
)
def test_back_levelling_refuses_other_majors_and_newer_versions(target: str, reason: str) -> None:
    with pytest.raises(ObjectVersionError) as exc:
        samples.instance().to_primitive(target_version=target)
    assert exc.value.reason == reason
    assert str(exc.value) == (
        f"Instance version {target} is not supported (this side has 1.3): {reason}"
    )


def test_a_peer_on_another_major_version_is_refused_when_encoding() -> None:
    with pytest.raises(ObjectVersionError) as exc:
        encode(samples.instance(), manifest={"Instance": "2.0"})
    assert exc.value.reason == "the peer runs a different major version"


def test_a_primitive_of_another_major_version_is_rejected_on_decode() -> None:
    primitive = samples.flavor().to_primitive()
    primitive.version = "2.0"
    with pytest.raises(DecodeError) as exc:
        decode(encode(primitive))
    assert exc.value.reason == (
        "Flavor version 2.0 is not supported (this side has 1.1): a different major version"
    )
    with pytest.raises(ObjectVersionError):
        Flavor.from_primitive(primitive)


def test_from_primitive_rebuilds_and_checks_versions() -> None:
    inst = samples.instance()
    inst.host = "elsewhere"
    primitive = inst.to_primitive()
    rebuilt = Instance.from_primitive(primitive)
    assert rebuilt == inst
    assert rebuilt.obj_what_changed() == {"host"}
    primitive.version = "1.4"
    with pytest.raises(IncompatibleObjectVersion) as exc:
        Instance.from_primitive(primitive)
    assert exc.value.manifest == obj_manifest(default_registry)


def test_a_newer_peers_manifest_sends_our_objects_unchanged() -> None:
    inst = samples.instance()
    newer = {name: "1.9" for name in obj_manifest(default_registry)}
    assert encode(inst, manifest=newer) == encode(inst)
