"""Buses: the `MessageBus` protocol, `connect(url)`, and one module per transport.

Transports live behind their own module path (`busrpc.bus.nats.NatsBus`) and import
their broker client only when used.
"""

from ._buffer import BufferedSubscription
from ._connect import connect, register_transport
from ._protocol import (
    DEFAULT_MAX_PENDING,
    BusStatistics,
    MessageBus,
    Overflow,
    Subscription,
    SubscriptionStatistics,
    SupportsDrain,
    SupportsListen,
)
from ._subjects import subject_matches, validate_subject

__all__ = [
    "DEFAULT_MAX_PENDING",
    "BufferedSubscription",
    "BusStatistics",
    "MessageBus",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
    "SupportsDrain",
    "SupportsListen",
    "connect",
    "register_transport",
    "subject_matches",
    "validate_subject",
]
