"""libvirt's errors translated at the one edge: the table itself (no libvirt needed: errors
built by hand), then through `Host.run` on libvirt's test driver."""

from __future__ import annotations

import uuid

import libvirt
import pytest

from agent.errors import HypervisorError, HypervisorUnavailable, InstanceNotFound, NotSupported
from agent.virt.guest.errors import GuestAgentUnavailable
from agent.virt.host import Host
from agent.virt.libvirt_errors import (
    VIR_ERR_AGENT_COMMAND_TIMEOUT,
    flags_refused,
    is_domain_gone,
    is_wrong_state,
    translate,
)
from tests.agent.virt.conftest import domain_xml

URI = "qemu:///system"
UUID = "8c5f3e3a-4c0b-4a57-9d6b-2f1e0c9a7d11"
MISSING = "00000000-0000-0000-0000-00000000dead"


def libvirt_error(code: int, origin: int, message: str, str2: str | None = None) -> Exception:
    """A `libvirtError` as libvirt-python raises it: (code, domain, message, level, str1..3,
    int1, int2), here set by hand instead of read from libvirt's last error."""
    error = libvirt.libvirtError(message)
    error.err = (code, origin, message, libvirt.VIR_ERR_ERROR, message, str2, None, -1, -1)
    return error


def test_a_lost_connection_is_hypervisor_unavailable() -> None:
    error = libvirt_error(
        libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC, "client socket is closed"
    )

    translated = translate(error, uri=URI, uuid=UUID)

    assert type(translated) is HypervisorUnavailable
    assert translated.retryable
    assert str(translated) == (
        f"the hypervisor at {URI!r} is unavailable: client socket is closed "
        f"(libvirt error {libvirt.VIR_ERR_INTERNAL_ERROR}, domain {libvirt.VIR_FROM_RPC})"
    )


def test_a_vanished_domain_is_instance_not_found_for_the_instance_the_call_was_for() -> None:
    error = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_TEST, "Domain not found")

    translated = translate(error, uri=URI, uuid=UUID)

    assert type(translated) is InstanceNotFound
    assert str(translated) == f"instance {UUID} could not be found"


def test_a_vanished_domain_libvirt_names_is_instance_not_found_without_a_given_uuid() -> None:
    message = f"Domain not found: no domain with matching uuid '{UUID.upper()}' (guest)"
    error = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, message)

    translated = translate(error, uri=URI)

    assert type(translated) is InstanceNotFound
    assert translated.fields == {"uuid": UUID}


def test_a_vanished_domain_nobody_names_is_a_hypervisor_error() -> None:
    message = "Domain not found: no domain with matching name 'guest'"
    error = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, message)

    translated = translate(error, uri=URI)

    assert type(translated) is HypervisorError
    assert translated.fields == {
        "code": libvirt.VIR_ERR_NO_DOMAIN,
        "origin": libvirt.VIR_FROM_QEMU,
        "reason": message,
    }


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: not connected"),
        (libvirt.VIR_ERR_AGENT_UNSYNCED, "guest agent replied with wrong id to guest-sync"),
        # libvirt after 9.7; this libvirt-python may not name it.
        (112, "Guest agent didn't respond to command 'guest-set-user-password'"),
    ],
)
def test_a_silent_guest_agent_is_guest_agent_unavailable(code: int, message: str) -> None:
    error = libvirt_error(code, libvirt.VIR_FROM_QEMU, message)

    translated = translate(error, uri=URI, uuid=UUID)

    assert type(translated) is GuestAgentUnavailable
    assert translated.retryable
    assert str(translated) == f"the guest agent of instance {UUID} is not answering: {message}"


def test_the_agent_timeout_number_is_known_whether_or_not_libvirt_python_names_it() -> None:
    assert getattr(libvirt, "VIR_ERR_AGENT_COMMAND_TIMEOUT", 112) == VIR_ERR_AGENT_COMMAND_TIMEOUT


def test_an_api_the_driver_lacks_is_not_supported_naming_the_api() -> None:
    message = "this function is not supported by the connection driver: virDomainBlockCopy"
    error = libvirt_error(
        libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_FROM_DOMAIN, message, "virDomainBlockCopy"
    )

    translated = translate(error, uri=URI, uuid=UUID)

    assert type(translated) is NotSupported
    assert str(translated) == f"virDomainBlockCopy is not supported: {message}"


