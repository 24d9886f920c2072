"""The resize handlers over the in-memory driver, a fake destination and a fake transfer: what
is refused before the guest is touched, what a failed transfer leaves, what a departure
records. (The real thing, on two hosts: tests/system/test_resize.py.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import ActorRef, ActorSystem
from actors.instance.errors import InvalidInstanceArgument
from actors.instance.migration import MigrationSupport
from actors.instance.resize_checks import ResizeDestination
from actors.migration.errors import DiskTransferFailed, ResizeFailed, ResizeRefused
from actors.migration.settings import MigrationSettings
from actors.migration.slots import MigrationSlots
from actors.tracker.errors import ClaimFailed
from schemas.objects import Flavor, LiveMigrateData, LiveMigrateDisk, Migration
from schemas.objects.enums import PowerState
from tests.actors.instance.fakes import (
    UUID,
    FakeInstanceDriver,
    RecordingSink,
    image_meta,
    instance,
    spawned_actor,
)

GIB = 1024 * 1024 * 1024


@dataclass
class Files:
    """The guest's files as the host driver reads them (`LocalFilesLike`)."""

    disks: list[LiveMigrateDisk]
    boot_images: list[str] = field(default_factory=list)
    config_drive: bytes | None = None


@dataclass
class FakePeers:
    """The destination agent: answers its check, or raises `refusal`."""

    refusal: Exception | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        self.calls.append((host, method))
        if self.refusal is not None:
            raise self.refusal
        return LiveMigrateData(
            dest_libvirt_uri="qemu+tcp://dest/system",
            dest_instance_dir=f"/dest/{UUID}",
            dest_image_cache_dir="/dest/_base",
        )


@dataclass
class FakeResize:
    """The host's disks: a 1 GiB root overlay; `send` fails with `failure` when set."""

    driver: FakeInstanceDriver
    failure: Exception | None = None
    sent: list[ResizeDestination] = field(default_factory=list)
    state_when_sent: PowerState | None = None
    actor: Any = None  # the instance actor, to read its record

    def instance_dir(self, uuid: str) -> str:
        return f"/here/{uuid}"

    @property
    def image_cache_dir(self) -> str:
        return "/here/_base"

    async def local_files(self, uuid: str) -> Files:
        disk = LiveMigrateDisk(
            file="disk", target="vda", format="qcow2", virtual_size=GIB, backing_image="base"
        )
        return Files(disks=[disk])

    async def send(self, uuid: str, files: Any, destination: ResizeDestination) -> list[str]:
        self.state_when_sent = self.driver.domains[uuid].state
        if self.failure is not None:
            raise self.failure
        self.sent.append(destination)
        return ["disk"]

    async def finish(self, *args: Any) -> None:
        raise AssertionError("not called by these tests")


def support(peers: FakePeers, resize: FakeResize) -> MigrationSupport:
    settings = MigrationSettings()
    return MigrationSupport(
        host="src",
        libvirt_uri="qemu+tcp://src/system",
        address="127.0.0.1",
        inbound_address="127.0.0.1",
        settings=settings,
        driver=None,  # type: ignore[arg-type]  # live migration's: not used here
        make_actor=lambda request: None,  # type: ignore[arg-type,return-value]
        slots=MigrationSlots("src", 1, 1, 60.0),
        peers=peers,
        resize=resize,
    )


def resize(me: Any = None) -> Migration:
    return Migration(
        uuid="9a1b2c3d-0000-4000-8000-000000000001",
        instance_uuid=UUID,
        migration_type="resize",
        status="pre-migrating",
        source_compute="src",
        dest_compute="dst",
    )


def flavor(root_gb: int = 2) -> Flavor:
    return Flavor(flavorid="big", name="big", memory_mb=128, vcpus=1, root_gb=root_gb)


async def source(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink, peers: FakePeers
) -> tuple[ActorRef, FakeResize]:
    files = FakeResize(driver)
    ref, actor = await spawned_actor(
        system, driver, sink, migrations=support(peers, files), host="src"
    )
    files.actor = actor
    return ref, files


def args(**extra: Any) -> dict[str, Any]:
    return {"instance": instance(), "dest": "dst", "flavor": flavor(), "migration": resize()} | {
        "timeout": 5.0,
        "retry_interval": 1.0,
        **extra,
    }


