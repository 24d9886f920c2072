"""The objects: each one round-trips, plus the small behaviours some of them carry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import (
    UnknownObjectError,
    VersionedObject,
    decode,
    default_registry,
    encode,
    obj_manifest,
    objects,
)
from schemas.objects import (
    VIF,
    BlockDeviceMappingList,
    ComputeNode,
    ConsoleInfo,
    ConvergenceStep,
    CpuDiagnostics,
    Diagnostics,
    DiskDiagnostics,
    ImageMeta,
    ImageMetaProps,
    InstanceInfo,
    LifecycleEvent,
    LiveMigrateBDMInfo,
    LiveMigrateData,
    LiveMigrateDisk,
    MemoryDiagnostics,
    Migration,
    MigrationPolicy,
    MigrationProgress,
    NicDiagnostics,
    PciDevice,
    ProviderFirewallRule,
    RequestContext,
    ResourceClaim,
    SecurityGroup,
    SecurityGroupMembership,
    SecurityGroupRule,
    Service,
    VolumeConnection,
    VolumeConnectionData,
    VolumeConnector,
    enums,
)
from tests.schemas import samples
from tests.schemas.conftest import MemoryStore

CTX = RequestContext(request_id="req-1")
DISK = LiveMigrateDisk(
    file="disk", target="vda", format="qcow2", virtual_size=1 << 30, backing_image="img-1"
)
MIGRATION = Migration(
    uuid="a0a0a0a0-0000-4000-8000-000000000001",
    instance_uuid=samples.INSTANCE_UUID,
    migration_type="live-migration",
    status="running",
    source_compute="compute-1",
    dest_compute="compute-2",
    memory_total=2048,
    memory_processed=1024,
    memory_remaining=1024,
)

GROUP_ID = "5e5e5e5e-0000-4000-8000-000000000001"
RULE = SecurityGroupRule(
    id="5e5e5e5e-0000-4000-8000-000000000002",
    parent_group_id=GROUP_ID,
    protocol="tcp",
    from_port=22,
    to_port=22,
    direction="ingress",
    ethertype="IPv4",
    remote_ip_prefix="198.51.100.0/24",
)


def every_object() -> dict[str, VersionedObject]:
    """One filled-in sample per registered object."""
    inst = samples.instance()
    node = samples.compute_node()
    connection = inst.block_device_mappings[1].connection_info  # type: ignore[index]
    built: list[VersionedObject] = [
        inst,
        inst.flavor,
        inst.block_device_mappings,  # type: ignore[list-item]
        inst.block_device_mappings[0],  # type: ignore[index]
        connection,  # type: ignore[list-item]
        connection.data,  # type: ignore[union-attr]
        inst.network_info,  # type: ignore[list-item]
        inst.network_info[0],  # type: ignore[index]
        inst.network_info[0].network,  # type: ignore[index, list-item]
        inst.network_info[0].network.subnets[0],  # type: ignore[index, union-attr]
        node,
        node.pci_device_pools,  # type: ignore[list-item]
        node.pci_device_pools[0],  # type: ignore[index]
        ImageMeta(
            id="5a5a5a5a-0000-4000-8000-000000000001",
            name="debian-12",
            disk_format="qcow2",
            properties=ImageMetaProps(
                hw_disk_bus="virtio",
                hw_vif_model="virtio",
                hw_machine_type="q35",
                hw_firmware_type="uefi",
            ),
        ),
        ImageMetaProps(hw_scsi_model="virtio-scsi", hw_video_model="virtio", os_type="linux"),
        VolumeConnector(host="compute-1", ip="192.0.2.5", initiator="iqn.1993-08.org.debian:01:1"),
        PciDevice(
            address="0000:81:00.1",
            vendor_id="8086",
            product_id="154c",
            dev_type="type-VF",
            parent_addr="0000:81:00.0",
        ),
        Service(
            uuid="b0b0b0b0-0000-4000-8000-000000000001",
            host="compute-1",
            binary="virtactor-compute",
            report_count=12,
            last_seen_up=datetime(2026, 11, 21, tzinfo=UTC),
        ),
        MIGRATION,
        LiveMigrateData(
            migration=MIGRATION,
            block_migration=True,
            graphics_listen_addr_vnc="0.0.0.0",
            serial_listen_addr="192.0.2.6",
            serial_listen_ports=[10000, 10001],
            target_connect_addr="192.0.2.6",
            bdms=[LiveMigrateBDMInfo(serial="vol-2", bus="virtio", dev="vdb", type="disk")],
            local_disks=[DISK],
            boot_images=["kernel-1"],
            dest_instance_dir="/var/lib/virtactor/instances/6f6a3f5e",
        ),
        LiveMigrateBDMInfo(serial="vol-3", bus="scsi", dev="sdb", type="disk"),
        DISK,
        InstanceInfo(state="running", internal_id="3", max_mem_kb=2097152, num_cpu=2),
        Diagnostics(
            state="running",
            driver="libvirt",
            hypervisor="qemu",
            uptime=46,
            cpu_details=[CpuDiagnostics(id=0, time=17300000000)],
            nic_details=[NicDiagnostics(mac_address="fa:16:3e:00:00:01", rx_octets=2070139)],
            disk_details=[DiskDiagnostics(read_bytes=262144)],
            memory_details=MemoryDiagnostics(maximum=2048, used=0),
        ),
        CpuDiagnostics(id=1),
        NicDiagnostics(),
        DiskDiagnostics(),
        MemoryDiagnostics(),
        ConsoleInfo(console_type="vnc", host="192.0.2.5", port=5900),
        LifecycleEvent(
            instance_uuid=samples.INSTANCE_UUID,
            transition="started",
            timestamp=datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC),
        ),
        RequestContext(
            request_id="req-1",
            user_id="u",
            project_id="p",
            roles=["member"],
            is_admin=False,
            deadline=1764000000.25,
        ),
        ConvergenceStep(stalls=2, action="set_downtime", downtime_ms=200),
        MigrationProgress(
            migration_uuid=samples.NODE_UUID,
            instance_uuid=samples.INSTANCE_UUID,
            status="running",
            percent=42,
            memory_total=256 * 1024**2,
            iteration=3,
            downtime_ms=120,
            actions=["set_downtime:300"],
        ),
        MigrationPolicy(
            progress_timeout=30,
            timeout_action="post_copy",
            post_copy=True,
            convergence=[
                ConvergenceStep(stalls=1, action="set_downtime", downtime_ms=300),
                ConvergenceStep(stalls=4, action="abort"),
            ],
        ),
        RULE,
        SecurityGroup(id=GROUP_ID, name="web", project_id="p", rules=[RULE]),
        SecurityGroupMembership(
            id=SecurityGroupMembership.key_of(GROUP_ID, samples.INSTANCE_UUID),
            security_group_id=GROUP_ID,
            instance_uuid=samples.INSTANCE_UUID,
        ),
        ProviderFirewallRule(
            id="5e5e5e5e-0000-4000-8000-000000000003",
            protocol="udp",
            from_port=53,
            to_port=53,
            cidr="203.0.113.0/24",
        ),
        ResourceClaim(
            instance_uuid=samples.INSTANCE_UUID,
            migration_uuid=None,
            host="compute-1",
            node_uuid=samples.NODE_UUID,
            vcpus=2,
            memory_mb=2048,
            disk_gb=21,
            pci_devices=["0000:81:00.1"],
        ),
    ]
    return {obj.obj_name(): obj for obj in built}


def test_the_registry_holds_exactly_the_objects_the_package_exports() -> None:
    # every_object() names each object of the contract; this ties the registry to the package.
    exported = {name: getattr(objects, name) for name in objects.__all__ if name != "enums"}
    assert set(obj_manifest(default_registry)) == set(exported)
    assert {name: default_registry.lookup(name) for name in exported} == exported


def test_every_registered_object_has_a_sample_here() -> None:
    assert set(every_object()) == set(default_registry)


@pytest.mark.parametrize("name", sorted(default_registry))
def test_every_object_round_trips_through_the_codec_and_primitives(name: str) -> None:
    obj = every_object()[name]
    assert decode(encode(obj)) == obj
    assert type(obj).from_primitive(obj.to_primitive()) == obj


def test_lookup_of_an_unknown_name_is_unknown_object_error() -> None:
    with pytest.raises(UnknownObjectError) as exc:
        default_registry.lookup("Starship")
    assert str(exc.value) == "unknown object type 'Starship'"


def test_a_name_registers_once() -> None:
    class Flavor(VersionedObject):
        __slots__ = ()

    with pytest.raises(ValueError, match="object name 'Flavor' is already registered to"):
        default_registry.register(Flavor)


# -- behaviours --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "missing"),
    [
        ("iscsi", {"target_portal": "p", "target_iqn": "q"}, ["target_lun"]),
        ("iscsi", {"target_portal": "p", "target_iqn": "q", "target_lun": 0}, []),
        ("rbd", {"name": "volumes/v", "hosts": ["h"]}, ["ports"]),
        ("file", {}, ["device_path"]),
        ("block", {"device_path": "/dev/sdb"}, []),
        ("nbd", {"name": "v", "hosts": None, "ports": ["10809"]}, ["hosts"]),
    ],
)
def test_a_volume_connection_names_the_data_its_type_still_needs(
    kind: str, data: dict[str, object], missing: list[str]
) -> None:
    connection = VolumeConnection(driver_volume_type=kind, data=VolumeConnectionData(**data))
    assert connection.missing_data() == missing


def test_driver_volume_types_are_the_five_attach_protocols() -> None:
    assert {t.value for t in enums.DriverVolumeType} == {"file", "block", "nbd", "iscsi", "rbd"}


def test_power_states_are_nova_names_with_its_numeric_codes() -> None:
    assert {code: state.value for code, state in enums.POWER_STATE_BY_CODE.items()} == {
        0: "pending",
        1: "running",
        3: "paused",
        4: "shutdown",
        6: "crashed",
        7: "suspended",
    }


def test_request_context_deadline_arithmetic_takes_now_explicitly() -> None:
    ctx = RequestContext(request_id="r", deadline=100.0)
    assert ctx.time_left(now=97.5) == 2.5
    assert not ctx.expired(now=99.9)
    assert ctx.expired(now=100.0)
    no_deadline = RequestContext(request_id="r")
    assert no_deadline.time_left(now=1e12) is None
    assert not no_deadline.expired(now=1e12)


def test_a_context_for_a_request_keeps_the_identity_and_records_no_changes() -> None:
    template = RequestContext(request_id="-", user_id="u1", project_id="p1")
    ctx = template.for_request("req-2", 5)
    assert (ctx.request_id, ctx.user_id, ctx.project_id, ctx.deadline) == ("req-2", "u1", "p1", 5.0)
    assert type(ctx.deadline) is float and ctx.obj_what_changed() == set()
    assert not ctx.obj_attr_is_set("roles") and template.request_id == "-"
    assert decode(encode(ctx)) == ctx
    with pytest.raises(TypeError, match="request_id must be a str"):
        template.for_request(None, 5)  # type: ignore[arg-type]


def test_object_lists_behave_like_sequences_and_stay_truthy_when_empty() -> None:
    bdms = samples.bdms()
    assert len(bdms) == 2
    assert [b.boot_index for b in bdms] == [0, None]
    assert bdms[-1].is_volume
    assert bdms.root_bdm() is bdms[0]
    empty = BlockDeviceMappingList()
    assert len(empty) == 0
    assert bool(empty)
    assert empty.root_bdm() is None


def test_a_vif_lists_its_fixed_ips_across_subnets() -> None:
    vif = samples.network_info()[0]
    assert [str(ip) for ip in vif.fixed_ips()] == ["10.0.0.5", "2001:db8::5"]
    assert VIF(id=vif.id, address=vif.address, type="tap").fixed_ips() == []


async def test_store_lookups_of_services_migrations_and_nodes(store: MemoryStore) -> None:
    objects = every_object()
    for name in ("Service", "Migration", "ComputeNode"):
        await objects[name].create()  # type: ignore[attr-defined]
    service = await Service.get_by_host_and_binary(CTX, "compute-1", "virtactor-compute")
    assert service.report_count == 12
    migrations = await Migration.get_by_instance(CTX, samples.INSTANCE_UUID)
    assert [m.status for m in migrations] == ["running"]
    nodes = await ComputeNode.get_by_host(CTX, "compute-1")
    assert nodes == [objects["ComputeNode"]]
    assert await Migration.get_by_uuid(CTX, MIGRATION.uuid) == MIGRATION
