"""Builders for event messages shaped like the ones Salesforce delivers over CometD.

The channel prefix picks the shape (Streaming API and Platform Events developer guides):

* ``/topic/...`` PushTopic: ``data.event.{createdDate, replayId, type}`` and ``data.sobject``;
* ``/u/...`` generic streaming: ``data.event.{createdDate, replayId}`` and a string
  ``data.payload``;
* ``/event/...`` platform events: ``data.schema``, ``data.payload`` (with ``CreatedDate`` and
  ``CreatedById``) and ``data.event.{EventUuid, replayId}``;
* ``/data/...`` Change Data Capture: ``data.schema``, ``data.payload.ChangeEventHeader``
  (``commitTimestamp`` in epoch milliseconds) and ``data.event.replayId``.
"""

from __future__ import annotations

import copy
import itertools
import json
import secrets
import string
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "IdFactory",
    "build_event_message",
    "cdc_entity_name",
    "format_datetime",
    "salesforce_id",
]

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_URLSAFE = string.ascii_letters + string.digits + "-_"


def salesforce_id(prefix: str, number: int) -> str:
    """Return an 18-character Salesforce id with key *prefix* made from *number*.

    The three last characters encode which of the first 15 are upper case, so that the
    id survives case-insensitive comparison, as real ids do.
    """
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if number == 0:
            break
    body = (prefix + "0E" + digits.rjust(10, "0"))[:15]
    suffix = ""
    for start in range(0, 15, 5):
        bits = 0
        for position, char in enumerate(body[start : start + 5]):
            if char.isupper():
                bits |= 1 << position
        suffix += _SUFFIX_ALPHABET[bits]
    return body + suffix


class IdFactory:
    """Hands out unique record ids, schema ids and commit numbers."""

    def __init__(self, start: int = 1000) -> None:
        self._numbers = itertools.count(start)

    def new(self, prefix: str) -> str:
        """Return a fresh id with key prefix *prefix* (``"001"`` Account, ``"005"`` User...)."""
        return salesforce_id(prefix, next(self._numbers))

    def number(self) -> int:
        """Return a fresh positive integer."""
        return next(self._numbers)

    @staticmethod
    def schema_id() -> str:
        """Return a random schema id like ``dffQ2QLzDNHqwB8_sHMxdA``."""
        return "".join(secrets.choice(_URLSAFE) for _ in range(22))


def format_datetime(timestamp: float, *, millis: bool = True) -> str:
    """Format *timestamp* the way Salesforce does, e.g. ``2016-03-29T16:40:08.208Z``."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def cdc_entity_name(channel: str) -> str:
    """Guess the entity of a CDC channel: ``/data/AccountChangeEvent`` → ``Account``."""
    name = channel.rsplit("/", 1)[-1]
    if name.endswith("__ChangeEvent"):
        return name[: -len("__ChangeEvent")] + "__c"
    if name.endswith("ChangeEvent") and name != "ChangeEvent":
        return name[: -len("ChangeEvent")]
    return "Account"


def build_event_message(
    channel: str,
    replay_id: int,
    created: float,
    payload: Any = None,
    *,
    event_type: str | None = None,
    schema_id: str,
    user_id: str,
    ids: IdFactory,
    raw: bool = False,
) -> dict[str, Any]:
    """Build the message delivered for a new event on *channel*.

    *payload* means, per channel family: the record fields (``/topic/``), the string
    payload (``/u/``), the event fields (``/event/``) or the changed record fields, with an
    optional partial ``ChangeEventHeader`` (``/data/``). With *raw*, *payload* is the whole
    ``data`` object and only ``data.event.replayId`` is filled in.
    """
    if raw:
        if payload is not None and not isinstance(payload, Mapping):
            raise ValueError("a raw payload is the whole data object (a JSON object)")
        data = copy.deepcopy(dict(payload or {}))
        event = data.setdefault("event", {})
        if isinstance(event, dict):
            event["replayId"] = replay_id
        return {"channel": channel, "data": data}
    if channel.startswith("/topic/"):
        data = _pushtopic(replay_id, created, payload, event_type, ids)
    elif channel.startswith("/u/"):
        data = _generic(replay_id, created, payload)
    elif channel.startswith("/event/"):
        data = _platform_event(replay_id, created, payload, schema_id, user_id)
    elif channel.startswith("/data/"):
        data = _change_event(
            channel, replay_id, created, payload, event_type, schema_id, user_id, ids
        )
    else:
        raise ValueError(f"not a streaming channel: {channel!r}")
    return {"channel": channel, "data": data}


def _fields(payload: Any) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise TypeError("payload must map field names to values (a JSON object)")
    return copy.deepcopy(dict(payload))


def _pushtopic(
    replay_id: int, created: float, payload: Any, event_type: str | None, ids: IdFactory
) -> dict[str, Any]:
    sobject = _fields(payload)
    sobject.setdefault("Id", ids.new("001"))
    return {
        "event": {
            "createdDate": format_datetime(created),
            "replayId": replay_id,
            "type": event_type or "created",
        },
        "sobject": sobject,
    }


def _generic(replay_id: int, created: float, payload: Any) -> dict[str, Any]:
    if payload is None:
        text = ""
    elif isinstance(payload, str):
        text = payload
    else:
        text = json.dumps(payload)
    return {
        "event": {"createdDate": format_datetime(created), "replayId": replay_id},
        "payload": text,
    }


def _platform_event(
    replay_id: int, created: float, payload: Any, schema_id: str, user_id: str
) -> dict[str, Any]:
    fields = {"CreatedDate": format_datetime(created), "CreatedById": user_id[:15]}
    fields.update(_fields(payload))
    return {
        "schema": schema_id,
        "payload": fields,
        "event": {"EventUuid": str(uuid.uuid4()), "replayId": replay_id},
    }


def _change_event(
    channel: str,
    replay_id: int,
    created: float,
    payload: Any,
    event_type: str | None,
    schema_id: str,
    user_id: str,
    ids: IdFactory,
) -> dict[str, Any]:
    fields = _fields(payload)
    given = fields.pop("ChangeEventHeader", None) or {}
    change_type = (event_type or "CREATE").upper()
    entity = cdc_entity_name(channel)
    header: dict[str, Any] = {
        "entityName": entity,
        "recordIds": [ids.new("001")],
        "changeType": change_type,
        "changeOrigin": "com/salesforce/api/rest/66.0;client=aiosfstream-emulator",
        "transactionKey": str(uuid.uuid4()),
        "sequenceNumber": 1,
        "isTransactionEnd": True,
        "commitTimestamp": int(created * 1000),
        "commitNumber": ids.number(),
        "commitUser": user_id,
        "nulledFields": [],
        "diffFields": [],
        "changedFields": [] if change_type == "CREATE" else sorted(fields),
    }
    header.update(given)
    record: dict[str, Any] = {"ChangeEventHeader": header}
    if change_type == "CREATE":
        stamp = format_datetime(created, millis=False)
        record.update(
            CreatedDate=stamp,
            CreatedById=user_id,
            LastModifiedDate=stamp,
            LastModifiedById=user_id,
        )
    record.update(fields)
    return {"schema": schema_id, "payload": record, "event": {"replayId": replay_id}}
