"""The message dict and its replay marker."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aiosfstream.exceptions import ReplayError
from aiosfstream.pubsub.messages import make_message, marker_of, millis_text
from aiosfstream.replay import ReplayMarker, marker_from_message

NOW = datetime(2026, 12, 3, 7, 30, 0, 123456, tzinfo=timezone.utc)


def test_the_message_has_the_documented_keys() -> None:
    message = make_message("/event/E__e", b"\x00\x01", "uuid", "schema", {"A": 1})
    assert message == {
        "topic": "/event/E__e",
        "replay_id": b"\x00\x01",
        "event_id": "uuid",
        "schema_id": "schema",
        "payload": {"A": 1},
    }


def test_now_is_written_as_pub_sub_dates_are() -> None:
    assert millis_text(NOW) == "1796283000123"
    # A whole number of milliseconds stays that number (no float rounding down).
    assert millis_text(datetime(2026, 12, 3, 7, 30, 0, 123000, tzinfo=timezone.utc)) == (
        "1796283000123"
    )


def test_a_platform_event_is_dated_by_its_created_date_in_epoch_milliseconds() -> None:
    message = make_message("/event/E__e", b"\x07", "u", "s", {"CreatedDate": 1712693965000})
    assert marker_of(message, NOW) == ReplayMarker("1712693965000", b"\x07")


def test_a_change_event_is_dated_by_its_commit_not_by_the_records_creation() -> None:
    payload = {"CreatedDate": 0, "ChangeEventHeader": {"commitTimestamp": 1712693965123}}
    message = make_message("/data/AccountChangeEvent", b"\x07", "u", "s", payload)
    assert marker_of(message, NOW).date == "1712693965123"


def test_the_marker_is_the_one_the_storage_writes() -> None:
    message = make_message("/event/E__e", b"\x07", "u", "s", {"CreatedDate": 0})
    assert marker_of(message) == marker_from_message(message) == ReplayMarker("0", b"\x07")


def test_an_undated_event_is_dated_now() -> None:
    for payload in ({}, {"CreatedDate": True}, {"CreatedDate": None}):
        message = make_message("/event/E__e", b"\x08", "u", "s", payload)
        assert marker_of(message, NOW) == ReplayMarker("1796283000123", b"\x08")


def test_an_undated_event_is_dated_by_the_clock_by_default() -> None:
    before = datetime.now(timezone.utc)
    date = int(marker_of(make_message("/event/E__e", b"\x08", "u", "s", {})).date)
    assert (
        int(before.timestamp() * 1000) <= date <= int(datetime.now(timezone.utc).timestamp() * 1000)
    )


def test_a_message_without_a_bytes_replay_id_has_no_marker() -> None:
    with pytest.raises(ReplayError, match="no bytes replay_id"):
        marker_of({"topic": "/event/E__e", "replay_id": 42, "payload": {}})
    with pytest.raises(TypeError, match="message must be a dict"):
        marker_of([])  # type: ignore[arg-type]
