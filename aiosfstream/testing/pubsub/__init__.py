"""A local Salesforce Pub/Sub API (gRPC) for tests, sharing one org with the CometD emulator.

::

    from aiosfstream.testing import SalesforceEmulator
    from aiosfstream.testing.pubsub import PubSubEmulator

    async with SalesforceEmulator() as org, PubSubEmulator(org) as pubsub:
        pubsub.endpoint                    # "127.0.0.1:PORT"
        pubsub.publish("/event/Order_Event__e", {"OrderNumber__c": "42"})

Needs the ``pubsub`` extra (grpcio, protobuf, fastavro); ``tls=True`` also needs
``cryptography``. Nothing here imports the client side of :mod:`aiosfstream`: the emulator
encodes Avro and CDC bitmaps on its own, so it cannot share a bug with the client.
"""

from __future__ import annotations

from .bus import DEFAULT_RETENTION, decode_replay_id, encode_replay_id
from .failures import ERROR_CODE_PREFIX
from .faults import FAULT_RPCS
from .schemas import CDC_TOPIC, PLATFORM_EVENT_TOPIC
from .server import EXPIRED_TOKEN_CHOICES, PubSubEmulator
from .subscription import SubscribeStreamStats

__all__ = [
    "CDC_TOPIC",
    "DEFAULT_RETENTION",
    "ERROR_CODE_PREFIX",
    "EXPIRED_TOKEN_CHOICES",
    "FAULT_RPCS",
    "PLATFORM_EVENT_TOPIC",
    "PubSubEmulator",
    "SubscribeStreamStats",
    "decode_replay_id",
    "encode_replay_id",
]
