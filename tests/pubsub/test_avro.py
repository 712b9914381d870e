"""Avro payloads: decoding, encoding, the CDC bitmaps, and the schema cache."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aiosfstream.pubsub.avro import (
    SchemaCache,
    bitmap_field_names,
    decode_payload,
    encode_payload,
    parse_schema,
)

ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [
        {"name": "Street", "type": ["null", "string"], "default": None},
        {"name": "City", "type": ["null", "string"], "default": None},
        {"name": "State", "type": ["null", "string"], "default": None},
    ],
}
HEADER = {
    "type": "record",
    "name": "ChangeEventHeader",
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "changeType", "type": "string"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
    ],
}
CDC_SCHEMA_JSON = json.dumps(
    {
        "type": "record",
        "name": "AccountChangeEvent",
        "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "ChangeEventHeader", "type": HEADER},
            {"name": "Id", "type": ["null", "string"], "default": None},
            {"name": "Name", "type": ["null", "string"], "default": None},
            {"name": "BillingAddress", "type": ["null", ADDRESS], "default": None},
            {"name": "Industry", "type": ["null", "string"], "default": None},
            {"name": "ShippingAddress", "type": ["null", "Address"], "default": None},
        ],
    }
)
PE_SCHEMA_JSON = json.dumps(
    {
        "type": "record",
        "name": "Order_Event__e",
        "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "CreatedDate", "type": "long"},
            {"name": "CreatedById", "type": "string"},
            {"name": "OrderNumber__c", "type": ["null", "string"], "default": None},
        ],
    }
)


def cdc_record(changed: list[str]) -> dict[str, Any]:
    return {
        "ChangeEventHeader": {
            "entityName": "Account",
            "changeType": "UPDATE",
            "commitTimestamp": 1712693965000,
            "changedFields": changed,
            "nulledFields": [],
            "diffFields": [],
        },
        "Id": "001xx000003DGb2AAG",
        "Name": None,
        "BillingAddress": {"Street": None, "City": "Paris", "State": "IDF"},
        "Industry": "Energy",
        "ShippingAddress": None,
    }


def test_top_level_bits_name_the_schemas_fields_in_order() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    # 0x12 = bits 1 and 4: Id and Industry.
    assert bitmap_field_names(["0x12"], schema) == ["Id", "Industry"]


def test_nested_bitmaps_name_the_compound_fields_parts() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    # Field 3 is BillingAddress; 0x6 = bits 1 and 2: City and State.
    assert bitmap_field_names(["0x08", "3-0x6"], schema) == [
        "BillingAddress",
        "BillingAddress.City",
        "BillingAddress.State",
    ]


def test_a_compound_field_named_by_reference_is_unwrapped_too() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    assert bitmap_field_names(["5-0x01"], schema) == ["ShippingAddress.Street"]


def test_lowercase_hex_and_odd_digit_counts_are_read() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    assert bitmap_field_names(["0x1a"], schema) == ["Id", "BillingAddress", "Industry"]


def test_names_already_decoded_are_kept() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    assert bitmap_field_names(["Name", "LastModifiedDate"], schema) == [
        "Name",
        "LastModifiedDate",
    ]


def test_bits_beyond_the_schema_name_nothing() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    assert bitmap_field_names(["0x1000", "99-0x1"], schema) == []


def test_a_cdc_payload_decodes_with_field_names() -> None:
    schema = parse_schema(CDC_SCHEMA_JSON)
    data = encode_payload(schema, cdc_record(["0x12", "3-0x2"]))
    record = decode_payload(schema, data)
    header = record["ChangeEventHeader"]
    assert header["changedFields"] == ["Id", "Industry", "BillingAddress.City"]
    assert header["nulledFields"] == []
    assert record["BillingAddress"]["City"] == "Paris"


def test_a_platform_event_round_trips() -> None:
    schema = parse_schema(PE_SCHEMA_JSON)
    payload = {"CreatedDate": 1, "CreatedById": "005", "OrderNumber__c": "42"}
    assert decode_payload(schema, encode_payload(schema, payload)) == payload


def test_a_payload_that_does_not_fit_names_the_field() -> None:
    schema = parse_schema(PE_SCHEMA_JSON)
    with pytest.raises(ValueError, match="CreatedDate"):
        encode_payload(schema, {"CreatedDate": "yesterday", "CreatedById": "005"})


@pytest.mark.parametrize("garbage", [b"", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"])
def test_bytes_that_do_not_match_the_schema_are_a_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError, match="does not match its schema"):
        decode_payload(parse_schema(PE_SCHEMA_JSON), garbage)


def test_trailing_bytes_are_refused() -> None:
    schema = parse_schema(PE_SCHEMA_JSON)
    data = encode_payload(schema, {"CreatedDate": 1, "CreatedById": "005"})
    with pytest.raises(ValueError, match="1 bytes left"):
        decode_payload(schema, data + b"\x00")


@pytest.mark.parametrize("text", ["not json", '"string"', '{"type": "record"}'])
def test_an_invalid_schema_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        parse_schema(text)


async def test_the_cache_fetches_each_schema_once_even_when_asked_together() -> None:
    fetched: list[str] = []

    async def fetch(schema_id: str) -> str:
        fetched.append(schema_id)
        await asyncio.sleep(0.01)
        return PE_SCHEMA_JSON

    cache = SchemaCache(fetch)
    first, second = await asyncio.gather(cache.get("id1"), cache.get("id1"))
    assert first is second
    assert await cache.get("id1") is first
    assert fetched == ["id1"]
    assert cache.cached("id1") is first
    assert cache.cached("id2") is None


async def test_a_failed_fetch_is_not_cached() -> None:
    calls: list[str] = []

    async def fetch(schema_id: str) -> str:
        calls.append(schema_id)
        if len(calls) == 1:
            raise RuntimeError("down")
        return PE_SCHEMA_JSON

    cache = SchemaCache(fetch)
    with pytest.raises(RuntimeError, match="down"):
        await cache.get("id1")
    assert (await cache.get("id1"))["type"] == "record"
