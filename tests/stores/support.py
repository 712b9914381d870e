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


#: Markers with dates as Salesforce writes them, forms mixed: (stored, candidate, whether
#: the candidate replaces the stored one).  Where text order and time order differ, time
#: order must win; equal instants go to the larger replay id.
RAW_DATE_CASES: list[tuple[ReplayMarker, ReplayMarker, bool]] = [
    # 10:00:00Z sorts after 10:00:00.500+0000 as text but is half a second earlier.
    (
        ReplayMarker("2024-05-01T10:00:00.500+0000", 1),
        ReplayMarker("2024-05-01T10:00:00Z", 2),
        False,
    ),
    (
        ReplayMarker("2024-05-01T10:00:00Z", 1),
        ReplayMarker("2024-05-01T10:00:00.500+0000", 2),
        True,
    ),
    # The same instant in two forms: the larger replay id wins.
    (
        ReplayMarker("2024-05-01T10:00:00.000+0000", 5),
        ReplayMarker("2024-05-01T10:00:00Z", 6),
        True,
    ),
    (
        ReplayMarker("2024-05-01T10:00:00Z", 5),
        ReplayMarker("2024-05-01T10:00:00.000000+00:00", 4),
        False,
    ),
    # Change Data Capture's epoch milliseconds: 10:00:00.001Z.
    (ReplayMarker("2024-05-01T10:00:00Z", 7), ReplayMarker("1714557600001", 3), True),
    (ReplayMarker("1714557600001", 3), ReplayMarker("2024-05-01T10:00:00.000+0000", 9), False),
]
