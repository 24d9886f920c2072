"""Change tracking: assignments, in-place container edits, nested objects, resets."""

from __future__ import annotations

import copy

import pytest

from schemas import UnknownFieldError, decode, encode
from schemas.objects import BlockDeviceMapping, Flavor, Instance
from tests.schemas import samples


def test_a_new_object_reports_every_field_it_was_built_with() -> None:
    flavor = Flavor(flavorid="f", name="f", memory_mb=1, vcpus=1, root_gb=1)
    assert flavor.obj_what_changed() == {"flavorid", "name", "memory_mb", "vcpus", "root_gb"}


def test_assignment_marks_a_field_changed_until_reset() -> None:
    inst = samples.instance()
    assert inst.obj_what_changed() == set()
    inst.host = "compute-2"
    inst.task_state = "spawning"
    assert inst.obj_what_changed() == {"host", "task_state"}
    assert inst.obj_get_changes() == {"host": "compute-2", "task_state": "spawning"}
    inst.obj_reset_changes()
    assert inst.obj_what_changed() == set()


def test_assigning_the_same_value_still_counts_as_a_change() -> None:
    inst = samples.instance()
    inst.host = inst.host
    assert inst.obj_what_changed() == {"host"}


def test_resetting_some_fields_keeps_the_others() -> None:
    inst = samples.instance()
    inst.host = "a"
    inst.node = "b"
    inst.obj_reset_changes(["host"])
    assert inst.obj_what_changed() == {"node"}
    with pytest.raises(UnknownFieldError):
        inst.obj_reset_changes(["hostname_typo"])


def test_in_place_edits_of_dicts_lists_and_sets_are_seen() -> None:
    inst = samples.instance()
    inst.metadata["owner"] = "ops"
    assert inst.obj_what_changed() == {"metadata"}
    assert inst.obj_get_changes() == {"metadata": {"role": "web", "owner": "ops"}}
    inst.obj_reset_changes()
    assert inst.obj_what_changed() == set()
    # A reference taken before the reset is still watched after it.
    metadata = inst.metadata
    inst.obj_reset_changes()
    metadata.pop("owner")
    assert inst.obj_what_changed() == {"metadata"}


def test_filling_a_container_default_in_place_is_a_change() -> None:
    flavor = Flavor(flavorid="f", name="f", memory_mb=1, vcpus=1, root_gb=1)
    flavor.obj_reset_changes()
    flavor.extra_specs["hw:mem_page_size"] = "large"
    assert flavor.obj_what_changed() == {"extra_specs"}
    assert flavor.extra_specs == {"hw:mem_page_size": "large"}


def test_reading_a_container_without_editing_it_is_not_a_change() -> None:
    inst = samples.instance()
    assert inst.metadata == {"role": "web"}
    assert inst.obj_what_changed() == set()


def test_a_change_inside_a_nested_object_marks_the_parent_field() -> None:
    inst = samples.instance()
    inst.flavor.vcpus = 4
    assert inst.obj_what_changed() == {"flavor"}
    assert inst.flavor.obj_what_changed() == {"vcpus"}
    assert inst.obj_get_changes() == {"flavor": inst.flavor}


def test_a_change_deep_inside_a_list_of_objects_marks_every_parent() -> None:
    inst = samples.instance()
    subnet = inst.network_info[0].network.subnets[0]
    inst.obj_reset_changes(recursive=True)
    subnet.gateway = "10.0.0.254"
    assert inst.obj_what_changed() == {"network_info"}
    assert inst.network_info.obj_what_changed() == {"objects"}
    assert inst.network_info[0].obj_what_changed() == {"network"}


def test_appending_to_a_list_of_objects_is_a_change() -> None:
    inst = samples.instance()
    bdms = inst.block_device_mappings
    assert bdms is not None
    bdms.objects.append(
        BlockDeviceMapping(
            uuid="6f1a9f0e-51a2-4bde-9a84-6d7a4e7c2b09",
            instance_uuid=samples.INSTANCE_UUID,
            source_type="blank",
            destination_type="local",
        )
    )
    assert bdms.obj_what_changed() == {"objects"}
    assert inst.obj_what_changed() == {"block_device_mappings"}


def test_non_recursive_reset_leaves_nested_changes_recursive_reset_clears_them() -> None:
    inst = samples.instance()
    inst.flavor.vcpus = 8
    inst.obj_reset_changes()
    assert inst.obj_what_changed() == {"flavor"}
    inst.obj_reset_changes(recursive=True)
    assert inst.obj_what_changed() == set()
    assert inst.flavor.obj_what_changed() == set()


def test_changes_travel_with_the_object_over_the_wire() -> None:
    inst = samples.instance()
    inst.host = "compute-9"
    inst.metadata["k"] = "v"
    inst.flavor.vcpus = 2
    back = decode(encode(inst))
    assert isinstance(back, Instance)
    assert back.obj_what_changed() == {"host", "metadata", "flavor"}
    assert back.flavor.obj_what_changed() == {"vcpus"}
    assert back == inst


def test_an_object_decoded_without_changes_reports_none() -> None:
    back = decode(encode(samples.instance()))
    assert back.obj_what_changed() == set()


def test_a_clone_is_deep_and_keeps_its_changes() -> None:
    inst = samples.instance()
    inst.host = "h"
    clone = inst.obj_clone()
    clone.metadata["x"] = "y"
    clone.flavor.vcpus = 3
    assert inst.metadata == {"role": "web"}
    assert inst.flavor.vcpus == 1
    assert clone.obj_what_changed() == {"host", "metadata", "flavor"}


def test_copies_share_the_context_and_a_shallow_copy_has_its_own_fields() -> None:
    inst = samples.instance()
    inst.obj_context = ctx = object()
    deep = copy.deepcopy(inst)
    assert deep == inst and deep.obj_context is ctx and deep.flavor is not inst.flavor
    shallow = copy.copy(inst)
    shallow.host = "other"
    assert inst.host == "compute-1"
    assert shallow.flavor is inst.flavor
    assert shallow.obj_context is ctx


def test_changes_only_copy_holds_the_key_and_the_changed_fields() -> None:
    inst = samples.instance()
    inst.host = "compute-3"
    partial = inst.obj_changes_only()
    assert {name for name in Instance.obj_fields() if partial.obj_attr_is_set(name)} == {
        "uuid",
        "host",
    }
    assert partial.obj_what_changed() == {"host"}
