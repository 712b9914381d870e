"""The emulated org's event schemas: Avro definitions, schema ids, encoding and CDC bitmaps.

Two topics exist from the start, shaped as the protocol reference describes them:

* ``/event/Order_Event__e``, a custom platform event: ``CreatedDate`` (epoch milliseconds),
  ``CreatedById`` and custom fields typed ``["null", T]`` with a null default;
* ``/data/AccountChangeEvent``, Change Data Capture for accounts: a ``ChangeEventHeader``
  record, then every entity field as ``["null", T]``, including the compound
  ``BillingAddress`` (a nested record, so bitmaps have nested entries).

The encoding is written here with fastavro directly, apart from the client's decoder, so that
the two cannot share a mistake.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

__all__ = [
    "BITMAP_FIELDS",
    "CDC_TOPIC",
    "PLATFORM_EVENT_TOPIC",
    "TopicSchema",
    "encode_bitmap",
    "initial_schemas",
    "nested_record",
    "schema_id_of",
]

PLATFORM_EVENT_TOPIC = "/event/Order_Event__e"
CDC_TOPIC = "/data/AccountChangeEvent"
#: The ChangeEventHeader fields that Pub/Sub sends as bitmaps (CometD sends names).
BITMAP_FIELDS = ("changedFields", "nulledFields", "diffFields")

_NAMESPACE = "com.sforce.eventbus"


def _optional(name: str, avro_type: Any, doc: str) -> dict[str, Any]:
    return {"name": name, "type": ["null", avro_type], "doc": doc, "default": None}


_ORDER_EVENT: dict[str, Any] = {
    "type": "record",
    "name": "Order_Event__e",
    "namespace": _NAMESPACE,
    "fields": [
        {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
        {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
        _optional("OrderNumber__c", "string", "Data:Text"),
        _optional("Amount__c", "double", "Data:Double"),
        _optional("Status__c", "string", "Data:Text"),
    ],
}

_ADDRESS: dict[str, Any] = {
    "type": "record",
    "name": "Address",
    "namespace": _NAMESPACE,
    "fields": [
        _optional("Street", "string", "Data:TextArea"),
        _optional("City", "string", "Data:Text"),
        _optional("State", "string", "Data:Text"),
        _optional("PostalCode", "string", "Data:Text"),
        _optional("Country", "string", "Data:Text"),
        _optional("Latitude", "double", "Data:Double"),
        _optional("Longitude", "double", "Data:Double"),
        _optional("GeocodeAccuracy", "string", "Data:Picklist"),
    ],
}

_CHANGE_EVENT_HEADER: dict[str, Any] = {
    "type": "record",
    "name": "ChangeEventHeader",
    "namespace": _NAMESPACE,
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {
            # Whether Salesforce uses an enum or a string is not documented; an enum makes
            # a decoder prove it handles both kinds the same way (both decode to text).
            "name": "changeType",
            "type": {
                "type": "enum",
                "name": "ChangeType",
                "namespace": _NAMESPACE,
                "symbols": [
                    "CREATE",
                    "UPDATE",
                    "DELETE",
                    "UNDELETE",
                    "GAP_CREATE",
                    "GAP_UPDATE",
                    "GAP_DELETE",
                    "GAP_UNDELETE",
                    "GAP_OVERFLOW",
                ],
            },
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}

_ACCOUNT_CHANGE_EVENT: dict[str, Any] = {
    "type": "record",
    "name": "AccountChangeEvent",
    "namespace": _NAMESPACE,
    "fields": [
        {"name": "ChangeEventHeader", "type": _CHANGE_EVENT_HEADER, "doc": "Data:EventHeader"},
        _optional("Name", "string", "Data:Text"),
        _optional("Type", "string", "Data:Picklist"),
        _optional("ParentId", "string", "Data:EntityId"),
        _optional("BillingAddress", _ADDRESS, "Data:Address"),
        _optional("Phone", "string", "Data:Phone"),
        _optional("Industry", "string", "Data:Picklist"),
        _optional("AnnualRevenue", "double", "Data:Currency"),
        _optional("NumberOfEmployees", "int", "Data:Int"),
        _optional("OwnerId", "string", "Data:EntityId"),
        _optional("CreatedDate", "long", "CreatedDate:DateTime"),
        _optional("CreatedById", "string", "CreatedBy:EntityId"),
        _optional("LastModifiedDate", "long", "LastModifiedDate:DateTime"),
        _optional("LastModifiedById", "string", "LastModifiedBy:EntityId"),
    ],
}


def schema_id_of(schema: Mapping[str, Any]) -> str:
    """Return the 22-character id of *schema*: a 128-bit digest of its canonical form.

    Salesforce does not document its algorithm; any stable 16-byte digest in unpadded
    base64url has the shape of the real ids.
    """
    canonical = to_parsing_canonical_form(fastavro.parse_schema(copy.deepcopy(dict(schema))))
    digest = hashlib.sha256(canonical.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class TopicSchema:
    """One version of a topic's Avro schema."""

    definition: dict[str, Any]
    schema_id: str = field(init=False)
    _parsed: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema_id", schema_id_of(self.definition))
        object.__setattr__(self, "_parsed", fastavro.parse_schema(copy.deepcopy(self.definition)))

    @property
    def json(self) -> str:
        """The schema as Avro JSON, as GetSchema returns it."""
        return json.dumps(self.definition, separators=(",", ":"))

    @property
    def field_names(self) -> list[str]:
        """The top-level field names, in schema order (the bitmap bit order)."""
        return [item["name"] for item in self.definition["fields"]]

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Return *record* as a bare Avro binary datum (no container, no framing)."""
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._parsed, dict(record), strict=True)
        return buffer.getvalue()

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Read a bare Avro datum written with this schema; ``ValueError`` if it is not one."""
        buffer = io.BytesIO(payload)
        try:
            record = fastavro.schemaless_reader(buffer, self._parsed, None)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError, TypeError) as error:
            raise ValueError(f"the payload is not an Avro datum of this schema: {error}") from None
        if buffer.read(1) or not isinstance(record, dict):
            raise ValueError("the payload is not an Avro datum of this schema")
        return record

    def with_field(self, name: str, avro_type: Any) -> TopicSchema:
        """Return the next version of this schema, with an optional field *name* added last.

        Appending keeps every existing field's index, so older bitmaps keep their meaning.
        """
        if name in self.field_names:
            raise ValueError(f"name: the schema already has a field {name!r}")
        definition = copy.deepcopy(self.definition)
        definition["fields"].append(_optional(name, avro_type, "Data:Custom"))
        return TopicSchema(definition)


