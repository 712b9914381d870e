"""Helpers shared by the storage tests."""

from __future__ import annotations

from aiosfstream import ReplayMarker, ReplayMarkerStorage, SalesforceStreamingClient
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.typing import Message
from tests.helpers import emulator_client

CHANNEL = "/topic/foo"


def marker(n: int, date: str | None = None) -> ReplayMarker:
    """Marker number *n*: a larger *n* has a later date, unless *date* is given."""
    if date is None:
        date = f"2024-05-01T12:00:{n // 1_000_000:02d}.{n % 1_000_000:06d}+00:00"
    return ReplayMarker(date, n)


def replay_id(message: Message) -> int:
    """The replay id of an event message."""
    value = message["data"]["event"]["replayId"]
    assert isinstance(value, int)
    return value


def streaming_client(
    emulator: SalesforceEmulator, storage: ReplayMarkerStorage
) -> SalesforceStreamingClient:
    """A client logged in to *emulator* that keeps its replay markers in *storage*."""
    return emulator_client(emulator.url, replay=storage)
