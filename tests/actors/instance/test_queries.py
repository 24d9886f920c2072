"""Info, consoles, metadata and the guest agent through the instance actor."""

from __future__ import annotations

import pytest

from actors import ActorRef, ActorSystem
from actors.instance import InstanceSettings
from actors.instance.errors import InstanceNotFound, InvalidInstanceArgument, NotSupported
from actors.instance.recovery import decode_recovery
from schemas.objects.network import NetworkInfo
from schemas.objects.virt import ConsoleInfo, Diagnostics, InstanceInfo
from tests.actors.instance.fakes import (
    UUID,
    FakeInstanceDriver,
    RecordingSink,
    image_meta,
    instance,
    make_actor,
    spawned_actor,
    vif,
)


async def spawn(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    *,
    guest_agent: bool = False,
    settings: InstanceSettings | None = None,
) -> ActorRef:
    image, ports = image_meta(guest_agent=guest_agent), NetworkInfo(objects=[vif()])
    ref, _actor = await spawned_actor(system, driver, sink, image, ports, settings=settings)
    return ref


@pytest.fixture
async def ref(system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink) -> ActorRef:
    """The instance actor, its guest spawned with one port, the spawn's events cleared."""
    return await spawn(system, driver, sink)


@pytest.fixture
async def agent_ref(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> ActorRef:
    """The same, from an image that declares a QEMU guest agent."""
    return await spawn(system, driver, sink, guest_agent=True)


async def test_reads_come_from_the_driver_as_objects(ref: ActorRef) -> None:
    me = {"instance": instance()}
    info = await ref.ask("get_info", me)
    assert isinstance(info, InstanceInfo) and info.state == "running"
    assert isinstance(await ref.ask("get_diagnostics", me), Diagnostics)
    assert await ref.ask("block_stats", {**me, "disk_id": "vda"}) == [1, 512, 2, 1024, 0]
    assert len(await ref.ask("interface_stats", {**me, "iface_id": "tap0"})) == 8
    vnc = await ref.ask("get_vnc_console", me)
    assert isinstance(vnc, ConsoleInfo) and vnc.console_type == "vnc"
    serial = await ref.ask("get_serial_console", me)
    assert serial.console_type == "serial"


async def test_console_output_is_capped_to_its_tail(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref = await spawn(system, driver, sink, settings=InstanceSettings(console_max_bytes=8))
    driver.domains[UUID].console = "line one\nline two\n"
    assert await ref.ask("get_console_output", {"instance": instance()}) == "ine two\n"


async def test_get_info_of_a_guest_that_does_not_exist_is_instance_not_found(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = make_actor(system, driver, sink)
    with pytest.raises(InstanceNotFound):
        await ref.ask("get_info", {"instance": instance()})


async def test_metadata_changes_apply_nova_diffs_and_are_kept_and_published(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    diff = {"role": ["+", "web"], "tier": ["+", "</metadata><evil/>"]}
    await ref.ask("change_instance_metadata", {"instance": instance(), "diff": diff})
    changed = await ref.ask(
        "change_instance_metadata", {"instance": instance(), "diff": {"role": ["-"]}}
    )
    assert changed.metadata == {"tier": "</metadata><evil/>"}
    stored = decode_recovery(UUID, driver.domains[UUID].recovery or b"").instance
    assert stored.metadata == {"tier": "</metadata><evil/>"}
    assert [s["metadata"] for s in sink.states()] == [
        {"role": "web", "tier": "</metadata><evil/>"},
        {"tier": "</metadata><evil/>"},
    ]


async def test_a_malformed_metadata_diff_is_refused(ref: ActorRef, sink: RecordingSink) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask(
            "change_instance_metadata", {"instance": instance(), "diff": {"k": ["*", "v"]}}
        )
    assert caught.value.reason == "'k': ['*', 'v'] is not ['+', value] or ['-']"
    assert sink.published == []


async def test_guest_agent_writes_need_an_image_that_declares_an_agent(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    with pytest.raises(NotSupported) as caught:
        await ref.ask("set_admin_password", {"instance": instance(), "new_pass": "s3cret"})
    assert str(caught.value) == (
        f"set_admin_password is not supported: instance {UUID} has no QEMU guest agent "
        "(image hw_qemu_guest_agent)"
    )
    with pytest.raises(NotSupported):
        await ref.ask(
            "inject_file", {"instance": instance(), "path": "/etc/motd", "contents": b"hi"}
        )
    assert "guest_agent_command" not in driver.calls()


async def test_set_admin_password_and_inject_file_go_through_the_guest_agent(
    agent_ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    await agent_ref.ask("set_admin_password", {"instance": instance(), "new_pass": "s3cret"})
    await agent_ref.ask(
        "inject_file", {"instance": instance(), "path": "/etc/motd", "contents": b"hello\n"}
    )
    domain = driver.domains[UUID]
    assert domain.passwords == {"root": "s3cret"}
    assert domain.guest_files == {"/etc/motd": b"hello\n"}
    assert [s.get("task_state") for s in sink.states()] == ["updating_password", None]


async def test_an_agent_the_guest_lacks_is_not_supported_from_the_driver(
    agent_ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    driver.domains[UUID].has_agent = False
    with pytest.raises(NotSupported):
        await agent_ref.ask("set_admin_password", {"instance": instance(), "new_pass": "x"})
    assert sink.states()[-1] == {"task_state": None}


async def test_inject_file_refuses_a_relative_or_climbing_path(
    agent_ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    with pytest.raises(InvalidInstanceArgument):
        await agent_ref.ask(
            "inject_file", {"instance": instance(), "path": "/tmp/../etc/x", "contents": b""}
        )
    assert "guest_agent_command" not in driver.calls()


async def test_inject_network_info_updates_the_ports_the_guest_has(ref: ActorRef) -> None:
    updated = NetworkInfo(objects=[vif(mac="fa:16:3e:00:00:02")])
    result = await ref.ask("inject_network_info", {"instance": instance(), "network_info": updated})
    assert [v.address for v in result.network_info] == ["fa:16:3e:00:00:02"]
    other = NetworkInfo(objects=[vif(port_id="00000000-0000-4000-8000-000000000009")])
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask("inject_network_info", {"instance": instance(), "network_info": other})
    assert caught.value.argument == "network_info"


async def test_reset_network_is_not_supported_for_qemu_guests(ref: ActorRef) -> None:
    with pytest.raises(NotSupported) as caught:
        await ref.ask("reset_network", {"instance": instance()})
    assert caught.value.operation == "reset_network"
