"""The config drive: OpenStack's metadata for the guest on an ISO 9660 image labelled
`config-2`, as nova writes it and cloud-init reads it.

    openstack/latest/meta_data.json     uuid, name, hostname, project, keys, metadata, the
                                        injected files' list, the admin password
    openstack/latest/user_data          the instance's user data (base64 in the record)
    openstack/latest/network_data.json  links, networks and DNS from the network info
    openstack/content/0000 ...          each injected file's content

`config_drive_files` is pure (every bad value refused before anything is written);
`write_config_drive` blocks (it writes the image): run it in the blocking executor. The image
has Rock Ridge and Joliet names, so guests see the names above; its ISO 9660 names are short
generated ones that nothing reads.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pycdlib

from actors.instance.names import check_guest_path
from agent.virt.guest.errors import GuestConfigError
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo

LABEL = "config-2"
FILE_NAME = "disk.config"
# The most content a config drive takes (nova's API limits injected files far below this).
MAX_BYTES = 64 * 1024 * 1024


def config_drive_files(
    instance: Instance,
    network_info: NetworkInfo | None,
    injected_files: Sequence[tuple[str, bytes]] = (),
    admin_password: str | None = None,
) -> dict[str, bytes]:
    """The drive's files, by their path on it; `GuestConfigError` for what cannot go on it."""
    files: dict[str, bytes] = {}
    listed = []
    for index, (path, content) in enumerate(injected_files):
        check_guest_path("inject a file", instance.uuid, path)
        content_path = f"/content/{index:04d}"
        files[f"openstack{content_path}"] = content
        listed.append({"path": path, "content_path": content_path})
    meta: dict[str, Any] = {
        "uuid": instance.uuid,
        "name": instance.display_name or instance.name,
        "hostname": instance.hostname or instance.name,
        "launch_index": 0,
        "availability_zone": instance.availability_zone,
        "project_id": instance.project_id,
        "meta": dict(instance.metadata),
        "files": listed,
    }
    if instance.key_data:
        meta["public_keys"] = {"key": instance.key_data}
        meta["keys"] = [{"name": "key", "type": "ssh", "data": instance.key_data}]
    if admin_password is not None:
        meta["admin_pass"] = admin_password
    files["openstack/latest/meta_data.json"] = _json(meta)
    files["openstack/latest/network_data.json"] = _json(network_data(network_info))
    if instance.user_data:
        try:
            user_data = base64.b64decode(instance.user_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            reason = f"its user_data is not base64: {exc}"
            raise GuestConfigError(uuid=instance.uuid, reason=reason) from None
        files["openstack/latest/user_data"] = user_data
    size = sum(len(content) for content in files.values())
    if size > MAX_BYTES:
        reason = f"its config drive would hold {size} bytes, more than {MAX_BYTES}"
        raise GuestConfigError(uuid=instance.uuid, reason=reason)
    return files


def network_data(network_info: NetworkInfo | None) -> dict[str, Any]:
    """nova's network_data.json: one link per VIF, its networks (static addresses), DNS."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, str]] = []
    for vif in [] if network_info is None else network_info.objects:
        link_id = f"tap{vif.id[:11]}"
        links.append(
            {
                "id": link_id,
                "type": "phy",
                "ethernet_mac_address": vif.address,
                "mtu": vif.network.mtu if vif.network is not None else None,
                "vif_id": vif.id,
            }
        )
        subnets = [] if vif.network is None else vif.network.subnets
        for subnet in subnets:
            for ip in subnet.ips:
                network: dict[str, Any] = {
                    "id": f"network{len(networks)}",
                    "type": "ipv6" if subnet.cidr.version == 6 else "ipv4",
                    "link": link_id,
                    "ip_address": str(ip),
                    "netmask": str(subnet.cidr.netmask),
                    "network_id": vif.network.id if vif.network is not None else None,
                    "routes": [],
                }
                if subnet.gateway is not None:
                    default = "::" if subnet.cidr.version == 6 else "0.0.0.0"
                    network["routes"].append(
                        {"network": default, "netmask": default, "gateway": str(subnet.gateway)}
                    )
                networks.append(network)
            for dns in subnet.dns:
                entry = {"type": "dns", "address": str(dns)}
                if entry not in services:
                    services.append(entry)
    return {"links": links, "networks": networks, "services": services}


def write_config_drive(path: Path, files: Mapping[str, bytes]) -> None:
    """The ISO 9660 image of `files` at `path` (blocking)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident=LABEL)
    made: dict[str, str] = {"": "/"}  # directory on the drive -> its ISO 9660 path
    try:
        for number, (name, content) in enumerate(sorted(files.items())):
            parent = _directory(iso, made, name.rpartition("/")[0])
            leaf = name.rpartition("/")[2]
            iso_path = f"{parent.rstrip('/')}/F{number:06d}.;1"
            iso.add_fp(
                io.BytesIO(content),
                len(content),
                iso_path,
                rr_name=leaf,
                joliet_path=f"/{name}",
            )
        iso.write(str(path))
    finally:
        iso.close()


def _directory(iso: pycdlib.PyCdlib, made: dict[str, str], name: str) -> str:
    if name in made:
        return made[name]
    parent = _directory(iso, made, name.rpartition("/")[0])
    iso_path = f"{parent.rstrip('/')}/D{len(made):06d}"
    iso.add_directory(iso_path, rr_name=name.rpartition("/")[2], joliet_path=f"/{name}")
    made[name] = iso_path
    return iso_path


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
