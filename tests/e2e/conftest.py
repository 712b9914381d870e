"""Fixtures for end-to-end tests: the emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiosfstream import SalesforceStreamingClient
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import emulator_client

CHANNEL = "/topic/foo"


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    """A running emulator with the ``/topic/foo`` PushTopic; connects held for 2 s."""
    async with SalesforceEmulator(connect_timeout=2.0, client_expiry=5.0) as server:
        server.create_channel(CHANNEL)
        yield server


def make_client(emulator: SalesforceEmulator, **options: Any) -> SalesforceStreamingClient:
    """A client that logs in to *emulator* with its default user."""
    return emulator_client(emulator.url, **options)


def publish(emulator: SalesforceEmulator, *names: str, channel: str = CHANNEL) -> list[int]:
    """Publish one PushTopic event per name; return their replay ids."""
    return [
        emulator.publish(channel, {"Name": name})["data"]["event"]["replayId"] for name in names
    ]


def name_of(message: dict[str, Any]) -> str:
    """The record name carried by a PushTopic event."""
    name: str = message["data"]["sobject"]["Name"]
    return name


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until *condition* holds, or fail naming *what* was expected."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        await asyncio.sleep(0.02)