def initial_schemas() -> dict[str, TopicSchema]:
    """The topics of a new emulated org and their first schemas."""
    return {
        PLATFORM_EVENT_TOPIC: TopicSchema(copy.deepcopy(_ORDER_EVENT)),
        CDC_TOPIC: TopicSchema(copy.deepcopy(_ACCOUNT_CHANGE_EVENT)),
    }


def _hex(bits: int) -> str:
    digits = f"{bits:X}"
    # Some decoders read the hex two digits (one byte) at a time.
    return "0x" + digits.rjust(len(digits) + len(digits) % 2, "0")


def nested_record(avro_type: Any) -> dict[str, Any] | None:
    """The record inside a compound field's type (unwrapping unions), if any."""
    candidates = avro_type if isinstance(avro_type, list) else [avro_type]
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("type") == "record":
            return candidate
    return None


def encode_bitmap(schema: TopicSchema, names: Iterable[str]) -> list[str]:
    """Encode field *names* as a Pub/Sub CDC bitmap over *schema*'s fields.

    Element 0 is ``0x`` + hex over the top-level fields in schema order (bit *i* = field
    *i*, counted from the least significant bit); a name ``Parent.Child`` adds an element
    ``P-0x...`` over the nested record of top-level field number *P*. An unknown name is a
    ``ValueError``.
    """
    fields = {item["name"]: (index, item) for index, item in enumerate(schema.definition["fields"])}
    top = 0
    nested: dict[int, int] = {}
    for name in names:
        parent, _, child = name.partition(".")
        if parent not in fields:
            raise ValueError(f"unknown field {name!r} in a bitmap of {schema.definition['name']}")
        index, item = fields[parent]
        if not child:
            top |= 1 << index
            continue
        record = nested_record(item["type"])
        children = [sub["name"] for sub in record["fields"]] if record else []
        if child not in children:
            raise ValueError(f"unknown field {name!r} in a bitmap of {schema.definition['name']}")
        nested[index] = nested.get(index, 0) | 1 << children.index(child)
    if not top and not nested:
        return []
    return [_hex(top)] + [f"{index}-{_hex(bits)}" for index, bits in sorted(nested.items())]
