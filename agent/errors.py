"""The agent's errors, and the one place that names the whole tree.

    VirtactorError                          schemas.errors
    ├── SchemaError ...                     schemas.errors (fields, decoding, versions)
    ├── ActorError ...                      actors.errors (mailboxes, asks, supervision)
    ├── TransportError                      the bus could not carry a message
    │   ├── Unroutable                      no agent queue for that host
    │   ├── CallTimeout (TimeoutError)      no reply before the deadline
    │   ├── TransportClosed                 used after aclose()
    │   ├── BrokerTlsFailed                 TLS to the broker failed (certificate, name)
    │   └── InvalidRoutingKey               a host or pattern word that is not one routing word
    ├── HypervisorUnavailable               libvirt is unreachable (retryable)
    ├── HypervisorError                     any other libvirt failure: its code, origin, message
    ├── AgentInitializing                   the host is still adopting guests (retryable)
    ├── ConductorUnavailable                no conductor answered an object call in time
    │                                       (retryable)
    ├── DatabaseNotUpgraded                 a conductor's database is behind its release
    ├── StoreError ...                      agent.conductor.db (the object database)
    ├── InstanceNotFound / InstanceInvalidState / NotSupported   actors.instance.errors
    ├── InvalidHostArgument                 actors.instance.errors (a host method's argument)
    ├── InstanceRequestError ...            actors.instance.errors (bad arguments, devices)
    ├── RecoveryDataInvalid                 actors.instance.recovery
    ├── HostClosed, EventLoopMismatch, ...  agent.virt.errors (the Host layer; HostFilesError
    │                                       for an instance's disk or the image cache)
    ├── GuestConfigError, InstanceExists,   agent.virt.guest.errors (the Guest layer)
    │   GuestAgentUnavailable (retryable), ...
    ├── QemuImgError                        agent.virt.qemu_img
    ├── ConfigError                         agent.config
    ├── ClaimFailed                         actors.tracker.errors (not enough left)
    ├── ClaimRequestError ...               actors.tracker.errors (bad claim requests)
    ├── MigrationPreCheckError (MigrationBusy), MigrationNotFound, MigrationFailed
    │                                       actors.migration.errors
    ├── ResizeRefused, ResizeFailed, DiskTransferFailed
    │                                       actors.migration.errors (resize, cold migration)
    ├── SecurityGroupError ...              schemas.objects.security_group_errors (bad
    │                                       rules, groups)
    ├── FirewallError ...                   agent.virt.firewall.errors (filter building)
    ├── UnknownMethod, InvalidArguments, RequestExpired,
    │   IncompatibleRpcVersion, MessageIdConflict   refused before any effect
    ├── PolicyNotAuthorized                 the caller may not call that method (policy)
    ├── OperationInterrupted                the agent stopped mid-operation, outcome unknown
    ├── InvalidRpcVersionCap                a client's RPC API cap this release cannot send
    ├── UnpublishableEvent                  an event that is not a registered object (a bug)
    └── RemoteError                         a remote failure with no local class of that name

Errors keep "we closed it" (TransportClosed, ActorStopped) apart from "it broke". libvirt's
own errors never travel: `Host.run` translates each one, once (`agent.virt.libvirt_errors`).
Every module named above is loaded by `agent.rpc.remote_errors`, so a client rebuilds each
error as its own class; none of them needs libvirt.
"""

from __future__ import annotations

# Raised by the instance actors, which cannot import the agent; the same classes here.
from actors.instance.errors import InstanceInvalidState, InstanceNotFound, NotSupported
from actors.migration.errors import (
    DiskTransferFailed,
    MigrationBusy,
    MigrationFailed,
    MigrationNotFound,
    MigrationPreCheckError,
    ResizeFailed,
    ResizeRefused,
)
from actors.tracker.errors import ClaimFailed, ClaimRequestError
from schemas.errors import IncompatibleObjectVersion, SchemaError, VirtactorError


class TransportError(VirtactorError):
    msg_fmt = "transport error: {reason}"


class Unroutable(TransportError):
    msg_fmt = "no agent is serving host {host!r}: the request could not be routed"
    retryable = True


class CallTimeout(TransportError, TimeoutError):
    msg_fmt = "no reply to {method!r} from host {host!r} within {timeout:.3f}s"
    retryable = True


class TransportClosed(TransportError):
    msg_fmt = "the transport is closed"


class BrokerTlsFailed(TransportError):
    """The TLS handshake with the broker failed: its certificate is not trusted or not for
    that host, or it refused this client's certificate (agent.transport.amqp_tls). Retryable:
    a start retries it, so a certificate fixed on either side lets the agent in."""

    msg_fmt = "TLS to the broker at {broker} failed: {reason}"
    retryable = True


class InvalidRoutingKey(TransportError):
    msg_fmt = "{key!r} is not a valid routing-key word (letters, digits, '_', '-', ':')"


class HypervisorUnavailable(VirtactorError):
    uri: str
    reason: str
    msg_fmt = "the hypervisor at {uri!r} is unavailable: {reason}"
    retryable = True


