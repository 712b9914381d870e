"""The servers the command's tests talk to: the emulator, and a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from aiosfstream.testing import SalesforceEmulator

from .support import CDC_CHANNEL, CHANNEL

if TYPE_CHECKING:
    from aiosfstream.testing.pubsub import PubSubEmulator


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=1.0) as server:
        server.create_channel(CHANNEL)
        server.create_channel(CDC_CHANNEL)
        yield server


@pytest.fixture
async def pubsub(emulator: SalesforceEmulator) -> AsyncIterator[PubSubEmulator]:
    """The Pub/Sub API of :func:`emulator`'s org."""
    # Imported here: grpcio is needed by the Pub/Sub tests only.
    from aiosfstream.testing.pubsub import PubSubEmulator

    async with PubSubEmulator(emulator) as server:
        yield server
