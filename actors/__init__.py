"""The actor runtime (mailboxes, ask/tell, supervision) and the agent's actors.

The host and every instance are actors: each handles one message at a time, in arrival
order, so an instance's operations never race each other. See docs/actors.md.
"""

from actors.actor import Actor
from actors.addresses import (
    FIREWALL_ADDRESS,
    HOST_ADDRESS,
    TRACKER_ADDRESS,
    address_kind,
    instance_address,
    migration_address,
)
from actors.blocking import BlockingExecutor
from actors.deadletters import DeadLetter, DeadLetterReason, DeadLetters
from actors.errors import (
    ActorAlreadyExists,
    ActorError,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    DeadlineExpired,
    ExecutorShutdown,
    HandlerFailed,
    MailboxFull,
    ReentrantAsk,
    UnknownMessage,
)
from actors.handlers import HandlerFunction, handler
from actors.message import Message, current_context, current_message
from actors.ref import ActorRef
from actors.stats import ActorStats, LatencyHistogram, SystemStats, merge_histograms
from actors.supervision import ActorFailure, RestartStrategy, restart_delay
from actors.system import ActorFactory, ActorSystem

__all__ = [
    "FIREWALL_ADDRESS",
    "HOST_ADDRESS",
    "TRACKER_ADDRESS",
    "Actor",
    "ActorAlreadyExists",
    "ActorError",
    "ActorFactory",
    "ActorFailure",
    "ActorNotFound",
    "ActorRef",
    "ActorStats",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "BlockingExecutor",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetters",
    "DeadlineExpired",
    "ExecutorShutdown",
    "HandlerFailed",
    "HandlerFunction",
    "LatencyHistogram",
    "MailboxFull",
    "Message",
    "ReentrantAsk",
    "RestartStrategy",
    "SystemStats",
    "UnknownMessage",
    "address_kind",
    "current_context",
    "current_message",
    "handler",
    "instance_address",
    "merge_histograms",
    "migration_address",
    "restart_delay",
]