class HypervisorError(VirtactorError):
    """libvirt failed a call for a reason no narrower error names. `code` and `origin` are
    libvirt's `virErrorNumber` and `virErrorDomain` (where in libvirt it arose), `reason`
    libvirt's message."""

    code: int
    origin: int
    reason: str
    msg_fmt = "libvirt failed: {reason} (libvirt error {code}, domain {origin})"


class AgentInitializing(VirtactorError):
    msg_fmt = "host {host!r} is still adopting its guests; retry shortly"
    retryable = True


class ConductorUnavailable(VirtactorError):
    """No conductor answered a remotable object call (`save`, `get_by_uuid`, ...) before its
    deadline, retries included: none was serving the object backend's queue, or none
    finished in time. A request still queued then expires unrun; one a conductor had
    already started may still finish."""

    msg_fmt = "no conductor answered {objname}.{method} within {timeout:.3f}s: {reason}"
    retryable = True


class DatabaseNotUpgraded(VirtactorError):
    """The object database has not had this release's migrations (`found` is its revision,
    None for none): a conductor refuses to serve it rather than fail on each request."""

    msg_fmt = (
        "the object database at {url} is at schema revision {found!r}, this conductor needs "
        "{needed!r}: run `virtactor conductor --upgrade-db` first"
    )


class RemoteError(VirtactorError):
    msg_fmt = "remote {exc_type}: {exc_message}"


__all__ = [
    "AgentInitializing",
    "BrokerTlsFailed",
    "CallTimeout",
    "ClaimFailed",
    "ClaimRequestError",
    "ConductorUnavailable",
    "DatabaseNotUpgraded",
    "DiskTransferFailed",
    "HypervisorError",
    "HypervisorUnavailable",
    "IncompatibleRpcVersion",
    "InstanceInvalidState",
    "InstanceNotFound",
    "InvalidArguments",
    "InvalidRoutingKey",
    "InvalidRpcVersionCap",
    "MessageIdConflict",
    "MigrationBusy",
    "MigrationFailed",
    "MigrationNotFound",
    "MigrationPreCheckError",
    "NotSupported",
    "ObjectVersionRefused",
    "OperationInterrupted",
    "PolicyNotAuthorized",
    "RemoteError",
    "RequestExpired",
    "ResizeFailed",
    "ResizeRefused",
    "SchemaError",
    "TransportClosed",
    "TransportError",
    "UnknownMethod",
    "UnpublishableEvent",
    "Unroutable",
    "VirtactorError",
]


class UnknownMethod(VirtactorError):
    msg_fmt = "unknown method {method!r}"


class InvalidArguments(VirtactorError):
    msg_fmt = "invalid arguments for {method!r}: {reason}"


class RequestExpired(VirtactorError):
    msg_fmt = "request {message_id} for {method!r} expired before it was started"


class PolicyNotAuthorized(VirtactorError):
    """The agent's policy (`agent.rpc.policy`) does not let this caller call `method`;
    nothing ran. `caller` describes who asked, as the request named them (docs/security.md,
    "Authorisation"). Not retryable: the same request is refused again."""

    msg_fmt = "policy does not allow {caller} to call {method!r}"


class MessageIdConflict(VirtactorError):
    """A message id already taken by a call of another method, target or arguments: the
    first call's reply is not this one's, so nothing runs."""

    msg_fmt = (
        "message id {message_id!r} was already used for another call ({first_method!r}); "
        "this {method!r} call was not run: give a new call a new message id"
    )


class OperationInterrupted(VirtactorError):
    """The agent was stopped while `method` (message `message_id`) ran on instance
    `instance`, and nothing tells whether it took effect (agent/rpc/journal.py). The final
    answer for that message id, so not retryable: look at the instance, then send a new
    request under a new id if it is still wanted."""

    msg_fmt = (
        "{method} {message_id!r} of instance {instance} was interrupted by an agent restart; "
        "whether it took effect is not known"
    )


class UnpublishableEvent(VirtactorError):
    """Only objects of the publisher's registry travel as events: a subscriber decodes with
    the same kind of registry and could not read anything else."""

    msg_fmt = (
        "cannot publish a {value_type} on {topic!r}: an event is a versioned object "
        "registered with the publisher's registry"
    )


class IncompatibleRpcVersion(VirtactorError):
    msg_fmt = (
        "RPC API version {requested} is not served by this agent (it serves {served}); "
        "pin the client to {served} or upgrade the agent"
    )


class InvalidRpcVersionCap(VirtactorError):
    """A client's RPC API version cap this release cannot send: not "MAJOR.MINOR", newer
    than this release's RPC API version, or of another major. Raised where the client is
    built; it never travels."""

    msg_fmt = "RPC API version cap {cap!r} cannot be used: {reason}"


class ObjectVersionRefused(IncompatibleObjectVersion):
    """An agent refused a request, before running anything, for an object newer than it
    knows; `manifest` is what it understands. The one version error a client may answer by
    sending the same request again, back-levelled."""
