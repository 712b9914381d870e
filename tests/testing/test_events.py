"""Shapes of the event messages built by :mod:`aiosfstream.testing.events`."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from aiosfstream.testing.events import (
    IdFactory,
    build_event_message,
    cdc_entity_name,
    format_datetime,
    salesforce_id,
)

CREATED = 1459269608.208  # 2016-03-29T16:40:08.208Z
USER = "005D0000001cSZsIAM"
DATE_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def build(channel: str, payload: Any = None, **options: Any) -> dict[str, Any]:
    return build_event_message(
        channel,
        13,
        CREATED,
        payload,
        schema_id="dffQ2QLzDNHqwB8_sHMxdA",
        user_id=USER,
        ids=IdFactory(),
        **options,
    )


def test_format_datetime() -> None:
    assert format_datetime(CREATED) == "2016-03-29T16:40:08.208Z"
    assert format_datetime(CREATED, millis=False) == "2016-03-29T16:40:08Z"


def test_salesforce_id_checksum() -> None:
    value = salesforce_id("001", 123456)
    assert len(value) == 18
    assert value.startswith("001")
    # The suffix only depends on which of the first 15 characters are upper case.
    body = value[:15]
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, c in enumerate(body[start : start + 5]) if c.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    assert value[15:] == suffix
    assert salesforce_id("001", 1) != salesforce_id("001", 2)


def test_pushtopic_message() -> None:
    message = build("/topic/InvoiceStatementUpdates", {"Name": "INV-0001"}, event_type="updated")
    assert message["channel"] == "/topic/InvoiceStatementUpdates"
    assert message["data"]["event"] == {
        "createdDate": "2016-03-29T16:40:08.208Z",
        "replayId": 13,
        "type": "updated",
    }
    sobject = message["data"]["sobject"]
    assert sobject["Name"] == "INV-0001"
    assert sobject["Id"].startswith("001")
    assert build("/topic/X")["data"]["event"]["type"] == "created"


@pytest.mark.parametrize(
    ("payload", "text"),
    [("This is a message.", "This is a message."), ({"a": 1}, '{"a": 1}'), (None, "")],
)
def test_generic_message(payload: Any, text: str) -> None:
    message = build("/u/TestStreaming", payload)
    assert message == {
        "channel": "/u/TestStreaming",
        "data": {
            "event": {"createdDate": "2016-03-29T16:40:08.208Z", "replayId": 13},
            "payload": text,
        },
    }


def test_platform_event_message() -> None:
    message = build("/event/Low_Ink__e", {"Printer_Model__c": "XZO-5"})
    data = message["data"]
    assert data["schema"] == "dffQ2QLzDNHqwB8_sHMxdA"
    assert data["payload"] == {
        "CreatedDate": "2016-03-29T16:40:08.208Z",
        "CreatedById": USER[:15],
        "Printer_Model__c": "XZO-5",
    }
    assert data["event"]["replayId"] == 13
    uuid.UUID(data["event"]["EventUuid"])


def test_change_event_message() -> None:
    message = build("/data/AccountChangeEvent", {"Name": "Acme"})
    data = message["data"]
    assert data["event"] == {"replayId": 13}
    assert data["schema"] == "dffQ2QLzDNHqwB8_sHMxdA"
    payload = data["payload"]
    header = payload["ChangeEventHeader"]
    assert header["entityName"] == "Account"
    assert header["changeType"] == "CREATE"
    assert header["commitTimestamp"] == 1459269608208
    assert isinstance(header["commitTimestamp"], int)
    assert header["commitUser"] == USER
    assert header["recordIds"][0].startswith("001")
    assert header["isTransactionEnd"] is True
    assert payload["Name"] == "Acme"
    assert payload["CreatedDate"] == "2016-03-29T16:40:08Z"
    json.dumps(message)


def test_change_event_header_override() -> None:
    payload = {"Name": "New", "ChangeEventHeader": {"recordIds": ["001xx"], "sequenceNumber": 2}}
    message = build("/data/ChangeEvents", payload, event_type="update")
    header = message["data"]["payload"]["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert header["recordIds"] == ["001xx"]
    assert header["sequenceNumber"] == 2
    assert header["changedFields"] == ["Name"]
    assert "CreatedDate" not in message["data"]["payload"]


@pytest.mark.parametrize(
    ("channel", "entity"),
    [
        ("/data/AccountChangeEvent", "Account"),
        ("/data/Invoice__ChangeEvent", "Invoice__c"),
        ("/data/ChangeEvents", "Account"),
        ("/data/Sales__chn", "Account"),
    ],
)
def test_cdc_entity_name(channel: str, entity: str) -> None:
    assert cdc_entity_name(channel) == entity


def test_raw_message() -> None:
    message = build("/topic/X", {"sobject": {"Id": "x"}}, raw=True)
    assert message == {
        "channel": "/topic/X",
        "data": {"sobject": {"Id": "x"}, "event": {"replayId": 13}},
    }


def test_payload_must_be_a_mapping() -> None:
    with pytest.raises(TypeError):
        build("/event/X__e", ["not", "a", "mapping"])


def test_dates_have_milliseconds() -> None:
    assert DATE_MS.match(build("/topic/X")["data"]["event"]["createdDate"])
