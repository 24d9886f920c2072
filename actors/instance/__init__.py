"""The instance actor: one guest's mailbox, so that its operations never race each other.

`actor` assembles `InstanceActor` from its handler groups (`lifecycle`, `power`, `devices`,
`queries`) over the state and plumbing of `core`; `states` is the operation table (pure
policy), `names` the checks of device and port names, `recovery` the record kept in the
domain's <metadata>, `driver` the `InstanceDriver` protocol the handlers act through, and
`errors` the typed errors they raise.
"""

from actors.instance.actor import STATE_EVENTS, InstanceActor
from actors.instance.core import (
    UNKNOWN_POWER_STATE,
    EventSink,
    InstanceHypervisor,
    ReceivedEvent,
    power_state_topic,
    snapshot_topic,
    state_topic,
)
from actors.instance.settings import InstanceSettings

__all__ = [
    "STATE_EVENTS",
    "UNKNOWN_POWER_STATE",
    "EventSink",
    "InstanceActor",
    "InstanceHypervisor",
    "InstanceSettings",
    "ReceivedEvent",
    "power_state_topic",
    "snapshot_topic",
    "state_topic",
]
