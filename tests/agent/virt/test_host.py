"""The Host on libvirt's test driver: connection, calls, events, listing, versions."""

from __future__ import annotations

import asyncio
import threading
import uuid

import libvirt
import pytest

from actors import BlockingExecutor
from agent.errors import HypervisorError, HypervisorUnavailable, InstanceNotFound
from agent.virt.domains import DomainRecord
from agent.virt.eventloop import EventLoopMismatch, bound_event_loop
from agent.virt.events import DomainEventKind
from agent.virt.host import Host, HostAlreadyStarted, HostClosed
from agent.virt.reconnect import Backoff
from tests.agent.virt.conftest import TEST_URI, RecordingListener, domain_xml
from tests.agent.virt.helpers import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Nothing listens on TCP port 1 of the loopback: every connect is refused at once.
REFUSED_URI = "qemu+tcp://127.0.0.1:1/system"
REFUSED_REASON = (
    "cannot connect: unable to connect to server at '127.0.0.1:1': Connection refused "
    f"(libvirt error {libvirt.VIR_ERR_SYSTEM_ERROR}, domain {libvirt.VIR_FROM_RPC})"
)


async def test_a_started_host_lists_the_test_drivers_default_domain(test_host: Host) -> None:
    domains = await test_host.list_domains()

    assert list(domains.values()) == [
        DomainRecord(
            uuid="6695eb01-f6a4-8304-79aa-97f2502e193f",
            name="test",
            state=libvirt.VIR_DOMAIN_RUNNING,
            reason=libvirt.VIR_DOMAIN_RUNNING_UNKNOWN,
        )
    ]
    assert test_host.connected
    assert test_host.connects == 1


