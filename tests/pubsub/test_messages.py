"""The message dict and its replay marker."""

from __future__ import annotations

from datetime import datetime, timezone

from aiosfstream.pubsub.messages import event_date, make_message, marker_of, utc_text
from aiosfstream.replay import ReplayMarker

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


def test_dates_are_written_as_salesforce_writes_them() -> None:
    assert utc_text(NOW) == "2026-12-03T07:30:00.123Z"


def test_a_platform_event_is_dated_by_its_created_date() -> None:
    assert event_date({"CreatedDate": 1712693965000}) == "2024-04-09T20:19:25.000Z"


def test_a_change_event_is_dated_by_its_commit_not_by_the_records_creation() -> None:
    payload = {"CreatedDate": 0, "ChangeEventHeader": {"commitTimestamp": 1712693965123}}
    assert event_date(payload) == "2024-04-09T20:19:25.123Z"


def test_an_undated_event_gets_no_date() -> None:
    assert event_date({"CreatedDate": "not a number"}) is None
    assert event_date({"CreatedDate": True}) is None
    assert event_date({"CreatedDate": 10**20}) is None


def test_the_marker_has_the_bytes_id_and_the_date_or_now() -> None:
    dated = make_message("/event/E__e", b"\x07", "u", "s", {"CreatedDate": 0})
    assert marker_of(dated, NOW) == ReplayMarker("1970-01-01T00:00:00.000Z", b"\x07")
    undated = make_message("/event/E__e", b"\x08", "u", "s", {})
    assert marker_of(undated, NOW) == ReplayMarker("2026-12-03T07:30:00.123Z", b"\x08")
