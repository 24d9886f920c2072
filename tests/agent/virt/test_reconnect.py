"""The reconnect policy: back-off delays and which libvirt errors mean the connection is gone."""

from __future__ import annotations

import libvirt
import pytest

from agent.virt.reconnect import Backoff, is_connection_lost


def test_backoff_doubles_from_the_initial_delay_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, maximum=30.0)

    assert [backoff.delay(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.delay(10_000) == 30.0


def test_backoff_with_factor_one_is_a_constant_delay() -> None:
    assert {Backoff(initial=2.0, factor=1.0, maximum=2.0).delay(n) for n in range(5)} == {2.0}


@pytest.mark.parametrize(
    ("initial", "factor", "maximum"), [(0.0, 2.0, 1.0), (1.0, 0.5, 2.0), (2.0, 2.0, 1.0)]
)
def test_an_invalid_backoff_raises_value_error_naming_its_values(
    initial: float, factor: float, maximum: float
) -> None:
    with pytest.raises(ValueError) as caught:
        Backoff(initial=initial, factor=factor, maximum=maximum)
    assert str(caught.value) == (
        f"invalid back-off: initial={initial}, factor={factor}, maximum={maximum} "
        "(want 0 < initial <= maximum, factor >= 1)"
    )


def test_a_negative_attempt_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"^attempt must be >= 0, got -1$"):
        Backoff().delay(-1)


@pytest.mark.parametrize(
    ("code", "domain"),
    [
        # "client socket is closed": libvirtd went away under an open connection.
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC),
        # "unable to connect to server ... Connection refused".
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC),
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_REMOTE),
        (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_FROM_NONE),
        (libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_FROM_DOMAIN),
    ],
)
def test_transport_and_connection_errors_mean_the_connection_is_lost(
    code: int, domain: int
) -> None:
    assert is_connection_lost(code, domain)


@pytest.mark.parametrize(
    ("code", "domain"),
    [
        (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU),
        (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_DOMAIN),
        # An internal error of a driver, not of the transport, leaves the connection usable.
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU),
        (libvirt.VIR_ERR_XML_DETAIL, libvirt.VIR_FROM_DOMAIN),
    ],
)
def test_errors_of_the_call_itself_do_not_mean_the_connection_is_lost(
    code: int, domain: int
) -> None:
    assert not is_connection_lost(code, domain)