async def test_a_departure_powers_off_sends_and_leaves_the_guest_waiting(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    peers = FakePeers()
    ref, files = await source(system, driver, sink, peers)
    info = await ref.ask("migrate_disk_and_power_off", args())
    assert '"path": "/instances/' in info
    assert peers.calls == [("dst", "check_can_resize_destination")]
    assert files.state_when_sent == PowerState.SHUTDOWN  # never sent while it runs
    assert files.sent == [
        ResizeDestination("dst", "qemu+tcp://dest/system", f"/dest/{UUID}", "/dest/_base")
    ]
    shown = await ref.ask("get_info", {"instance": instance()})
    assert shown.state == PowerState.SHUTDOWN
    statuses = [o.status for t, o in sink.published if t.startswith("migration.")]
    assert statuses == ["migrating", "post-migrating"]


async def test_a_smaller_disk_is_refused_before_the_destination_is_asked(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    peers = FakePeers()
    ref, files = await source(system, driver, sink, peers)
    with pytest.raises(ResizeRefused, match="root disk cannot shrink from 1 GiB to 0 GiB"):
        await ref.ask("migrate_disk_and_power_off", args(flavor=flavor(root_gb=0)))
    assert peers.calls == [] and files.state_when_sent is None
    assert driver.domains[UUID].state == PowerState.RUNNING


async def test_a_destination_that_refuses_leaves_the_guest_running_untouched(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    peers = FakePeers(refusal=ClaimFailed(uuid=UUID, resource="memory_mb", requested=128, free=0))
    ref, files = await source(system, driver, sink, peers)
    with pytest.raises(ClaimFailed):
        await ref.ask("migrate_disk_and_power_off", args())
    assert files.state_when_sent is None
    assert driver.domains[UUID].state == PowerState.RUNNING
    statuses = [o.status for t, o in sink.published if t.startswith("migration.")]
    assert statuses == ["error"]


async def test_a_failed_transfer_starts_the_guest_again_and_clears_its_task(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    peers = FakePeers()
    ref, files = await source(system, driver, sink, peers)
    files.failure = DiskTransferFailed(uuid=UUID, host="dst", reason="stream broke")
    with pytest.raises(ResizeFailed, match="stream broke; the guest runs again on the source"):
        await ref.ask("migrate_disk_and_power_off", args())
    assert driver.domains[UUID].state == PowerState.RUNNING
    record = files.actor.record.instance
    assert (record.task_state, record.vm_state, record.power_state) == (None, "active", "running")
    # Nothing holds it: it can be asked again.
    files.failure = None
    await ref.ask("migrate_disk_and_power_off", args())


@pytest.mark.parametrize(
    ("extra", "argument"),
    [
        ({"dest": "src"}, None),
        ({"migration": Migration(uuid=str(UUID), status="queued")}, "migration"),
        ({"flavor": Flavor(flavorid="f", name="f", memory_mb=0, vcpus=1, root_gb=1)}, "flavor"),
        ({"timeout": -1.0}, "timeout"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_happens(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    extra: dict[str, Any],
    argument: str | None,
) -> None:
    peers = FakePeers()
    ref, _files = await source(system, driver, sink, peers)
    expected = ResizeRefused if argument is None else InvalidInstanceArgument
    with pytest.raises(expected) as refused:
        await ref.ask("migrate_disk_and_power_off", args(**extra))
    if argument is not None:
        assert refused.value.argument == argument  # type: ignore[attr-defined]
    assert peers.calls == [] and driver.domains[UUID].state == PowerState.RUNNING


async def test_finish_refuses_malformed_disk_info_and_a_root_bigger_than_the_flavor(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    peers = FakePeers()
    ref, _files = await source(system, driver, sink, peers)
    here = resize()
    here.dest_compute = "src"
    finish = {
        "migration": here,
        "instance": instance(flavor=flavor(root_gb=1)),
        "network_info": None,
        "image_meta": image_meta(),
        "resize_instance": True,
    }
    with pytest.raises(InvalidInstanceArgument, match="disk_info"):
        await ref.ask("finish_migration", finish | {"disk_info": "{}"})
    too_big = f'[{{"path": "/x/disk", "virt_disk_size": {2 * GIB}}}]'
    with pytest.raises(ResizeRefused, match="larger than the new flavor's 1 GiB"):
        await ref.ask("finish_migration", finish | {"disk_info": too_big})
