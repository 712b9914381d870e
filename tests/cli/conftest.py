"""The emulator the command's tests talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiosfstream.testing import SalesforceEmulator

from .support import CDC_CHANNEL, CHANNEL


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=1.0) as server:
        server.create_channel(CHANNEL)
        server.create_channel(CDC_CHANNEL)
        yield server
