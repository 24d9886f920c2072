"""What a live migration refuses or ends with.

    VirtactorError                      schemas.errors
    ├── MigrationPreCheckError          refused before anything moved (same host, no room,
    │   │                               incompatible CPU, storage)
    │   └── MigrationBusy               the destination takes no more incoming migrations
    │                                   now (retryable: the source waits and asks again)
    ├── MigrationNotFound               no such migration running here
    ├── MigrationFailed                 it ran and did not complete; the guest stays on the
    │                                   source (or, after post-copy began, on the
    │                                   destination: the record ends `error`)
    ├── ResizeRefused                   a resize or cold migration refused before the guest
    │                                   was touched (a smaller disk, no room, same host)
    ├── ResizeFailed                    its disks did not reach the destination; the guest
    │                                   is back on the source with its own disks
    └── DiskTransferFailed              the storage-volume streams to the destination broke

They live with the migration actor and are re-exported by `agent.errors` (the resize ones
with the instance actor's resize handlers, `actors.instance.resize`).
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class MigrationPreCheckError(VirtactorError):
    uuid: str
    reason: str

    msg_fmt = "cannot live-migrate instance {uuid}: {reason}"


class MigrationBusy(MigrationPreCheckError):
    uuid: str
    host: str
    running: int

    msg_fmt = "host {host} already receives {running} live migration(s): {uuid} must wait"
    retryable = True


class MigrationNotFound(VirtactorError):
    uuid: str
    migration: str

    msg_fmt = "no live migration {migration} of instance {uuid} runs on this host"


class MigrationFailed(VirtactorError):
    uuid: str
    reason: str

    msg_fmt = "live migration of instance {uuid} failed: {reason}"


class ResizeRefused(VirtactorError):
    uuid: str
    reason: str

    msg_fmt = "cannot resize or migrate instance {uuid}: {reason}"


class ResizeFailed(VirtactorError):
    uuid: str
    reason: str
    outcome: str

    msg_fmt = "resize or migration of instance {uuid} failed: {reason}; {outcome}"


class DiskTransferFailed(VirtactorError):
    """The disks did not reach the destination's libvirtd (what was sent is removed there)."""

    uuid: str
    host: str
    reason: str

    msg_fmt = "the disks of instance {uuid} could not be sent to {host}: {reason}"
