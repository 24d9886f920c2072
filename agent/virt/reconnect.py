"""Connection policy as pure functions: the reconnect back-off and which errors mean "lost".

The Host applies these; it holds no policy of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt

# libvirt reports a dead or unreachable daemon through the RPC/remote layers as a system or
# internal error ("client socket is closed", "Connection refused"); nova's libvirt driver
# classifies them the same way.
_TRANSPORT_CODES = frozenset({libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR})
_TRANSPORT_DOMAINS = frozenset({libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC})
# Whatever layer reports them, these say the connection itself is unusable.
_CONNECTION_CODES = frozenset({libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN})


@dataclass(slots=True, frozen=True)
class Backoff:
    """Exponential back-off between reconnect attempts: initial * factor**attempt, capped."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.maximum < self.initial:
            raise ValueError(
                f"invalid back-off: initial={self.initial}, factor={self.factor}, "
                f"maximum={self.maximum} (want 0 < initial <= maximum, factor >= 1)"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first failure)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # Past the cap the power only risks an OverflowError; stop computing it.
        delay = self.initial
        for _ in range(attempt):
            delay *= self.factor
            if delay >= self.maximum:
                return self.maximum
        return delay


def is_connection_lost(code: int, domain: int) -> bool:
    """Whether a libvirt error (its `get_error_code()`, `get_error_domain()`) means the
    connection to libvirtd is gone, as opposed to an error of the call itself."""
    if code in _CONNECTION_CODES:
        return True
    return code in _TRANSPORT_CODES and domain in _TRANSPORT_DOMAINS


def describe(exc: libvirt.libvirtError) -> str:
    """A one-line reason for logs and `HypervisorUnavailable`."""
    message = exc.get_error_message() or str(exc)
    return f"{message} (libvirt error {exc.get_error_code()}, domain {exc.get_error_domain()})"
