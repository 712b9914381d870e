"""Complete a server-side event payload, as the platform does when a record changes or an
event is published from inside the org.

A platform event gets ``CreatedDate`` and ``CreatedById`` when they are not given. A change
event gets a full ``ChangeEventHeader``; its ``changedFields``, ``nulledFields`` and
``diffFields`` are given as field names (``Parent.Child`` for a compound field's part) and
become Pub/Sub bitmaps in the encoded record. Unknown field names are a ``ValueError``, so a
typo in a test does not pass silently as a null.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .schemas import BITMAP_FIELDS, TopicSchema, encode_bitmap, nested_record

__all__ = ["CHANGE_ORIGIN", "CompletedPayload", "EventDefaults", "complete_payload"]

CHANGE_ORIGIN = "com/salesforce/api/soap/66.0;client=aiosfstream-emulator"
_HEADER = "ChangeEventHeader"


@dataclass(frozen=True)
class EventDefaults:
    """What the platform fills in: the time (epoch ms), the acting user, fresh ids."""

    now_ms: int
    user_id: str
    commit_number: int
    new_record_id: Callable[[], str]


@dataclass(frozen=True)
class CompletedPayload:
    """*record* is what gets Avro-encoded; *fields* is the same with bitmaps as names."""

    record: dict[str, Any]
    fields: dict[str, Any]


def _fill(definition: Mapping[str, Any], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """*values* for every field of record *definition*: missing optional fields are null."""
    names = [item["name"] for item in definition["fields"]]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"payload: unknown field(s) {', '.join(unknown)} in {where}")
    filled: dict[str, Any] = {}
    for item in definition["fields"]:
        value = copy.deepcopy(values.get(item["name"]))
        nested = nested_record(item["type"])
        if nested is not None and isinstance(value, Mapping):
            value = _fill(nested, value, f"{where}.{item['name']}")
        filled[item["name"]] = value
    return filled


def complete_payload(
    schema: TopicSchema, payload: Mapping[str, Any], defaults: EventDefaults
) -> CompletedPayload:
    """Fill *payload* in as the platform would for an event of *schema*."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping, got {type(payload).__name__}")
    where = schema.definition["name"]
    if _HEADER in schema.field_names:
        return _complete_change_event(schema, payload, defaults)
    fields = _fill(schema.definition, payload, where)
    if fields.get("CreatedDate") is None:
        fields["CreatedDate"] = defaults.now_ms
    if fields.get("CreatedById") is None:
        fields["CreatedById"] = defaults.user_id
    return CompletedPayload(record=copy.deepcopy(fields), fields=fields)


def _complete_change_event(
    schema: TopicSchema, payload: Mapping[str, Any], defaults: EventDefaults
) -> CompletedPayload:
    where = schema.definition["name"]
    entity = {key: value for key, value in payload.items() if key != _HEADER}
    fields = _fill(schema.definition, entity, where)
    given = payload.get(_HEADER) or {}
    header: dict[str, Any] = {
        "entityName": where.removesuffix("ChangeEvent").removesuffix("__"),
        "recordIds": [defaults.new_record_id()],
        "changeType": "UPDATE",
        "changeOrigin": CHANGE_ORIGIN,
        "transactionKey": str(uuid.uuid4()),
        "sequenceNumber": 1,
        "commitTimestamp": defaults.now_ms,
        "commitNumber": defaults.commit_number,
        "commitUser": defaults.user_id,
        # An update's changed fields are those it sets; the ones it sets to null are nulled.
        "changedFields": [key for key, value in entity.items() if value is not None],
        "nulledFields": [key for key, value in entity.items() if value is None],
        "diffFields": [],
    }
    unknown = sorted(set(given) - set(header))
    if unknown:
        raise ValueError(f"payload: unknown field(s) {', '.join(unknown)} in {where}.{_HEADER}")
    for name, value in given.items():
        if value is None:
            raise ValueError(f"payload: {_HEADER}.{name} cannot be null")
        header[name] = copy.deepcopy(value)
    fields[_HEADER] = header
    record = copy.deepcopy(fields)
    for name in BITMAP_FIELDS:
        names = header[name]
        if isinstance(names, str) or not all(isinstance(item, str) for item in names):
            raise ValueError(f"payload: {_HEADER}.{name} is a list of field names")
        try:
            record[_HEADER][name] = encode_bitmap(schema, names)
        except ValueError as error:
            raise ValueError(f"payload: {_HEADER}.{name}: {error}") from None
    return CompletedPayload(record=record, fields=fields)
