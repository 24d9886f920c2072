"""What every instance operation shares: the running method names its errors, an unknown
power state is the hypervisor's typed reason (never a state conflict), bounded metadata."""

from __future__ import annotations

import pytest

from actors import ActorSystem
from actors.instance import InstanceActor, InstanceSettings
from actors.instance.errors import InvalidInstanceArgument
from schemas.errors import VirtactorError
from schemas.objects.block_device import BlockDeviceMappingList
from tests.actors.instance.fakes import (
    UUID,
    FakeInstanceDriver,
    RecordingSink,
    instance,
    spawned_actor,
)

OTHER = "11111111-2222-4333-8444-555555555555"


class HypervisorDown(VirtactorError):
    """What the agent's driver raises while libvirt is unreachable (retryable)."""

    msg_fmt = "the hypervisor is unavailable: {reason}"
    retryable = True


def test_every_driver_method_of_the_actor_keeps_its_own_signature() -> None:
    # The decorator that names the running method must not hide what the dispatcher reads.
    import inspect

    spawn = InstanceActor.handlers["spawn"]
    assert list(inspect.signature(spawn).parameters) == [
        "self",
        "instance",
        "image_meta",
        "network_info",
        "block_device_info",
        "injected_files",
        "admin_password",
    ]
    assert spawn.__name__ == "spawn"


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("pause", {}),
        ("suspend", {}),
        ("power_off", {"timeout": 0}),
        ("reboot", {"reboot_type": "HARD"}),
        ("change_instance_metadata", {"diff": {"k": ["+", "v"]}}),
    ],
)
async def test_a_call_while_the_hypervisor_is_unreachable_answers_its_typed_reason(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    method: str,
    args: dict[str, object],
) -> None:
    ref, actor = await spawned_actor(system, driver, sink)
    driver.unreachable = HypervisorDown(reason="connection lost")
    calls_before = list(driver.journal)

    with pytest.raises(HypervisorDown) as caught:
        await ref.ask(method, {"instance": instance(vm_state="active"), **args})

    assert caught.value.retryable
    assert driver.journal == calls_before
    assert actor.record is not None
    recorded = actor.record.instance
    assert (recorded.vm_state, recorded.task_state, recorded.power_state) == (
        "active",
        None,
        "running",
    )
    assert sink.published == []


async def test_the_call_succeeds_once_the_hypervisor_is_back(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = await spawned_actor(system, driver, sink)
    driver.unreachable = HypervisorDown(reason="connection lost")
    with pytest.raises(HypervisorDown):
        await ref.ask("pause", {"instance": instance(vm_state="active")})
    driver.unreachable = None
    paused = await ref.ask("pause", {"instance": instance(vm_state="active")})
    assert (paused.vm_state, paused.power_state) == ("paused", "paused")


@pytest.mark.parametrize(
    ("method", "args", "argument"),
    [
        ("reboot", {"reboot_type": "WARM"}, "reboot_type"),
        ("power_off", {"timeout": -1}, "timeout"),
        ("attach_volume", {"connection_info": None, "mountpoint": "/dev/../x"}, "mountpoint"),
        (
            "default_device_names_for_instance",
            {"root_device_name": "../vda", "block_device_mappings": BlockDeviceMappingList()},
            "mountpoint",
        ),
        ("set_admin_password", {"new_pass": ""}, "new_pass"),
    ],
)
async def test_a_refused_argument_names_the_method_that_refused_it(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    method: str,
    args: dict[str, object],
    argument: str,
) -> None:
    ref, _actor = await spawned_actor(system, driver, sink)
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask(method, {"instance": instance(vm_state="active"), **args})
    assert (caught.value.action, caught.value.argument) == (method, argument)
    assert str(caught.value).startswith(f"invalid {argument} for {method} of instance {UUID}: ")


@pytest.mark.parametrize("method", ["pause", "get_info", "get_volume_connector", "snapshot"])
async def test_an_instance_argument_naming_another_instance_names_the_method(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink, method: str
) -> None:
    ref, _actor = await spawned_actor(system, driver, sink)
    args: dict[str, object] = {"instance": instance(uuid=OTHER)}
    if method == "snapshot":
        args["image_id"] = "0c9e7a4e-2b7d-4f0e-8e55-3a1b2c3d4e50"
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask(method, args)
    assert caught.value.action == method
    assert caught.value.reason == f"it names instance {OTHER}"


async def test_metadata_over_the_limit_is_refused_up_front_naming_the_limit(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    settings = InstanceSettings(metadata_max_bytes=1024)
    ref, actor = await spawned_actor(system, driver, sink, settings=settings)
    await ref.ask(
        "change_instance_metadata",
        {"instance": instance(vm_state="active"), "diff": {"a": ["+", "x" * 1000]}},
    )
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask(
            "change_instance_metadata",
            {"instance": instance(vm_state="active"), "diff": {"b": ["+", "y" * 100]}},
        )
    assert str(caught.value) == (
        f"invalid diff for change_instance_metadata of instance {UUID}: the metadata would "
        "be 1102 bytes, over this agent's limit of 1024 bytes (metadata_max_bytes)"
    )
    assert actor.record is not None
    assert actor.record.instance.metadata == {"a": "x" * 1000}


async def test_the_default_metadata_limit_refuses_a_map_of_megabytes(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = await spawned_actor(system, driver, sink)
    diff = {f"key-{i}": ["+", "v" * 1000] for i in range(3500)}
    with pytest.raises(InvalidInstanceArgument, match=r"limit of 262144 bytes"):
        await ref.ask(
            "change_instance_metadata", {"instance": instance(vm_state="active"), "diff": diff}
        )
