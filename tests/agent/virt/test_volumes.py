"""Volume drivers: the `<disk>` of each connection type, and typed errors for bad ones."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from agent.virt.guest.elements import to_xml
from agent.virt.guest.errors import InvalidXMLValue, MalformedVolumeConnection
from agent.virt.volumes import driver_for, volume_disk_element
from schemas.objects.volume import VolumeConnection
from tests.agent.virt.guest.samples import connection

SECRET = "11111111-2222-4333-8444-555555555555"


def disk(conn: VolumeConnection, target: str = "vdb", bus: str = "virtio", **kw: str) -> ET.Element:
    # Serialise and parse back: what libvirt would receive.
    return ET.fromstring(to_xml(volume_disk_element(conn, target, bus, **kw)))


def malformed(conn: VolumeConnection) -> str:
    with pytest.raises(MalformedVolumeConnection) as caught:
        volume_disk_element(conn, "vdb", "virtio")
    return str(caught.value)


def test_a_file_volume_is_a_raw_file_disk_with_its_serial() -> None:
    element = disk(connection("file", serial="vol-1", device_path="/srv/volumes/vol-1.img"))
    assert element.attrib == {"type": "file", "device": "disk"}
    assert element.find("driver").attrib == {"name": "qemu", "type": "raw", "cache": "none"}  # type: ignore[union-attr]
    assert element.find("source").attrib == {"file": "/srv/volumes/vol-1.img"}  # type: ignore[union-attr]
    assert element.find("target").attrib == {"dev": "vdb", "bus": "virtio"}  # type: ignore[union-attr]
    assert element.findtext("serial") == "vol-1"
    assert element.find("readonly") is None


def test_a_block_volume_read_only_with_discard_and_io_limits() -> None:
    conn = connection(
        "block",
        device_path="/dev/mapper/vg-vol1",
        access_mode="ro",
        discard=True,
        qos_specs={"total_iops_sec": "500", "read_bytes_sec": "1048576"},
    )
    element = disk(conn)
    assert element.get("type") == "block"
    assert element.find("source").attrib == {"dev": "/dev/mapper/vg-vol1"}  # type: ignore[union-attr]
    assert element.find("driver").get("discard") == "unmap"  # type: ignore[union-attr]
    assert element.find("readonly") is not None
    assert [(e.tag, e.text) for e in element.find("iotune")] == [  # type: ignore[union-attr]
        ("read_bytes_sec", "1048576"),
        ("total_iops_sec", "500"),
    ]


def test_an_nbd_volume_is_a_network_disk_on_one_server() -> None:
    conn = connection("nbd", name="export-1", hosts=["127.0.0.1"], ports=["10809"])
    element = disk(conn)
    assert element.get("type") == "network"
    source = element.find("source")
    assert source is not None
    assert source.attrib == {"protocol": "nbd", "name": "export-1"}
    assert [h.attrib for h in source.findall("host")] == [{"name": "127.0.0.1", "port": "10809"}]


def test_an_iscsi_volume_uses_qemus_initiator_with_chap() -> None:
    conn = connection(
        "iscsi",
        target_portal="[2001:db8::5]:3261",
        target_iqn="iqn.2010-10.org.openstack:volume-1",
        target_lun=2,
        auth_method="CHAP",
        auth_username="chap-user",
        secret_uuid=SECRET,
    )
    element = disk(conn, iscsi_initiator="iqn.1993-08.org.debian:01:compute-1")
    source = element.find("source")
    assert source is not None
    assert source.attrib == {"protocol": "iscsi", "name": "iqn.2010-10.org.openstack:volume-1/2"}
    assert source.find("host").attrib == {"name": "2001:db8::5", "port": "3261"}  # type: ignore[union-attr]
    assert source.find("initiator/iqn").get("name") == "iqn.1993-08.org.debian:01:compute-1"  # type: ignore[union-attr]
    assert element.find("auth").get("username") == "chap-user"  # type: ignore[union-attr]
    assert element.find("auth/secret").attrib == {"type": "iscsi", "uuid": SECRET}  # type: ignore[union-attr]


def test_an_iscsi_portal_without_port_takes_3260() -> None:
    conn = connection(
        "iscsi", target_portal="192.0.2.7", target_iqn="iqn.2010-10.org.x:v", target_lun=0
    )
    assert disk(conn).find("source/host").attrib == {"name": "192.0.2.7", "port": "3260"}  # type: ignore[union-attr]


def test_an_rbd_volume_names_every_monitor_and_cephx_secret() -> None:
    conn = connection(
        "rbd",
        name="volumes/volume-1",
        hosts=["10.0.0.1", "ceph-mon-2.example.org"],
        ports=["6789", "3300"],
        auth_enabled=True,
        auth_username="cinder",
        secret_uuid=SECRET,
    )
    element = disk(conn, "sdb", "scsi")
    assert element.find("driver").get("cache") == "writeback"  # type: ignore[union-attr]
    assert [h.attrib for h in element.findall("source/host")] == [
        {"name": "10.0.0.1", "port": "6789"},
        {"name": "ceph-mon-2.example.org", "port": "3300"},
    ]
    assert element.find("auth/secret").attrib == {"type": "ceph", "uuid": SECRET}  # type: ignore[union-attr]
    assert element.find("target").attrib == {"dev": "sdb", "bus": "scsi"}  # type: ignore[union-attr]


# --- malformed connections -----------------------------------------------------------------


def test_a_missing_required_field_is_named() -> None:
    assert malformed(connection("file")) == (
        "malformed 'file' volume connection: data.device_path is missing"
    )
    assert malformed(connection("nbd", name="e", hosts=["127.0.0.1"])) == (
        "malformed 'nbd' volume connection: data.ports is missing"
    )
    assert malformed(connection("iscsi", target_portal="h", target_lun=0)) == (
        "malformed 'iscsi' volume connection: data.target_iqn is missing"
    )


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        (
            connection("file", device_path="volumes/v.img"),
            "data.device_path must be a normalised absolute path under /: 'volumes/v.img'",
        ),
        (
            connection("file", device_path="/srv/../etc/shadow"),
            "data.device_path must be a normalised absolute path under /: '/srv/../etc/shadow'",
        ),
        (
            connection("block", device_path="/srv/disk.img"),
            "data.device_path must be a normalised absolute path under /dev/: '/srv/disk.img'",
        ),
        (
            connection("nbd", name="e", hosts=["127.0.0.1"], ports=["99999"]),
            "data.ports '99999' is not a port number (1-65535)",
        ),
        (
            connection("nbd", name="e", hosts=["127.0.0.1", "127.0.0.2"], ports=["1"]),
            "data.ports has 1 entries for 2 hosts",
        ),
        (
            connection("nbd", name="e", hosts=["a", "b"], ports=["1", "2"]),
            "data.hosts has 2 servers; nbd takes one",
        ),
        (
            connection("nbd", name="e", hosts=["evil host'/>"], ports=["1"]),
            'data.hosts "evil host\'/>" is neither a host name nor an IP address',
        ),
        (
            connection("nbd", name="e", hosts=["host\n"], ports=["1"]),
            "data.hosts 'host\\n' is neither a host name nor an IP address",
        ),
        (
            connection("iscsi", target_portal="h:1", target_iqn="volume-1", target_lun=0),
            "data.target_iqn 'volume-1' is not an iqn./eui./naa. name",
        ),
        (
            connection(
                "iscsi", target_portal="h:x", target_iqn="iqn.2010-10.org.x:v", target_lun=0
            ),
            "data.target_portal 'h:x' is not host[:port]",
        ),
        (
            connection(
                "iscsi",
                target_portal="h",
                target_iqn="iqn.2010-10.org.x:v",
                target_lun=0,
                auth_method="CHAP",
            ),
            "data.auth_username is missing",
        ),
        (
            connection("rbd", name="volume-1", hosts=["m"], ports=["6789"]),
            "data.name 'volume-1' is not <pool>/<image>",
        ),
        (
            connection("file", device_path="/v", encrypted=True),
            "data.encrypted is set: encrypted volumes are not supported",
        ),
        (
            connection("file", device_path="/v", qos_specs={"burst": "1"}),
            "data.qos_specs has keys QEMU cannot limit: ['burst']",
        ),
    ],
)
def test_malformed_connections_are_refused_naming_the_field(
    conn: VolumeConnection, message: str
) -> None:
    assert malformed(conn) == f"malformed {conn.driver_volume_type!r} volume connection: {message}"


def test_a_connection_without_data_is_refused() -> None:
    assert malformed(VolumeConnection(driver_volume_type="nbd")) == (
        "malformed 'nbd' volume connection: data is missing"
    )


def test_an_unknown_volume_type_is_refused() -> None:
    with pytest.raises(MalformedVolumeConnection) as caught:
        driver_for("fibre_channel")
    assert str(caught.value) == (
        "malformed 'fibre_channel' volume connection: driver_volume_type is not one of "
        "['file', 'block', 'nbd', 'iscsi', 'rbd']"
    )


def test_a_control_character_in_an_export_name_is_refused() -> None:
    conn = connection("nbd", name="exp\x00", hosts=["127.0.0.1"], ports=["1"])
    with pytest.raises(InvalidXMLValue) as caught:
        volume_disk_element(conn, "vdb", "virtio")
    assert caught.value.what == "nbd volume data.name"