async def test_lifecycle_events_reach_the_listener_in_order_and_numbered(
    test_host: Host, listener: RecordingListener
) -> None:
    dom_uuid = str(uuid.uuid4())

    def lifecycle(conn: libvirt.virConnect) -> None:
        dom = conn.defineXML(domain_xml("ordered", dom_uuid))
        dom.create()
        dom.suspend()
        dom.resume()
        dom.destroy()
        dom.undefine()

    await test_host.run(lifecycle)
    await listener.wait_until(lambda: len(listener.events_of(dom_uuid)) == 6)

    assert listener.events_of(dom_uuid) == [
        ("defined", "added"),
        ("started", "booted"),
        ("suspended", "paused"),
        ("resumed", "unpaused"),
        ("stopped", "destroyed"),
        ("undefined", "removed"),
    ]
    sequences = [e.sequence for e in listener.events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert {e.name for e in listener.events} == {"ordered"}


async def test_events_of_a_domain_that_existed_before_the_connection_are_delivered(
    test_host: Host, listener: RecordingListener
) -> None:
    await test_host.run(lambda conn: conn.lookupByName("test").suspend())
    await listener.wait_until(lambda: bool(listener.events))

    assert [(e.name, e.kind, e.detail) for e in listener.events] == [
        ("test", DomainEventKind.SUSPENDED, "paused")
    ]


async def test_domain_record_reads_the_current_state(test_host: Host) -> None:
    dom_uuid = str(uuid.uuid4())
    await test_host.run(lambda conn: conn.defineXML(domain_xml("reread", dom_uuid)))

    record = await test_host.domain_record(dom_uuid)

    assert record == DomainRecord(
        uuid=dom_uuid,
        name="reread",
        state=libvirt.VIR_DOMAIN_SHUTOFF,
        reason=libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN,
    )
    assert record.active is False


async def test_domain_record_of_an_unknown_uuid_raises_instance_not_found(
    test_host: Host,
) -> None:
    missing = "00000000-0000-0000-0000-00000000abcd"

    with pytest.raises(InstanceNotFound) as caught:
        await test_host.domain_record(missing)
    assert str(caught.value) == f"instance {missing} could not be found"

    with pytest.raises(InstanceNotFound):
        await test_host.get_domain(missing)


async def test_other_libvirt_errors_are_hypervisor_errors_and_keep_the_connection(
    test_host: Host,
) -> None:
    with pytest.raises(HypervisorError) as caught:
        await test_host.run(lambda conn: conn.defineXML("<domain type='test'>"))

    error = caught.value
    assert (error.code, error.origin) == (libvirt.VIR_ERR_XML_DETAIL, libvirt.VIR_FROM_DOMAIN)
    assert error.reason.startswith("(domain_definition):1: Premature end of data in tag domain")
    assert str(error) == (
        f"libvirt failed: {error.reason} "
        f"(libvirt error {libvirt.VIR_ERR_XML_DETAIL}, domain {libvirt.VIR_FROM_DOMAIN})"
    )
    assert isinstance(error.__cause__, libvirt.libvirtError)
    assert test_host.connected


async def test_has_min_version_compares_with_the_connected_libvirt(test_host: Host) -> None:
    version = libvirt.getVersion()
    current = (version // 1_000_000, version // 1_000 % 1_000, version % 1_000)
    newer = (current[0] + 1, 0, 0)

    assert test_host.has_min_version()
    assert test_host.has_min_version(libvirt=current)
    assert not test_host.has_min_version(libvirt=newer)
    # The test driver is not QEMU: any QEMU requirement fails.
    assert not test_host.has_min_version(qemu=(0, 0, 1))


async def test_calls_before_any_connection_fail_fast_with_hypervisor_unavailable(
    executor: BlockingExecutor, listener: RecordingListener, tmp_path: object
) -> None:
    host = Host(
        REFUSED_URI,
        executor,
        instances_path=str(tmp_path),
        backoff=Backoff(initial=0.01, factor=2.0, maximum=0.05),
    )
    await host.start(listener)
    try:
        await wait_for(lambda: host.connect_failures >= 3)

        with pytest.raises(HypervisorUnavailable) as caught:
            await host.list_domains()
        assert str(caught.value) == (
            f"the hypervisor at {REFUSED_URI!r} is unavailable: {REFUSED_REASON}"
        )
        assert caught.value.retryable
        with pytest.raises(HypervisorUnavailable):
            host.has_min_version(libvirt=(1, 0, 0))
        assert not host.connected
        assert listener.changes == []
    finally:
        await host.aclose()


async def test_a_wait_for_the_connection_ends_when_the_host_is_closed(
    executor: BlockingExecutor, listener: RecordingListener, tmp_path: object
) -> None:
    """An agent stopped while it waits to adopt its guests must not wait for libvirt."""
    host = Host(
        REFUSED_URI,
        executor,
        instances_path=str(tmp_path),
        backoff=Backoff(initial=0.01, factor=2.0, maximum=0.05),
    )
    await host.start(listener)
    waiting = asyncio.create_task(host.wait_connected())
    await wait_for(lambda: host.connect_failures >= 1)
    assert not waiting.done()
    await host.aclose()
    with pytest.raises(HostClosed):
        async with asyncio.timeout(5):
            await waiting


async def test_calls_after_aclose_raise_host_closed(test_host: Host) -> None:
    await test_host.aclose()
    await test_host.aclose()  # idempotent

    with pytest.raises(HostClosed) as caught:
        await test_host.list_domains()
    assert str(caught.value) == f"the libvirt host for {TEST_URI!r} is closed"
    assert not caught.value.retryable
    with pytest.raises(HostClosed):
        await test_host.start(RecordingListener())


async def test_starting_a_host_twice_raises_host_already_started(test_host: Host) -> None:
    with pytest.raises(HostAlreadyStarted) as caught:
        await test_host.start(RecordingListener())
    assert str(caught.value) == f"the libvirt host for {TEST_URI!r} was already started"


async def test_a_host_started_on_another_loop_raises_event_loop_mismatch(
    test_host: Host, executor: BlockingExecutor
) -> None:
    session_loop = asyncio.get_running_loop()
    assert bound_event_loop() is session_loop
    failures: list[BaseException] = []

    async def start_elsewhere() -> None:
        host = Host(TEST_URI, executor, instances_path="/")
        try:
            await host.start(RecordingListener())
        except EventLoopMismatch as exc:
            failures.append(exc)
        finally:
            await host.aclose()

    # A fresh loop in another thread, as a second asyncio.run() in one process would be.
    thread = threading.Thread(target=asyncio.run, args=(start_elsewhere(),))
    thread.start()
    await asyncio.to_thread(thread.join)

    assert len(failures) == 1
    message = str(failures[0])
    assert message.startswith(
        f"libvirt events are bound to event loop {session_loop!r} for the life of this process"
    )
    assert message.endswith("Run every coroutine that opens a libvirt Host on the same loop")
