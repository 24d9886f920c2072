"""An agent restarted while real guests run adopts them and leaves them alone.

Two guests boot on the real libvirtd (qemu:///system); the agent's host side is stopped and
a new one started, as an agent restart does. The new one must report both running, and the
guests must be untouched: same QEMU process, same libvirt domain id, one boot, and their
heartbeat counting on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from actors import BlockingExecutor, instance_address
from schemas.objects.enums import PowerState
from tests.agent.virt.helpers import remove_domain, start_agent, stop_agent, wait_for
from tests.system.conftest import ON_REAL_QEMU, wait_for_console_async
from tests.system.domains import guest_domain_xml
from tests.system.guest_image import HEARTBEAT_RE, GuestImage, GuestMarker

pytestmark = ON_REAL_QEMU

BOOT_TIMEOUT = 120.0
EVENT_TIMEOUT = 30.0
QEMU_RUN_DIR = Path("/run/libvirt/qemu")


@pytest.fixture
def guests(qemu_uri: str, tmp_path: Path) -> Iterator[list[tuple[str, str, Path]]]:
    """Two (uuid, name, console log) triples; the domains are removed afterwards."""
    made = []
    for _ in range(2):
        domain_uuid = str(uuid.uuid4())
        made.append((domain_uuid, f"virtactor-adopt-{domain_uuid[:8]}", tmp_path / domain_uuid))
    yield made
    for domain_uuid, _name, _console in made:
        remove_domain(qemu_uri, domain_uuid)


def qemu_pid(name: str) -> int:
    return int((QEMU_RUN_DIR / f"{name}.pid").read_text())


def beat(text: str) -> int:
    found = HEARTBEAT_RE.fullmatch(text)
    assert found is not None, text
    return int(found.group(1))


async def test_a_restarted_agent_adopts_running_guests_and_does_not_disturb_them(
    qemu_uri: str,
    executor: BlockingExecutor,
    guest_image: GuestImage,
    guests: list[tuple[str, str, Path]],
    tmp_path: Path,
) -> None:
    first = await start_agent(executor, qemu_uri, str(tmp_path))
    await first.ref.ask("init_host", timeout=60)
    for domain_uuid, name, console in guests:
        xml = guest_domain_xml(name, domain_uuid, guest_image, console)
        await first.run(lambda conn, xml=xml: conn.defineXML(xml).create())
    booted = await asyncio.gather(
        *(wait_for_console_async(c, GuestMarker.BOOTED, BOOT_TIMEOUT) for _, _, c in guests)
    )
    # A heartbeat each guest printed before the restart, to compare the later ones with.
    before = {
        console: await wait_for_console_async(console, HEARTBEAT_RE, EVENT_TIMEOUT, start=b.end)
        for (_, _, console), b in zip(guests, booted, strict=True)
    }
    for domain_uuid, _name, _console in guests:
        await wait_for(lambda u=domain_uuid: first.states(u)[-1:] == [PowerState.RUNNING])
    pids = {name: qemu_pid(name) for _, name, _ in guests}
    ids = {
        u: await first.run(lambda conn, u=u: conn.lookupByUUIDString(u).ID()) for u, _, _ in guests
    }

    await stop_agent(first)  # the agent goes away; the guests must not notice
    restarted_at = {c: max(c.stat().st_size, before[c].end) for _, _, c in guests}
    second = await start_agent(executor, qemu_uri, str(tmp_path))
    try:
        adopted = await second.ref.ask("init_host", timeout=60)

        for domain_uuid, name, console in guests:
            assert domain_uuid in adopted
            assert instance_address(domain_uuid) in second.system
            assert second.actors.made[domain_uuid].power_state == PowerState.RUNNING
            assert second.states(domain_uuid) == [PowerState.RUNNING]
            assert qemu_pid(name) == pids[name]
            state, _reason = await second.run(
                lambda conn, u=domain_uuid: conn.lookupByUUIDString(u).state()
            )
            assert state == libvirt.VIR_DOMAIN_RUNNING
            assert (
                await second.run(lambda conn, u=domain_uuid: conn.lookupByUUIDString(u).ID())
                == (ids[domain_uuid])
            )
            later = await wait_for_console_async(
                console, HEARTBEAT_RE, EVENT_TIMEOUT, start=restarted_at[console]
            )
            assert beat(later.text) > beat(before[console].text)
            boots = console.read_text(errors="replace").splitlines()
            assert [line.rstrip("\r") for line in boots].count(GuestMarker.BOOTED) == 1
    finally:
        await stop_agent(second)
