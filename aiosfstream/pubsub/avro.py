"""Event payloads: Avro schemas cached by id, decoding, encoding, and CDC bitmap fields.

An event's ``payload`` is a bare Avro binary datum written with the schema its
``schema_id`` names; the schema's JSON comes from ``GetSchema``, once per id ("Event
Deserialization Considerations" page of the Pub/Sub API guide).

In Change Data Capture events, ``changedFields``, ``nulledFields`` and ``diffFields`` of
the ``ChangeEventHeader`` are bitmaps: the first element, ``"0x..."``, has bit *i* set for
the *i*-th top-level field of the schema; an element ``"P-0x..."`` does the same for the
fields of the compound field number *P*, named ``Parent.Child``.  :func:`decode_bitmaps`
turns them into field names, as CometD delivers them.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import fastavro
import fastavro.validation

__all__ = [
    "BITMAP_FIELDS",
    "SchemaCache",
    "bitmap_field_names",
    "decode_bitmaps",
    "decode_payload",
    "encode_payload",
    "parse_schema",
]

#: The ``ChangeEventHeader`` fields that Pub/Sub sends as bitmaps.
BITMAP_FIELDS = ("changedFields", "nulledFields", "diffFields")

#: A parsed Avro schema, as :func:`parse_schema` returns it.
Schema = dict[str, Any]

_TOP_LEVEL = re.compile(r"0[xX]([0-9a-fA-F]+)")
_NESTED = re.compile(r"(\d+)-0[xX]([0-9a-fA-F]+)")


def parse_schema(schema_json: str) -> Schema:
    """Parse the JSON of an Avro schema, as ``GetSchema`` returns it.

    :raises ValueError: the text is not JSON or not a valid Avro record schema
    """
    try:
        parsed = fastavro.parse_schema(json.loads(schema_json))
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as error:
        raise ValueError(f"not a valid Avro schema: {error}") from error
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError("an event schema must be an Avro record")
    return parsed


def decode_payload(schema: Schema, payload: bytes) -> dict[str, Any]:
    """Decode the Avro binary *payload* written with *schema*, CDC bitmaps included.

    :raises ValueError: the bytes do not match the schema (Pub/Sub does not validate
        what publishers send)
    """
    stream = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(stream, schema, None)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as error:
        raise ValueError(f"the payload does not match its schema: {error}") from error
    if stream.tell() != len(payload):
        raise ValueError(
            f"the payload does not match its schema: {len(payload) - stream.tell()} bytes left"
        )
    if not isinstance(record, dict):
        raise ValueError("the payload is not an Avro record")
    return decode_bitmaps(record, schema)


def encode_payload(schema: Schema, payload: Mapping[str, Any]) -> bytes:
    """Encode *payload* as an Avro binary datum of *schema*.

    :raises ValueError: *payload* does not fit the schema; the message names the field
    """
    record = dict(payload)
    try:
        fastavro.validation.validate(record, schema, raise_errors=True)
    except fastavro.validation.ValidationError as error:
        raise ValueError(f"payload does not fit the topic's schema: {error}") from None
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, schema, record)
    return stream.getvalue()


def _record_of(schema: object, named: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The record schema inside *schema*, unwrapping unions such as ``["null", R]`` and
    following references to *named* types."""
    if isinstance(schema, str) and schema in named:
        return _record_of(named[schema], {})
    if isinstance(schema, Mapping) and schema.get("type") == "record":
        return schema
    if isinstance(schema, list):
        for branch in schema:
            record = _record_of(branch, named)
            if record is not None:
                return record
    return None


def _names_of_bits(hex_digits: str, fields: list[Mapping[str, Any]], prefix: str) -> list[str]:
    bits = int(hex_digits, 16)
    return [prefix + field["name"] for index, field in enumerate(fields) if bits >> index & 1]


def bitmap_field_names(bitmap: list[str], schema: Mapping[str, Any]) -> list[str]:
    """The field names one bitmap field of a CDC event stands for.

    Elements that are not bitmaps (names already, as CometD sends them) are kept as they
    are; a bit beyond the schema's fields names nothing.
    """
    fields: list[Mapping[str, Any]] = list(schema.get("fields", []))
    names: list[str] = []
    for element in bitmap:
        top = _TOP_LEVEL.fullmatch(element)
        nested = _NESTED.fullmatch(element)
        if top is not None:
            names += _names_of_bits(top.group(1), fields, "")
        elif nested is None:
            names.append(element)
        elif int(nested.group(1)) < len(fields):
            parent = fields[int(nested.group(1))]
            record = _record_of(parent.get("type"), schema.get("__named_schemas", {}))
            if record is not None:
                names += _names_of_bits(
                    nested.group(2), list(record.get("fields", [])), f"{parent['name']}."
                )
    return names


def decode_bitmaps(record: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the bitmap fields of *record*'s ``ChangeEventHeader`` by field names.

    A record without a ``ChangeEventHeader`` (a platform event) is returned unchanged.
    """
    header = record.get("ChangeEventHeader")
    if not isinstance(header, dict):
        return record
    for name in BITMAP_FIELDS:
        value = header.get(name)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            header[name] = bitmap_field_names(value, schema)
    return record


class SchemaCache:
    """Schemas by id, each fetched once, even when several events ask for it together.

    :param fetch: an async function returning the schema JSON of an id (``GetSchema``)
    """

    def __init__(self, fetch: Callable[[str], Awaitable[str]]) -> None:
        self._fetch = fetch
        self._schemas: dict[str, Schema] = {}
        self._fetching: dict[str, asyncio.Future[Schema]] = {}

    def __contains__(self, schema_id: object) -> bool:
        return schema_id in self._schemas

    def cached(self, schema_id: str) -> Schema | None:
        """The schema of *schema_id* if it was fetched already, without waiting."""
        return self._schemas.get(schema_id)

    async def get(self, schema_id: str) -> Schema:
        """The parsed schema of *schema_id*; fetched on first use.

        :raises ValueError: the server's schema is not a valid Avro record schema
        """
        schema = self._schemas.get(schema_id)
        if schema is not None:
            return schema
        pending = self._fetching.get(schema_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Schema] = asyncio.get_running_loop().create_future()
        self._fetching[schema_id] = future
        try:
            schema = parse_schema(await self._fetch(schema_id))
        except Exception as error:
            future.set_exception(error)
            # Nobody else may be waiting: keep the error from being reported as unread.
            future.exception()
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._fetching[schema_id]
        self._schemas[schema_id] = schema
        future.set_result(schema)
        return schema
