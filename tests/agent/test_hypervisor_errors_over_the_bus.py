"""libvirt's failures reach a control plane as typed errors, never as a wrapped libvirtError:
a whole agent on libvirt's test driver, driven over the bus (real QEMU:
tests/system/test_guest_agent_errors.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from agent.errors import HypervisorError, NotSupported
from tests.actors.instance.fakes import image_meta
from tests.agent.embedded import EmbeddedGuest, embedded_guest
from tests.conftest import ON_SESSION_LOOP

HOST = "compute-errors"

pytestmark = ON_SESSION_LOOP


@pytest_asyncio.fixture(loop_scope="session")
async def running(tmp_path: Path) -> AsyncIterator[EmbeddedGuest]:
    """A guest whose image declares a QEMU guest agent, running on the test driver."""
    async with embedded_guest(tmp_path, HOST, image_meta(guest_agent=True)) as running:
        yield running


async def test_a_guest_agent_call_the_driver_lacks_is_not_supported(running: EmbeddedGuest) -> None:
    # It used to end in HandlerFailed: AttributeError, on a libvirt constant this
    # libvirt-python does not define, whatever libvirt had said.
    with pytest.raises(NotSupported) as caught:
        await running.client.set_admin_password(HOST, running.guest, "s3cret")

    assert str(caught.value) == (
        "virDomainQemuAgentCommand is not supported: "
        "this function is not supported by the connection driver: virDomainQemuAgentCommand"
    )


async def test_a_disk_the_guest_lacks_is_a_hypervisor_error_with_libvirts_code(
    running: EmbeddedGuest,
) -> None:
    with pytest.raises(HypervisorError) as caught:
        await running.client.block_stats(HOST, running.guest, "vdz")

    assert caught.value.fields == {
        "code": libvirt.VIR_ERR_INVALID_ARG,
        "origin": libvirt.VIR_FROM_TEST,
        "reason": "invalid argument: invalid path: vdz",
    }


async def test_an_interface_the_guest_lacks_is_a_hypervisor_error(running: EmbeddedGuest) -> None:
    with pytest.raises(HypervisorError) as caught:
        await running.client.interface_stats(HOST, running.guest, "tap-nope")

    assert caught.value.code == libvirt.VIR_ERR_INVALID_ARG
    assert caught.value.reason == "invalid argument: 'tap-nope' is not a known interface"
