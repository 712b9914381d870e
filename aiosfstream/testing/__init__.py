"""A local Salesforce org for tests: Streaming API (CometD) and OAuth token endpoint.

Start one with ``async with SalesforceEmulator() as emulator:`` and point a client at
``emulator.url``. Nothing here imports the client side of :mod:`aiosfstream`, so the
emulator cannot share a bug with the code it tests.

The Pub/Sub API (gRPC) of the same org is :mod:`aiosfstream.testing.pubsub`, imported on its
own since it needs the ``pubsub`` extra.
"""

from __future__ import annotations

from .server import (
    DEFAULT_CREDENTIALS,
    DEFAULT_HOST,
    DISCONNECT_OPERATIONS,
    FAULT_OPERATIONS,
    Credentials,
    SalesforceEmulator,
)
from .state import ConnectedApp, EmulatorStats, OrgSettings, RequestLog, RequestRecord, User

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_HOST",
    "DISCONNECT_OPERATIONS",
    "FAULT_OPERATIONS",
    "ConnectedApp",
    "Credentials",
    "EmulatorStats",
    "OrgSettings",
    "RequestLog",
    "RequestRecord",
    "SalesforceEmulator",
    "User",
]
