"""Errors of the Host layer: the libvirt connection, its events and the host's facts.

    VirtactorError
    ├── HostClosed                  a call after the Host was closed on purpose
    ├── HostAlreadyStarted          a second `Host.start`
    ├── EventLoopMismatch           libvirt's events are bound to another asyncio loop
    ├── UnknownLifecycleEvent       a lifecycle event type this libvirt-python does not name
    ├── InstancesPathUnavailable    the instances path cannot be measured
    └── MalformedHostXML            capabilities or node-device XML that cannot be read

They live apart from the code that raises them, which needs libvirt, so that a client that
never loads libvirt still knows each one by its class (`agent.rpc.remote_errors`).
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class HostClosed(VirtactorError):
    """The Host was closed on purpose (`aclose`); it will not reconnect."""

    msg_fmt = "the libvirt host for {uri!r} is closed"


class HostAlreadyStarted(VirtactorError):
    msg_fmt = "the libvirt host for {uri!r} was already started"


class EventLoopMismatch(VirtactorError):
    """libvirt's events are bound to another asyncio loop; this loop would never see them."""

    msg_fmt = (
        "libvirt events are bound to event loop {bound} for the life of this process "
        "(libvirt registers one event loop per process); they cannot be used from loop "
        "{running}. Run every coroutine that opens a libvirt Host on the same loop"
    )


class UnknownLifecycleEvent(VirtactorError):
    """libvirt reported a lifecycle event type this libvirt-python does not name."""

    msg_fmt = "unknown libvirt lifecycle event type {event} for domain {uuid}"


class InstancesPathUnavailable(VirtactorError):
    msg_fmt = "the instances path {path!r} cannot be measured: {reason}"


class MalformedHostXML(VirtactorError):
    msg_fmt = "libvirt returned {what} XML that cannot be read: {reason}"


class HostFilesError(VirtactorError):
    """A file of this host (an instance's disk, the image cache) could not be read or changed."""

    msg_fmt = "{what} at {path!r}: {reason}"