def test_any_other_error_is_a_hypervisor_error_with_libvirts_code_origin_and_message() -> None:
    message = "Requested operation is not valid: domain is not running"
    error = libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_QEMU, message)

    translated = translate(error, uri=URI, uuid=UUID)

    assert type(translated) is HypervisorError
    assert not translated.retryable
    assert str(translated) == (
        f"libvirt failed: {message} "
        f"(libvirt error {libvirt.VIR_ERR_OPERATION_INVALID}, domain {libvirt.VIR_FROM_QEMU})"
    )


def test_an_error_libvirt_never_set_is_a_hypervisor_error_with_code_zero() -> None:
    translated = translate(libvirt.libvirtError("virDomainGetInfo() failed"), uri=URI)

    assert type(translated) is HypervisorError
    assert translated.fields == {"code": 0, "origin": 0, "reason": "virDomainGetInfo() failed"}


def test_the_predicates_read_the_raw_error() -> None:
    gone = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, "Domain not found")
    stopped = libvirt_error(
        libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_QEMU, "domain is not running"
    )

    assert (is_domain_gone(gone), is_wrong_state(gone)) == (True, False)
    assert (is_domain_gone(stopped), is_wrong_state(stopped)) == (False, True)


@pytest.mark.parametrize(
    ("code", "message", "refused"),
    [
        (libvirt.VIR_ERR_INVALID_ARG, "unsupported flags (0x1) in testDomainShutdown", True),
        (libvirt.VIR_ERR_NO_SUPPORT, "unsupported flags (0x4) in virDomainUndefine", True),
        (libvirt.VIR_ERR_NO_SUPPORT, "this function is not supported by the driver", False),
        (libvirt.VIR_ERR_OPERATION_INVALID, "domain is not running", False),
    ],
)
def test_a_refused_flag_is_told_from_a_missing_api(code: int, message: str, refused: bool) -> None:
    assert flags_refused(libvirt_error(code, libvirt.VIR_FROM_TEST, message)) is refused


# --- through the Host, on libvirt's test driver ----------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_run_on_an_instance_whose_domain_is_missing_raises_instance_not_found(
    test_host: Host,
) -> None:
    # The test driver's message names no uuid: only the uuid given to run_on can.
    with pytest.raises(InstanceNotFound) as caught:
        await test_host.run_on(MISSING, lambda conn: conn.lookupByUUIDString(MISSING).suspend())

    assert caught.value.fields == {"uuid": MISSING}
    assert isinstance(caught.value.__cause__, libvirt.libvirtError)
    assert test_host.connected


@pytest.mark.asyncio(loop_scope="session")
async def test_run_for_no_instance_reports_a_missing_domain_as_a_hypervisor_error(
    test_host: Host,
) -> None:
    with pytest.raises(HypervisorError) as caught:
        await test_host.run(lambda conn: conn.lookupByName("no-such-domain"))

    assert (caught.value.code, caught.value.reason) == (
        libvirt.VIR_ERR_NO_DOMAIN,
        "Domain not found",
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_a_domain_that_vanishes_under_a_verb_is_instance_not_found(test_host: Host) -> None:
    dom_uuid = str(uuid.uuid4())
    await test_host.run(lambda conn: conn.defineXML(domain_xml("vanishing", dom_uuid)))

    def undefine_then_start(conn: libvirt.virConnect) -> None:
        dom = conn.lookupByUUIDString(dom_uuid)
        dom.undefine()
        dom.create()

    with pytest.raises(InstanceNotFound) as caught:
        await test_host.run_on(dom_uuid, undefine_then_start)
    assert caught.value.fields == {"uuid": dom_uuid}


@pytest.mark.asyncio(loop_scope="session")
async def test_an_api_the_test_driver_lacks_is_not_supported(test_host: Host) -> None:
    with pytest.raises(NotSupported) as caught:
        await test_host.run(
            lambda conn: conn.lookupByName("test").blockCopy("vda", "<disk/>", None, 0)
        )

    assert str(caught.value) == (
        "virDomainBlockCopy is not supported: "
        "this function is not supported by the connection driver: virDomainBlockCopy"
    )
