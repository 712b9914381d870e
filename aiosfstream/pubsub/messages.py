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

from datetime import datetime, timedelta, timezone
from typing import Any

from aiosfstream.replay import ReplayMarker, marker_from_message
from aiosfstream.typing import Message

__all__ = ["make_message", "marker_of", "millis_text"]


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


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def millis_text(moment: datetime) -> str:
    """The aware datetime *moment* as a Pub/Sub event dates itself: epoch milliseconds,
    in decimal."""
    # Integer arithmetic: a float timestamp can turn .123 s into 122.999... ms.
    return str((moment - _EPOCH) // timedelta(milliseconds=1))


def marker_of(message: Message, now: datetime | None = None) -> ReplayMarker:
    """The replay marker of *message*: :func:`~aiosfstream.replay.marker_from_message`'s,
    dated *now* (by default the current time) if the event carries no date.

    With the MANUAL policy, store it once the event is processed::

        await client.replay_storage.store_marker(message["topic"], marker_of(message))

    :raises TypeError: *message* is not a dict
    :raises ~aiosfstream.exceptions.ReplayError: it has no bytes ``replay_id``
    """
    marker = marker_from_message(message)
    if marker.date:
        return marker
    return marker._replace(date=millis_text(now or datetime.now(timezone.utc)))
