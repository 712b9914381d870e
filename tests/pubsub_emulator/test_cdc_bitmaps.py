"""Change events: the header's field lists travel as bitmaps, readable by the reference's rule.

The decoder below is written from the reference's bitmap section alone, apart from the
emulator's encoder: element 0 is ``0x`` + hex over the writer schema's top-level fields (bit
*i*, counted from the least significant bit, is field *i*); ``P-0xHEX`` covers the nested
record of top-level field *P*, reported as ``Parent.Child``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing.pubsub import PubSubEmulator

from .support import (
    CDC_TOPIC,
    avro_decode,
    call_metadata,
    open_stub,
    read_events,
    schema_of,
    subscribe,
)

BITMAPS = ("changedFields", "nulledFields", "diffFields")
HEX = re.compile(r"^0x(?:[0-9A-F]{2})+$")


def set_bits(hex_text: str) -> list[int]:
    # As the Python sample does: the binary digits, reversed, so index 0 is the lowest bit.
    binary = bin(int(hex_text, 16))[2:][::-1]
    return [index for index, digit in enumerate(binary) if digit == "1"]


def nested_fields(field_type: Any) -> list[str]:
    for candidate in field_type if isinstance(field_type, list) else [field_type]:
        if isinstance(candidate, dict) and candidate.get("type") == "record":
            return [item["name"] for item in candidate["fields"]]
    raise AssertionError(f"not a compound field: {field_type}")


def decode_bitmap(schema: dict[str, Any], bitmap: list[str]) -> list[str]:
    fields = schema["fields"]
    names: list[str] = []
    for element in bitmap:
        if element.startswith("0x"):
            names.extend(fields[index]["name"] for index in set_bits(element))
        else:
            parent_text, hex_text = element.split("-", 1)
            parent = fields[int(parent_text)]
            children = nested_fields(parent["type"])
            names.extend(f"{parent['name']}.{children[index]}" for index in set_bits(hex_text))
    return names


async def delivered_change(
    pubsub: PubSubEmulator, payload: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish *payload* on the CDC topic; return the delivered record and its writer schema."""
    pubsub.publish(CDC_TOPIC, payload)
    metadata = call_metadata(pubsub.org)
    async with open_stub(pubsub) as stub:
        call = await subscribe(stub, metadata, CDC_TOPIC, num_requested=1, preset=pb.EARLIEST)
        (event,) = await read_events(call, 1)
        schema = await schema_of(stub, metadata, event.event.schema_id)
        call.cancel()
    return avro_decode(schema, event.event.payload), schema


async def test_bitmaps_decode_to_the_published_field_names(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    header = {
        "changeType": "UPDATE",
        "changedFields": ["Name", "Industry", "BillingAddress.City", "LastModifiedDate"],
        "nulledFields": ["Phone"],
        "diffFields": ["BillingAddress.Street", "BillingAddress.GeocodeAccuracy"],
    }
    record, schema = await delivered_change(
        sf_pubsub_emulator,
        {
            "ChangeEventHeader": header,
            "Name": "Acme",
            "Industry": "Energy",
            "BillingAddress": {"City": "Paris"},
            "LastModifiedDate": 1712693965000,
        },
    )
    delivered = record["ChangeEventHeader"]
    for name in BITMAPS:
        assert all(HEX.match(item.split("-", 1)[-1]) for item in delivered[name]), delivered[name]
        assert sorted(decode_bitmap(schema, delivered[name])) == sorted(header[name])
    assert record["Name"] == "Acme"
    assert record["BillingAddress"]["City"] == "Paris"
    assert record["Phone"] is None


async def test_the_top_level_bitmap_is_uppercase_hex_over_schema_order(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    schema = sf_pubsub_emulator.schema(CDC_TOPIC)
    names = [item["name"] for item in schema["fields"]]
    # Fields 1, 3 and 12: bits 0b1_0000_0000_1010 = 0x100A.
    chosen = [names[1], names[3], names[12]]
    record, _ = await delivered_change(
        sf_pubsub_emulator, {"ChangeEventHeader": {"changedFields": chosen}}
    )
    assert record["ChangeEventHeader"]["changedFields"] == ["0x100A"]


async def test_an_odd_digit_count_is_padded(sf_pubsub_emulator: PubSubEmulator) -> None:
    record, _ = await delivered_change(
        sf_pubsub_emulator, {"ChangeEventHeader": {"changedFields": ["Name"]}}
    )
    assert record["ChangeEventHeader"]["changedFields"] == ["0x02"]


async def test_the_header_is_filled_in_as_the_platform_would(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    record, schema = await delivered_change(sf_pubsub_emulator, {"Name": "Acme", "Phone": None})
    header = record["ChangeEventHeader"]
    assert header["entityName"] == "Account"
    assert header["changeType"] == "UPDATE"
    assert len(header["recordIds"]) == 1 and header["recordIds"][0].startswith("001")
    assert abs(header["commitTimestamp"] - org.now() * 1000) < 5000
    assert header["commitUser"] == org.state.users[org.credentials.username].user_id
    # An update's set fields are its changed ones; the ones set to null are nulled.
    assert decode_bitmap(schema, header["changedFields"]) == ["Name"]
    assert decode_bitmap(schema, header["nulledFields"]) == ["Phone"]
    assert header["diffFields"] == []
    ((_, _, fields),) = sf_pubsub_emulator.events(CDC_TOPIC)
    assert fields is not None
    assert fields["ChangeEventHeader"]["changedFields"] == ["Name"]


@pytest.mark.parametrize(
    "payload",
    [
        {"Nope": 1},
        {"ChangeEventHeader": {"changedFields": ["Nope"]}},
        {"ChangeEventHeader": {"changedFields": ["BillingAddress.Nope"]}},
        {"ChangeEventHeader": {"changedFields": ["Name.City"]}},
        {"ChangeEventHeader": {"changedFields": "Name"}},
        {"ChangeEventHeader": {"notAHeaderField": 1}},
        {"ChangeEventHeader": {"changeType": None}},
        {"BillingAddress": {"Planet": "Mars"}},
    ],
)
def test_unknown_or_malformed_fields_are_refused(
    sf_pubsub_emulator: PubSubEmulator, payload: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="payload"):
        sf_pubsub_emulator.publish(CDC_TOPIC, payload)
    assert sf_pubsub_emulator.events(CDC_TOPIC) == []
