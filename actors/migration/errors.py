"""What a live migration refuses or ends with.

    VirtactorError                      schemas.errors
    ├── MigrationPreCheckError          refused before anything moved (same host, no room,
    │   │                               incompatible CPU, storage)
    │   └── MigrationBusy               the destination takes no more incoming migrations
    │                                   now (retryable: the source waits and asks again)
    ├── MigrationNotFound               no such migration running here
    └── MigrationFailed                 it ran and did not complete; the guest stays on the
                                        source (or, after post-copy began, on the
                                        destination: the record ends `error`)

They live with the migration actor and are re-exported by `agent.errors`.
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
