"""TLS to the broker: the client's `ssl.SSLContext`, the check of its settings, and TLS
failures told apart from an unreachable broker.

An `amqps://` URL is always verified: the broker's certificate must chain to `ca_file` (the
system's CAs when empty) and name the host the URL names (DNS or IP subjectAltName, Python's
`ssl.create_default_context` rules). `cert_file` (with `key_file`, unless the key is in the
same PEM) is the certificate this client presents, for a broker with
`ssl_options.fail_if_no_peer_cert = true`. The context is built once, at the edge (the agent's
`build_transport`, `ComputeClient.from_config`), and handed to aio-pika, which gives it to
aiormq's TLS transport for every connect and reconnect.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from aiormq.exceptions import IncompatibleProtocolError

from agent.errors import BrokerTlsFailed

AMQPS = "amqps"
# The [amqp] settings `tls_refusal` checks together, in its argument order.
TLS_KEYS = ("url", "ca_file", "cert_file", "key_file")


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """A context that verifies the broker (chain and host name) and presents `cert_file`
    when set. Reads the files: OSError if one cannot be read, ssl.SSLError if one is not
    what it should be (not PEM, a key that does not match the certificate)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def broker_context(
    url: str, ca_file: str = "", cert_file: str = "", key_file: str = ""
) -> ssl.SSLContext | None:
    """The context for `url`: `client_context(...)` for amqps://, None for plain amqp://."""
    return client_context(ca_file, cert_file, key_file) if uses_tls(url) else None


def uses_tls(url: str) -> bool:
    """Whether every URL of `url` (one, or several comma-separated) is amqps://."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    return bool(urls) and all(urlsplit(part).scheme == AMQPS for part in urls)


def tls_refusal(url: str, ca_file: str, cert_file: str, key_file: str) -> tuple[str, str] | None:
    """Why `[amqp]`'s TLS settings cannot be used, as (key, reason), or None if they can.

    A file must exist and be readable; `key_file` needs `cert_file`; with any file set,
    `url` must be amqps:// (a plain connection would ignore them); and together they must
    make a context (`client_context`), so a PEM that is no certificate, or a key that is not
    the certificate's, is refused here and not at the first connect.
    """
    files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
    for key, path in files.items():
        if path and not os.path.isfile(path):
            return key, f"{path!r} is not a file"
        if path and not os.access(path, os.R_OK):
            return key, f"{path!r} cannot be read by this process (uid {os.getuid()})"
    if key_file and not cert_file:
        return "key_file", f"{key_file!r} is set without cert_file (the certificate it is for)"
    if url and any(files.values()) and not uses_tls(url):
        return "url", (
            f"{_redacted(url)!r} is not amqps:// but ca_file, cert_file or key_file is set "
            "(TLS settings need every URL to be amqps://)"
        )
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return "ca_file", f"{ca_file!r} holds no usable CA certificate: {exc}"
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file or None)
        except (OSError, ValueError) as exc:
            with_key = f" with key_file {key_file!r}" if key_file else " (no key_file: has no key)"
            return "cert_file", f"{cert_file!r}{with_key} cannot be used: {exc}"
    return None


@contextlib.contextmanager
def broker_tls_errors(url: str) -> Iterator[None]:
    """Raise a TLS failure under the block as `BrokerTlsFailed` (retryable: a fixed
    certificate lets the next attempt through), naming the broker and why; any other error
    passes as it is."""
    try:
        yield
    except Exception as exc:
        failure = tls_failure(exc, url)
        if failure is None:
            raise
        raise failure from exc


def tls_failure(exc: BaseException, url: str) -> BrokerTlsFailed | None:
    """`exc` as a BrokerTlsFailed if TLS made it, else None: an ssl.SSLError among its causes
    (aiormq wraps the socket's error in AMQPConnectionError), or, on an amqps:// URL, the
    broker closing the connection before AMQP began."""
    chain = _causes(exc)
    broker = _broker(url)
    found = next((seen for seen in chain if isinstance(seen, ssl.SSLError)), None)
    if isinstance(found, ssl.SSLCertVerificationError):
        reason = f"the broker's certificate is not trusted: {found.verify_message}"
    elif found is not None and "ALERT" in (found.reason or ""):
        # The broker ended the handshake: with TLS 1.3 a refused or missing client
        # certificate shows only here, on the first read after the handshake.
        reason = f"the broker refused this client ({found.reason}): check cert_file and key_file"
    elif found is not None:
        reason = str(found)
    elif uses_tls(url) and any(isinstance(seen, _CLOSED_EARLY) for seen in chain):
        # The same refusal, when the client's first AMQP bytes reach the broker after it
        # closed: its reset discards the alert (a race the 2-core test machine shows).
        reason = (
            "the broker refused this client (it closed the connection before AMQP began): "
            "check cert_file and key_file"
        )
    else:
        return None
    return BrokerTlsFailed(broker=broker, reason=reason)


# A connection reset, or an end of stream where the broker's Connection.Start was due.
_CLOSED_EARLY = (ConnectionResetError, EOFError, IncompatibleProtocolError)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it, nearest first (a chain can loop: each once)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and all(seen is not known for known in chain):
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _broker(url: str) -> str:
    parts = urlsplit(url.split(",", maxsplit=1)[0].strip())
    return f"{parts.hostname}:{parts.port or 5671}"


def _redacted(url: str) -> str:
    """`url` without its passwords: a refusal is logged."""
    shown = []
    for part in url.split(","):
        parts = urlsplit(part.strip())
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            parts = parts._replace(netloc=netloc)
        shown.append(parts.geturl())
    return ",".join(shown)
