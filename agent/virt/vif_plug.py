"""Plugging an instance's tap devices into their bridges on this host, and unplugging them.

libvirt creates a guest's tap devices when the domain starts and enslaves each to its
bridge. After the host's networking was rebuilt under running guests (a bridge deleted and
made again, an Open vSwitch database reset), the taps are left without a bridge; `plug`
puts each back (nova's `plug_vifs` at host boot). `unplug` takes them off (the guest keeps
its NIC, with no link to anything).

- `bridge`: the Linux bridge `network.bridge` exists (made, and brought up, when the network
  says `should_create_bridge`), the tap is its port and up.
- `ovs`: the tap is a port of the Open vSwitch bridge with the external ids the Neutron
  agent looks for (`iface-id`, `attached-mac`, `vm-uuid`).
- `tap`, `ethernet`, `other`: nothing here plugs them.

A tap that does not exist (the domain is not running) is skipped: libvirt plugs it when the
domain starts. Everything runs `ip` and `ovs-vsctl` as subprocesses of the event loop (no
blocking call on it); each is idempotent, so plugging twice changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from agent.virt.guest.errors import VIFPlugFailed
from agent.virt.vifs import bridge_name, ovs_interface_id, tap_name
from schemas.objects.enums import VIFType
from schemas.objects.network import VIF

SYS_NET = "/sys/class/net"
COMMAND_TIMEOUT = 30.0


async def plug(instance_uuid: str, vifs: Sequence[VIF]) -> list[str]:
    """Plug each VIF's tap into its bridge; what was changed, as "tap -> bridge"."""
    changed = []
    for vif in vifs:
        if vif.type == VIFType.BRIDGE:
            bridge = _bridge_of(vif)
            await _ensure_bridge(vif, bridge)
            tap = tap_name(vif)
            exists, master = await asyncio.to_thread(_link, tap)
            if exists and master != bridge:
                await _run(vif, "ip", "link", "set", "dev", tap, "master", bridge)
                await _run(vif, "ip", "link", "set", "dev", tap, "up")
                changed.append(f"{tap} -> {bridge}")
        elif vif.type == VIFType.OVS:
            bridge = _bridge_of(vif)
            tap = tap_name(vif)
            exists, _master = await asyncio.to_thread(_link, tap)
            if exists and not await _ovs_port_on(vif, bridge, tap):
                await _ovs_add(instance_uuid, vif, bridge, tap)
                changed.append(f"{tap} -> {bridge}")
    return changed


async def unplug(vifs: Sequence[VIF]) -> list[str]:
    """Take each VIF's tap off its bridge; what was changed, as "tap -/- bridge"."""
    changed = []
    for vif in vifs:
        if vif.type not in (VIFType.BRIDGE, VIFType.OVS):
            continue
        bridge = _bridge_of(vif)
        tap = tap_name(vif)
        if vif.type == VIFType.BRIDGE:
            exists, master = await asyncio.to_thread(_link, tap)
            if exists and master == bridge:
                await _run(vif, "ip", "link", "set", "dev", tap, "nomaster")
                changed.append(f"{tap} -/- {bridge}")
        elif await _ovs_port_on(vif, bridge, tap):
            await _run(vif, "ovs-vsctl", "--if-exists", "del-port", bridge, tap)
            changed.append(f"{tap} -/- {bridge}")
    return changed


def _bridge_of(vif: VIF) -> str:
    tap_name(vif)  # checks the device name
    return bridge_name(vif)


def _link(device: str) -> tuple[bool, str | None]:
    """Whether network device `device` exists, and the bridge it is a port of (sysfs)."""
    if not os.path.exists(os.path.join(SYS_NET, device)):
        return False, None
    return True, _master(device)


def _is_bridge(device: str) -> bool:
    return os.path.isdir(os.path.join(SYS_NET, device, "bridge"))


def _master(device: str) -> str | None:
    link = os.path.join(SYS_NET, device, "master")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


async def _ensure_bridge(vif: VIF, bridge: str) -> None:
    exists, _master = await asyncio.to_thread(_link, bridge)
    if not exists:
        assert vif.network is not None
        if not vif.network.should_create_bridge:
            raise VIFPlugFailed(
                vif_id=vif.id,
                reason=f"bridge {bridge} does not exist on this host and the network does not "
                "say to create it (should_create_bridge)",
            )
        await _run(vif, "ip", "link", "add", "name", bridge, "type", "bridge")
    elif not await asyncio.to_thread(_is_bridge, bridge):
        raise VIFPlugFailed(vif_id=vif.id, reason=f"{bridge} exists and is not a bridge")
    await _run(vif, "ip", "link", "set", "dev", bridge, "up")


async def _ovs_port_on(vif: VIF, bridge: str, tap: str) -> bool:
    out = await _run(vif, "ovs-vsctl", "list-ports", bridge, check=False)
    return tap in out.split()


async def _ovs_add(instance_uuid: str, vif: VIF, bridge: str, tap: str) -> None:
    iface_id = ovs_interface_id(vif)
    await _run(
        vif,
        "ovs-vsctl",
        "--may-exist",
        "add-port",
        bridge,
        tap,
        "--",
        "set",
        "Interface",
        tap,
        f"external-ids:iface-id={iface_id}",
        f"external-ids:attached-mac={vif.address}",
        f"external-ids:vm-uuid={instance_uuid}",
        "external-ids:iface-status=active",
    )


async def _run(vif: VIF, *argv: str, check: bool = True) -> str:
    """Run `argv`; its output. A failure (when `check`) is `VIFPlugFailed` with its words."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise VIFPlugFailed(vif_id=vif.id, reason=f"cannot run {argv[0]}: {exc.strerror}") from exc
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise VIFPlugFailed(
            vif_id=vif.id, reason=f"{' '.join(argv)} did not end within {COMMAND_TIMEOUT} s"
        ) from None
    if check and process.returncode != 0:
        words = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise VIFPlugFailed(vif_id=vif.id, reason=f"{' '.join(argv)}: {words}")
    return out.decode(errors="replace")
