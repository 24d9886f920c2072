"""Transports: the bus between control plane and agents (AMQP, or the in-process bus)."""

from agent.transport.amqp import AmqpSettings, AmqpTransport
from agent.transport.base import Delivery, Outcome, RequestHandler, Subscription, Transport
from agent.transport.inproc import InProcessBus
from agent.transport.topics import CONDUCTOR_QUEUE, Names, topic_matches

__all__ = [
    "CONDUCTOR_QUEUE",
    "AmqpSettings",
    "AmqpTransport",
    "Delivery",
    "InProcessBus",
    "Names",
    "Outcome",
    "RequestHandler",
    "Subscription",
    "Transport",
    "topic_matches",
]
