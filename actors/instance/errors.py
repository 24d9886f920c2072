"""The errors of instance operations: what an instance actor refuses, and why.

    VirtactorError                      schemas.errors
    ├── InstanceNotFound                no such instance on this host
    ├── InstanceInvalidState            the operation makes no sense in the current state
    ├── NotSupported                    this guest or hypervisor cannot do it
    ├── InvalidHostArgument             a host method's argument that is malformed
    └── InstanceRequestError            a request the actor refuses before any effect
        ├── InvalidInstanceArgument     an argument that is malformed or hostile
        ├── InvalidConnectionInfo       a volume connection missing what its type needs
        ├── DeviceInUse                 a device name already taken in the guest
        ├── VolumeNotAttached           no volume at that device
        ├── InterfaceAlreadyAttached    that port is plugged already
        └── InterfaceNotAttached        no such port in the guest

They live with the actors (which raise them) and are re-exported by `agent.errors`, which
draws the agent's whole tree. Every one is refused before the hypervisor is touched.
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class InstanceNotFound(VirtactorError):
    uuid: str

    msg_fmt = "instance {uuid} could not be found"


class InstanceInvalidState(VirtactorError):
    action: str
    uuid: str
    attr: str
    state: str | None

    msg_fmt = "cannot {action} instance {uuid} while {attr} is {state!r}"


class NotSupported(VirtactorError):
    operation: str
    reason: str

    msg_fmt = "{operation} is not supported: {reason}"


class InvalidHostArgument(VirtactorError):
    """A host-scoped method refused before any effect (the host actor raises it too)."""

    method: str
    argument: str
    reason: str

    msg_fmt = "invalid {argument} for {method}: {reason}"


class InstanceRequestError(VirtactorError):
    """A request an instance actor refuses before any effect."""

    msg_fmt = "invalid request for an instance"


class InvalidInstanceArgument(InstanceRequestError):
    action: str
    uuid: str
    argument: str
    reason: str

    msg_fmt = "invalid {argument} for {action} of instance {uuid}: {reason}"


class InvalidConnectionInfo(InstanceRequestError):
    uuid: str
    volume_type: str
    reason: str

    msg_fmt = "invalid {volume_type!r} connection info for instance {uuid}: {reason}"


class DeviceInUse(InstanceRequestError):
    uuid: str
    device: str

    msg_fmt = "device {device!r} of instance {uuid} is already in use"


class VolumeNotAttached(InstanceRequestError):
    uuid: str
    device: str

    msg_fmt = "no volume is attached to instance {uuid} at {device!r}"


class InterfaceAlreadyAttached(InstanceRequestError):
    uuid: str
    port: str

    msg_fmt = "port {port} is already attached to instance {uuid}"


class InterfaceNotAttached(InstanceRequestError):
    uuid: str
    port: str

    msg_fmt = "port {port} is not attached to instance {uuid}"
