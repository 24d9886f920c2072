"""Which connect failures are TLS failures (`amqp_tls.tls_failure`), with no broker."""

from __future__ import annotations

import ssl

from aiormq.exceptions import AMQPConnectionError

from agent.errors import BrokerTlsFailed
from agent.transport.amqp_tls import tls_failure


def wrapped(cause: BaseException) -> AMQPConnectionError:
    """As aiormq raises it: its own error, from the socket's."""
    try:
        raise AMQPConnectionError("Server connection reset") from cause
    except AMQPConnectionError as exc:
        return exc


def test_an_untrusted_broker_certificate_names_the_broker_and_why() -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    failure = tls_failure(wrapped(error), "amqps://u:secret@rabbit:5671/,amqps://other/")
    assert isinstance(failure, BrokerTlsFailed) and failure.retryable
    assert str(failure) == (
        "TLS to the broker at rabbit:5671 failed: the broker's certificate is not trusted: "
        "self-signed certificate in certificate chain"
    )


def test_a_reset_before_amqp_began_is_the_broker_refusing_a_tls_client_only() -> None:
    reset = wrapped(ConnectionResetError(104, "Connection reset by peer"))
    assert str(tls_failure(reset, "amqps://rabbit/")) == (
        "TLS to the broker at rabbit:5671 failed: the broker refused this client (it closed "
        "the connection before AMQP began): check cert_file and key_file"
    )
    assert tls_failure(reset, "amqp://rabbit/") is None


def test_a_refused_connection_is_no_tls_failure() -> None:
    refused = wrapped(ConnectionRefusedError(111, "Connect call failed"))
    assert tls_failure(refused, "amqps://rabbit/") is None


def test_a_chain_of_causes_that_loops_is_read_once() -> None:
    first, second = OSError("first"), OSError("second")
    first.__context__, second.__context__ = second, first
    assert tls_failure(first, "amqps://rabbit/") is None
