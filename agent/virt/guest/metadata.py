"""The project's own elements in a domain's `<metadata>`, and its SMBIOS `<sysinfo>`.

Two elements, each in its own namespace, because libvirt's `virDomainSetMetadata` replaces
the one element of a namespace as a whole:

- `instance` (`INSTANCE_NS`): what an operator reading `virsh dumpxml` wants to know, the
  instance's uuid and display name, its flavor, its owner, what it was built from and the
  user metadata, in the spirit of nova's `<nova:instance>`.
- `recovery` (`RECOVERY_NS`): the opaque bytes the instance actor stores to rebuild itself
  after an agent restart, base64 text. Rewritten on every change, so it stays small and apart.
"""

from __future__ import annotations

import base64
import binascii
import importlib.metadata
import xml.etree.ElementTree as ET
from datetime import datetime

from agent.virt.guest.elements import checked, element, namespaced, sub, to_xml
from agent.virt.guest.errors import GuestConfigError
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance

INSTANCE_NS = "https://virtactor.dev/xmlns/libvirt/instance/1.0"
INSTANCE_PREFIX = "virtactor"
RECOVERY_NS = "https://virtactor.dev/xmlns/libvirt/recovery/1.0"
RECOVERY_PREFIX = "virtactor-recovery"

try:
    PACKAGE_VERSION = importlib.metadata.version("virtactor")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    PACKAGE_VERSION = "unknown"


def instance_element(
    instance: Instance, image_meta: ImageMeta, created: datetime | None = None
) -> ET.Element:
    """`<virtactor:instance>`: uuid, names, flavor, owner, image and user metadata."""
    root = namespaced(INSTANCE_PREFIX, INSTANCE_NS, "instance")

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
        return sub(parent, f"{INSTANCE_PREFIX}:{tag}", text, **attrib)

    add(root, "package", version=PACKAGE_VERSION)
    add(root, "uuid", instance.uuid)
    add(root, "name", checked(instance.display_name or instance.name, "instance display name"))
    if created is not None:
        add(root, "creationTime", created.strftime("%Y-%m-%d %H:%M:%S"))
    flavor = instance.flavor
    flavor_el = add(root, "flavor", name=checked(flavor.name, "flavor name"), id=flavor.flavorid)
    add(flavor_el, "memory", str(flavor.memory_mb))
    add(flavor_el, "disk", str(flavor.root_gb))
    add(flavor_el, "swap", str(flavor.swap))
    add(flavor_el, "ephemeral", str(flavor.ephemeral_gb))
    add(flavor_el, "vcpus", str(flavor.vcpus))
    owner = add(root, "owner")
    if instance.user_id is not None:
        add(owner, "user", uuid=checked(instance.user_id, "instance user_id"))
    if instance.project_id is not None:
        add(owner, "project", uuid=checked(instance.project_id, "instance project_id"))
    if instance.image_ref:
        add(root, "root", type="image", uuid=checked(instance.image_ref, "instance image_ref"))
    elif image_meta.id is not None:
        add(root, "root", type="image", uuid=image_meta.id)
    user_metadata = add(root, "metadata")
    for key, value in sorted(instance.metadata.items()):
        # Keys are attribute values, never tag names: a key cannot change the structure.
        add(
            user_metadata,
            "item",
            checked(value, f"instance metadata value of {key!r}"),
            key=checked(key, "instance metadata key"),
        )
    return root


def recovery_element(recovery: bytes) -> ET.Element:
    """`<virtactor-recovery:recovery>` holding `recovery` as base64 text."""
    root = namespaced(RECOVERY_PREFIX, RECOVERY_NS, "recovery")
    root.set("encoding", "base64")
    root.text = base64.b64encode(recovery).decode("ascii")
    return root


def recovery_fragment(recovery: bytes) -> str:
    """The recovery element as `virDomainSetMetadata` takes it (libvirt adds the namespace)."""
    node = element("recovery", base64.b64encode(recovery).decode("ascii"), encoding="base64")
    return to_xml(node)


def parse_recovery(xml: str, uuid: str) -> bytes:
    """The bytes of a recovery element libvirt returned (`virDomainGetMetadata`)."""
    try:
        node = ET.fromstring(xml)
        return base64.b64decode((node.text or "").strip(), validate=True)
    except (ET.ParseError, binascii.Error, ValueError) as exc:
        raise GuestConfigError(
            uuid=uuid, reason=f"the recovery metadata is not base64 in XML: {exc}"
        ) from exc


def sysinfo_element(instance: Instance) -> ET.Element:
    """SMBIOS system information the guest reads with dmidecode (type 1)."""
    sysinfo = element("sysinfo", type="smbios")
    system = sub(sysinfo, "system")
    for name, value in (
        ("manufacturer", "virtactor"),
        ("product", "virtactor compute"),
        ("version", PACKAGE_VERSION),
        ("serial", instance.uuid),
        ("uuid", instance.uuid),
        ("family", "Virtual Machine"),
    ):
        sub(system, "entry", value, name=name)
    return sysinfo
