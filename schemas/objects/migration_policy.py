"""`MigrationPolicy`: how a live migration is driven to an end, sent with the request.

Defaults come from the source agent's `[migration]` configuration; a caller may send its own.
The convergence schedule follows VDSM's: the migration starts with `max_downtime_ms`; each
time it stalls (an iteration passes without the remaining data reaching a new low) the stall
count rises, and the first step whose `stalls` it reaches is applied, once.
"""

from __future__ import annotations

from typing import ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objects.enums import MigrationAction
from schemas.registry import default_registry


@default_registry.register
class ConvergenceStep(VersionedObject):
    """After `stalls` stalls, do `action` (`downtime_ms` for set_downtime)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    stalls: int = fields.Integer()
    action: str = fields.Enum(MigrationAction)
    downtime_ms: int | None = fields.Integer(nullable=True, default=None)


@default_registry.register
class MigrationPolicy(VersionedObject):
    """Timeouts (seconds; 0: none), what to do when one fires, downtime, bandwidth and the
    convergence schedule of one live migration."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"convergence": [("1.0", "1.0")]}

    # The whole migration may take this long per GiB of guest memory (nova's
    # live_migration_completion_timeout, 800 s/GiB).
    completion_timeout_per_gib: int = fields.Integer(default=800)
    # No new low of the remaining data for this long (nova's progress timeout).
    progress_timeout: int = fields.Integer(default=150)
    timeout_action: str = fields.Enum(MigrationAction, default=MigrationAction.ABORT)
    max_downtime_ms: int = fields.Integer(default=500)
    bandwidth_mibps: int = fields.Integer(default=0)  # 0: as fast as the link goes
    auto_converge: bool = fields.Boolean(default=False)
    post_copy: bool = fields.Boolean(default=False)  # may switch to post-copy at all
    # In the order of their `stalls`; empty: the downtime stays as it started.
    convergence: list[ConvergenceStep] = fields.ListOfObjects("ConvergenceStep", default=[])
