"""The config drive: what goes on it, and the ISO 9660 image a guest reads it from."""

from __future__ import annotations

import base64
import io
import ipaddress
import json
from pathlib import Path

import pycdlib
import pytest

from actors.instance.errors import InvalidInstanceArgument
from agent.virt.guest.config_drive import LABEL, config_drive_files, write_config_drive
from agent.virt.guest.errors import GuestConfigError
from schemas.objects.network import VIF, Network, NetworkInfo, Subnet
from tests.agent.virt.guest import samples


def network() -> NetworkInfo:
    subnet = Subnet(
        cidr=ipaddress.ip_network("192.0.2.0/24"),
        gateway=ipaddress.ip_address("192.0.2.1"),
        dns=[ipaddress.ip_address("192.0.2.53")],
        ips=[ipaddress.ip_address("192.0.2.10")],
    )
    vif = VIF(
        id="8c2b6b6e-1d2a-4b3c-9d4e-5f6a7b8c9d0e",
        address="fa:16:3e:00:00:01",
        type="bridge",
        network=Network(
            id="0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", label="net", mtu=1450, subnets=[subnet]
        ),
    )
    return NetworkInfo(objects=[vif])


def test_the_drive_holds_openstacks_metadata_files_and_network() -> None:
    instance = samples.instance(
        config_drive=True,
        user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
        key_data="ssh-ed25519 AAAA test",
        metadata={"role": "db"},
    )
    files = config_drive_files(instance, network(), [("/etc/motd", b"hello\n")], "s3cret")
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == instance.uuid and meta["admin_pass"] == "s3cret"
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]
    assert meta["meta"] == {"role": "db"}
    assert meta["public_keys"] == {"key": "ssh-ed25519 AAAA test"}
    assert files["openstack/content/0000"] == b"hello\n"
    assert files["openstack/latest/user_data"] == b"#!/bin/sh\necho hi\n"
    net = json.loads(files["openstack/latest/network_data.json"])
    assert net["links"][0]["ethernet_mac_address"] == "fa:16:3e:00:00:01"
    assert net["networks"][0]["ip_address"] == "192.0.2.10"
    assert net["networks"][0]["netmask"] == "255.255.255.0"
    assert net["networks"][0]["routes"][0]["gateway"] == "192.0.2.1"
    assert net["services"] == [{"type": "dns", "address": "192.0.2.53"}]


def test_what_cannot_go_on_the_drive_is_refused() -> None:
    with pytest.raises(InvalidInstanceArgument, match="not an absolute path"):
        config_drive_files(samples.instance(), None, [("etc/motd", b"x")])
    with pytest.raises(GuestConfigError, match="not base64"):
        config_drive_files(samples.instance(user_data="not base64!"), None)


def test_the_image_is_labelled_config_2_and_holds_every_file(tmp_path: Path) -> None:
    files = {
        "openstack/latest/meta_data.json": b'{"uuid":"x"}',
        "openstack/latest/user_data": b"#cloud-config\n",
        "openstack/content/0000": bytes(range(256)) * 100,
        "openstack/content/0001": b"",
    }
    path = tmp_path / "disk.config"
    write_config_drive(path, files)
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == LABEL
        for name, content in files.items():
            for facade in (iso.get_rock_ridge_facade(), iso.get_joliet_facade()):
                out = io.BytesIO()
                facade.get_file_from_iso_fp(out, f"/{name}")
                assert out.getvalue() == content, name
    finally:
        iso.close()
