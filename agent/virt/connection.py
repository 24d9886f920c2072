"""Opening and closing one libvirt connection with the agent's callbacks (blocking).

`open_connection` opens the URI, turns libvirt keepalive on, registers the close callback and
every domain event callback, and reads the versions; `close_connection` undoes it. Both block:
the Host runs them in the blocking executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from agent.virt.events import DeliverEvent, domain_event_callbacks
from agent.virt.libvirt_errors import is_unsupported
from agent.virt.reconnect import describe

log = logging.getLogger(__name__)

Version = tuple[int, int, int]
CloseCallback = Callable[[libvirt.virConnect, int, int], None]

CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "a socket error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "end of file from libvirtd",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "a keepalive timeout",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "a client request",
}


@dataclass(slots=True, frozen=True)
class OpenConnection:
    """A connection with its callbacks registered, and the versions read when it opened."""

    conn: libvirt.virConnect
    callback_ids: tuple[int, ...]
    libvirt_version: int
    hypervisor_version: int
    hypervisor_type: str


def pack_version(version: Version) -> int:
    """(major, minor, micro) in libvirt's packing, major * 1,000,000 + minor * 1,000 + micro."""
    major, minor, micro = version
    return major * 1_000_000 + minor * 1_000 + micro


def open_connection(
    uri: str,
    keepalive: tuple[int, int],
    on_close: CloseCallback,
    close_opaque: int,
    deliver: DeliverEvent,
) -> OpenConnection:
    """Open `uri` and register `on_close(conn, reason, close_opaque)` and the domain event
    callbacks feeding `deliver` (blocking). Raises libvirtError; nothing is left open then."""
    conn = libvirt.open(uri)
    callback_ids: list[int] = []
    try:
        try:
            conn.setKeepAlive(*keepalive)
        except libvirt.libvirtError as exc:
            # Local drivers (test:///) have no socket to keep alive.
            if not is_unsupported(exc):
                raise
        conn.registerCloseCallback(on_close, close_opaque)
        for event_id, callback in domain_event_callbacks(deliver):
            callback_ids.append(conn.domainEventRegisterAny(None, event_id, callback, None))
        return OpenConnection(
            conn=conn,
            callback_ids=tuple(callback_ids),
            libvirt_version=conn.getLibVersion(),
            hypervisor_version=conn.getVersion(),
            hypervisor_type=conn.getType(),
        )
    except BaseException:
        _close(conn, callback_ids)
        raise


def close_connection(opened: OpenConnection) -> None:
    """Deregister the callbacks, then close (blocking); on a dead connection each step fails
    fast, and failures are only logged: there is nothing left to save."""
    _close(opened.conn, opened.callback_ids)


def _close(conn: libvirt.virConnect, callback_ids: list[int] | tuple[int, ...]) -> None:
    # Deregistering first matters: a registered event callback keeps the connection alive.
    for callback_id in callback_ids:
        try:
            conn.domainEventDeregisterAny(callback_id)
        except libvirt.libvirtError as exc:
            log.debug("deregistering event callback %d: %s", callback_id, describe(exc))
    try:
        conn.unregisterCloseCallback()
    except libvirt.libvirtError as exc:
        log.debug("unregistering the close callback: %s", describe(exc))
    try:
        conn.close()
    except libvirt.libvirtError as exc:
        log.debug("closing the connection: %s", describe(exc))
