"""An Open vSwitch port (nova's VIF type `ovs`) plugged into a real guest on host1.

The bridge has no uplink and uses OVS's userspace datapath (`datapath_type=netdev`): it needs
only ovsdb-server and ovs-vswitchd, not the kernel's openvswitch module, which containers and
this CI machine lack. libvirt adds the guest's tap device to it with `ovs-vsctl`, as on a
compute node; the test reads the port back from OVS, sees the NIC inside the guest, and sees
the port go when the interface is detached.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from schemas.objects import VIF, Network
from tests.conftest import missing_component
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage, nics_line
from tests.system.instance_helpers import (
    HOST,
    console_shows,
    embedded_client,
    kernel_image,
    spawn_booted,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU


def ovs_vsctl(*args: str) -> str:
    done = subprocess.run(
        ["ovs-vsctl", "--timeout=10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ovs-vsctl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@pytest.fixture
def ovs_bridge() -> Iterator[str]:
    """A fresh OVS bridge with no uplink, deleted (with any port left on it) afterwards."""
    if shutil.which("ovs-vsctl") is None:
        missing_component("Open vSwitch (ovs-vsctl)", "deploy/local/system-packages.sh test")
    try:
        ovs_vsctl("show")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        missing_component(f"Open vSwitch ({exc})", "deploy/local/services.sh start")
    name = f"br-vt{uuidlib.uuid4().hex[:8]}"
    ovs_vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
    try:
        yield name
    finally:
        ovs_vsctl("--if-exists", "del-br", name)


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    test_hosts: tuple[LocalHost, ...], qemu_tmp_path: Path, guest_image: GuestImage
) -> AsyncIterator[ComputeClient]:
    async with embedded_client(test_hosts[0], qemu_tmp_path, guest_image) as c:
        yield c


async def ports_become(bridge: str, ports: str, timeout: float = 30) -> None:
    """libvirt removes a port once QEMU let the tap go, just after the detach returns."""
    async with asyncio.timeout(timeout):
        while await asyncio.to_thread(ovs_vsctl, "list-ports", bridge) != ports:  # noqa: ASYNC110
            await asyncio.sleep(0.2)


async def test_an_ovs_vif_becomes_a_port_of_its_bridge_named_by_the_port_id(
    client: ComputeClient,
    ovs_bridge: str,
    domain_janitor: DomainJanitor,
    guest_image: GuestImage,
) -> None:
    me = tracked_instance(domain_janitor)
    port_id = str(uuidlib.uuid4())
    port = VIF(
        id=port_id,
        address="fa:16:3e:0b:5a:01",
        type="ovs",
        network=Network(id=str(uuidlib.uuid4()), label="private", bridge=ovs_bridge),
    )
    tap = f"tap{port_id[:11]}"
    await spawn_booted(client, me, kernel_image(guest_image))

    await client.attach_interface(HOST, me, port)

    assert await asyncio.to_thread(ovs_vsctl, "list-ports", ovs_bridge) == tap
    ids = await asyncio.to_thread(ovs_vsctl, "get", "Interface", tap, "external-ids")
    assert f'iface-id="{port_id}"' in ids
    assert 'attached-mac="fa:16:3e:0b:5a:01"' in ids
    await console_shows(client, me, nics_line(["eth0"]), 60)

    await client.detach_interface(HOST, me, port)

    await ports_become(ovs_bridge, "")
    await client.destroy(HOST, me)
