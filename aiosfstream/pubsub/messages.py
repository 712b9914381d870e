"""The dict :class:`~aiosfstream.pubsub.PubSubClient` hands over for each event, and its
replay marker.

::

    {
        "topic": "/event/Order_Event__e",    # the topic subscribed to
        "replay_id": b"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x2a",  # opaque bytes
        "event_id": "5e7b...",                # the event's UUID (ConsumerEvent.event.id)
        "schema_id": "dffQ2QLzDNHqwB8_sHMxdA", # the Avro schema it was written with
        "payload": {...},                     # the decoded Avro record
    }

In a Change Data Capture payload, ``ChangeEventHeader.changedFields``, ``nulledFields``
and ``diffFields`` hold field names, as CometD delivers them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiosfstream.replay import ReplayMarker
from aiosfstream.typing import Message

__all__ = ["event_date", "make_message", "marker_of", "utc_text"]


def make_message(
    topic: str, replay_id: bytes, event_id: str, schema_id: str, payload: dict[str, Any]
) -> Message:
    """Build the message of one event."""
    return {
        "topic": topic,
        "replay_id": replay_id,
        "event_id": event_id,
        "schema_id": schema_id,
        "payload": payload,
    }


def utc_text(moment: datetime) -> str:
    """*moment* written as Salesforce writes dates: ``2026-12-03T07:30:00.123Z``."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _millis_text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return utc_text(datetime.fromtimestamp(value / 1000, timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def event_date(payload: dict[str, Any]) -> str | None:
    """When the event happened, as ISO-8601 UTC text, or ``None`` if it does not say.

    A Change Data Capture event gives its commit time (``ChangeEventHeader.commitTimestamp``;
    its ``CreatedDate`` is the record's); a platform event its ``CreatedDate``.  Both are
    epoch milliseconds in Pub/Sub.
    """
    header = payload.get("ChangeEventHeader")
    if isinstance(header, dict):
        return _millis_text(header.get("commitTimestamp"))
    return _millis_text(payload.get("CreatedDate"))


def marker_of(message: Message, now: datetime | None = None) -> ReplayMarker:
    """The replay marker of *message*: its date (or *now*, by default the current time)
    and its bytes replay id.

    With the MANUAL policy, store it once the event is processed::

        await client.replay_storage.store_marker(message["topic"], marker_of(message))
    """
    date = event_date(message["payload"]) or utc_text(now or datetime.now(timezone.utc))
    return ReplayMarker(date=date, replay_id=message["replay_id"])
