"""Tests for aiosfstream.replay: markers, dates, storages and the subscribe hook."""

from __future__ import annotations

import asyncio
import copy
import pickle
import shelve
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import (
    ConstantReplayId,
    DefaultMappingStorage,
    DefaultReplayIdMixin,
    MappingStorage,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStorageContextManager,
    ReplayMarkerStoragePolicy,
    ReplayOption,
    is_newer,
    marker_from_message,
    parse_marker_date,
    storage_from,
)

if TYPE_CHECKING:
    from pathlib import Path

    from aiosfstream.typing import Message

# --- messages as the protocol reference shows them (section 5) ----------------------

PUSH_TOPIC: Message = {
    "channel": "/topic/InvoiceStatementUpdates",
    "data": {
        "event": {"createdDate": "2016-03-29T16:40:08.208Z", "replayId": 13, "type": "created"},
        "sobject": {"Name": "INV-0001", "Id": "a00D0000008o6y8IAA", "Status__c": "Open"},
    },
}
# Before API 37.0 PushTopic dates ended in +0000 instead of Z.
PUSH_TOPIC_OLD: Message = {
    "channel": "/topic/InvoiceStatementUpdates",
    "data": {
        "event": {"createdDate": "2016-03-29T16:40:08.208+0000", "replayId": 13, "type": "created"},
        "sobject": {"Name": "INV-0001"},
    },
}
GENERIC: Message = {
    "clientId": "a1ps4wpe52qytvcvbsko09tapc",
    "data": {
        "event": {"createdDate": "2016-03-29T19:05:28.334Z", "replayId": 55},
        "payload": "This is a message.",
    },
    "channel": "/u/TestStreaming",
}
PLATFORM_EVENT: Message = {
    "data": {
        "schema": "dffQ2QLzDNHqwB8_sHMxdA",
        "payload": {
            "CreatedDate": "2017-04-09T18:31:40.517Z",
            "CreatedById": "005D0000001cSZs",
            "Printer_Model__c": "XZO-5",
            "Serial_Number__c": "12345",
            "Ink_Percentage__c": 0.2,
        },
        "event": {"EventUuid": "2ec0e371-1395-457f-9275-be1b527a72f7", "replayId": 2},
    },
    "channel": "/event/Low_Ink__e",
}
PLATFORM_EVENT_NO_MILLIS: Message = {
    "data": {
        "schema": "dffQ2QLzDNHqwB8_sHMxdA",
        "payload": {"CreatedDate": "2017-04-09T18:31:40Z", "CreatedById": "005D0000001cSZs"},
        "event": {"replayId": 2},
    },
    "channel": "/event/Low_Ink__e",
}
# The earliest documented form: schema inside event, null ReplayId and Id in the payload.
PLATFORM_EVENT_EARLIEST: Message = {
    "data": {
        "payload": {
            "CreatedDate": "2017-04-09T18:31:40Z",
            "ReplayId": None,
            "Id": None,
            "Printer_Model__c": "XZO-5",
        },
        "event": {"schema": "dffQ2QLzDNHqwB8_sHMxdA", "replayId": 1},
    },
    "channel": "/event/Low_Ink__e",
}
CHANGE_EVENT: Message = {
    "data": {
        "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
        "payload": {
            "ChangeEventHeader": {
                "entityName": "Account",
                "recordIds": ["<record_ID>"],
                "changeType": "CREATE",
                "changeOrigin": "com.salesforce.core",
                "transactionKey": "001b7375-0086-250e-e6ca-b99bc3a8b69f",
                "sequenceNumber": 1,
                "isTransactionEnd": True,
                "commitTimestamp": 1501010206653,
                "commitNumber": 92847272780,
                "commitUser": "<User_ID>",
            },
            "Name": "Acme",
            "OwnerId": "<Owner_ID>",
            "CreatedDate": "2017-07-25T19:16:44Z",
            "CreatedById": "<User_ID>",
            "LastModifiedDate": "2017-07-25T19:16:44Z",
            "LastModifiedById": "<User_ID>",
        },
        "event": {"replayId": 6421},
    },
    "channel": "/data/ChangeEvents",
}


def event_message(channel: str, replay_id: int, created: str) -> Message:
    """A minimal PushTopic-shaped event."""
    return {
        "channel": channel,
        "data": {"event": {"createdDate": created, "replayId": replay_id}, "sobject": {}},
    }


def subscribe(subscription: str, **fields: Any) -> Message:
    return {
        "channel": "/meta/subscribe",
        "clientId": "41kdiuvgig2tfxdh9weakuiwyh",
        "subscription": subscription,
        **fields,
    }


# --- marker_from_message ------------------------------------------------------------


# The date of each marker is the message's text, as aiosfstream 0.5 stored it.
MARKERS = [
    pytest.param(PUSH_TOPIC, ReplayMarker("2016-03-29T16:40:08.208Z", 13), id="pushtopic"),
    pytest.param(
        PUSH_TOPIC_OLD, ReplayMarker("2016-03-29T16:40:08.208+0000", 13), id="pushtopic+0000"
    ),
    pytest.param(GENERIC, ReplayMarker("2016-03-29T19:05:28.334Z", 55), id="generic"),
    pytest.param(PLATFORM_EVENT, ReplayMarker("2017-04-09T18:31:40.517Z", 2), id="platform-event"),
    pytest.param(
        PLATFORM_EVENT_NO_MILLIS,
        ReplayMarker("2017-04-09T18:31:40Z", 2),
        id="platform-event-no-millis",
    ),
    pytest.param(
        PLATFORM_EVENT_EARLIEST,
        ReplayMarker("2017-04-09T18:31:40Z", 1),
        id="platform-event-earliest",
    ),
    # commitTimestamp, in decimal, wins over the record's own CreatedDate.
    pytest.param(CHANGE_EVENT, ReplayMarker("1501010206653", 6421), id="cdc"),
]


@pytest.mark.parametrize(("message", "expected"), MARKERS)
def test_marker_from_message(message: Message, expected: ReplayMarker) -> None:
    original = copy.deepcopy(message)
    assert marker_from_message(message) == expected
    assert message == original


@pytest.mark.parametrize(("message", "expected"), MARKERS)
def test_get_message_date_is_the_marker_date(message: Message, expected: ReplayMarker) -> None:
    assert ReplayMarkerStorage.get_message_date(message) == expected.date
    assert MappingStorage({}).get_message_date(message) == expected.date


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"channel": "/event/Foo__e", "data": {"event": {"replayId": 7}}}, id="none"),
        pytest.param({"channel": "/event/Foo__e", "data": "text"}, id="data-not-object"),
        pytest.param(
            {"channel": "/event/Foo__e", "data": {"event": {"createdDate": 5}, "payload": {}}},
            id="not-a-string",
        ),
    ],
)
def test_get_message_date_without_a_date(message: Message) -> None:
    with pytest.raises(ReplayError, match="/event/Foo__e"):
        ReplayMarkerStorage.get_message_date(message)


def test_marker_without_date_is_not_an_error() -> None:
    message: Message = {
        "channel": "/event/Foo__e",
        "data": {"event": {"replayId": 7}, "payload": {}},
    }
    assert marker_from_message(message) == ReplayMarker("", 7)


def test_marker_keeps_an_unreadable_date_as_written() -> None:
    message = event_message("/topic/Foo", 7, "yesterday-ish")
    assert marker_from_message(message) == ReplayMarker("yesterday-ish", 7)


def test_cdc_update_without_created_date_uses_commit_timestamp() -> None:
    message = copy.deepcopy(CHANGE_EVENT)
    del message["data"]["payload"]["CreatedDate"]
    message["data"]["payload"]["ChangeEventHeader"]["changeType"] = "UPDATE"
    assert marker_from_message(message).date == "1501010206653"


@pytest.mark.parametrize("timestamp", [None, True, 1.5e12, ["1501010206653"]])
def test_cdc_without_a_usable_commit_timestamp_has_no_date(timestamp: object) -> None:
    # The payload's CreatedDate is the record's: an update of an old record would look old.
    message = copy.deepcopy(CHANGE_EVENT)
    message["data"]["payload"]["ChangeEventHeader"]["commitTimestamp"] = timestamp
    assert marker_from_message(message) == ReplayMarker("", 6421)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"channel": "/topic/Foo", "data": {"event": {}}}, id="no-replay-id"),
        pytest.param({"channel": "/topic/Foo", "data": {}}, id="no-event"),
        pytest.param({"channel": "/topic/Foo"}, id="no-data"),
        pytest.param({"channel": "/topic/Foo", "data": "text"}, id="data-not-object"),
        pytest.param({"channel": "/topic/Foo", "data": {"event": {"replayId": "13"}}}, id="str-id"),
        pytest.param(
            {"channel": "/topic/Foo", "data": {"event": {"replayId": True}}}, id="bool-id"
        ),
    ],
)
def test_marker_without_replay_id_names_the_channel(message: Message) -> None:
    with pytest.raises(ReplayError, match="/topic/Foo"):
        marker_from_message(message)


# --- dates --------------------------------------------------------------------------


def test_equivalent_dates_parse_equal() -> None:
    forms = [
        "2017-07-25T19:16:46.653Z",
        "2017-07-25T19:16:46.653+0000",
        "2017-07-25T19:16:46.653+00:00",
        "2017-07-25T21:16:46.653+02:00",
        "2017-07-25T19:16:46.653000+00:00",
        "1501010206653",
    ]
    parsed = {parse_marker_date(form) for form in forms}
    assert parsed == {datetime(2017, 7, 25, 19, 16, 46, 653000, tzinfo=timezone.utc)}


def test_dates_with_and_without_millis() -> None:
    assert parse_marker_date("2017-04-09T18:31:40Z") == parse_marker_date(
        "2017-04-09T18:31:40.000+0000"
    )
    assert parse_marker_date("2017-04-09T18:31:40.001Z") > parse_marker_date(  # type: ignore[operator]
        "2017-04-09T18:31:40Z"
    )


def test_naive_date_is_utc() -> None:
    assert parse_marker_date("2017-04-09T18:31:40") == datetime(
        2017, 4, 9, 18, 31, 40, tzinfo=timezone.utc
    )


@pytest.mark.parametrize(
    "date", ["", "   ", "not a date", "2017-13-45T99:00:00Z", "\u00b2", "9" * 5000]
)
def test_unreadable_dates(date: str) -> None:
    assert parse_marker_date(date) is None


def test_epoch_millis_and_iso_markers_compare_as_dates() -> None:
    # P8: "1501010206653" must not be compared with an ISO string as text.
    cdc_stringified = ReplayMarker("1501010206653", 6421)  # as 0.5 stored CDC markers
    later_iso = ReplayMarker("2017-07-25T19:16:47Z", 6422)
    earlier_iso = ReplayMarker("2017-07-25T19:16:46Z", 6420)
    assert is_newer(later_iso, cdc_stringified)
    assert not is_newer(earlier_iso, cdc_stringified)
    assert is_newer(cdc_stringified, earlier_iso)


# --- is_newer -----------------------------------------------------------------------


def test_is_newer() -> None:
    old = ReplayMarker("2016-03-29T16:40:08.208000+00:00", 13)
    new = ReplayMarker("2016-03-29T16:40:09.000000+00:00", 14)
    assert is_newer(old, None)
    assert is_newer(new, old)
    assert not is_newer(old, new)
    assert not is_newer(old, old)


def test_is_newer_equal_dates_compare_replay_ids() -> None:
    first = ReplayMarker("2016-03-29T16:40:08.208Z", 13)
    second = ReplayMarker("2016-03-29T16:40:08.208+0000", 14)
    assert is_newer(second, first)
    assert not is_newer(first, second)


def test_is_newer_date_wins_over_replay_id() -> None:
    # Replay ids are opaque; after an org migration a newer event may have a lower id.
    older = ReplayMarker("2016-03-29T16:40:08Z", 900)
    newer = ReplayMarker("2016-03-29T16:40:09Z", 5)
    assert is_newer(newer, older)
    assert not is_newer(older, newer)


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("2016-03-29T16:40:08Z", "2016-03-29T16:40:08.001Z"),
        ("2016-03-29T16:40:08.999+0000", "2016-03-29T16:40:09Z"),
        ("2016-03-29T16:40:08.208000+00:00", "2016-03-29T16:40:08.209Z"),
        ("1459269608208", "2016-03-29T16:40:08.209Z"),
        ("2016-03-29T18:40:08.208+02:00", "2016-03-29T16:40:08.209Z"),
    ],
)
def test_is_newer_across_date_forms(earlier: str, later: str) -> None:
    assert is_newer(ReplayMarker(later, 1), ReplayMarker(earlier, 2))
    assert not is_newer(ReplayMarker(earlier, 2), ReplayMarker(later, 1))


@pytest.mark.parametrize(
    "same",
    [
        "2016-03-29T16:40:08.208+0000",
        "2016-03-29T16:40:08.208000+00:00",
        "2016-03-29T18:40:08.208+02:00",
        "1459269608208",
    ],
)
def test_is_newer_equal_dates_in_other_forms(same: str) -> None:
    first = ReplayMarker("2016-03-29T16:40:08.208Z", 13)
    assert is_newer(ReplayMarker(same, 14), first)
    assert not is_newer(ReplayMarker(same, 12), first)


def test_is_newer_missing_dates_count_as_newer() -> None:
    dated = ReplayMarker("2016-03-29T16:40:08Z", 13)
    undated = ReplayMarker("", 12)
    assert is_newer(undated, dated)
    assert is_newer(dated, undated)
    assert is_newer(ReplayMarker("", 1), ReplayMarker("", 2))
    assert is_newer(ReplayMarker("yesterday-ish", 1), dated)


# --- outgoing hook ------------------------------------------------------------------


async def test_outgoing_inserts_replay_ids() -> None:
    storage = MappingStorage({"/topic/foo": ReplayMarker("2016-03-29T16:40:08Z", 13)})
    payload = [
        subscribe("/topic/foo"),
        subscribe("/topic/bar"),
        {"channel": "/meta/connect", "clientId": "x", "connectionType": "long-polling"},
    ]
    await storage.outgoing(payload, {})
    assert payload[0]["ext"] == {"replay": {"/topic/foo": 13}}
    assert payload[1]["ext"] == {"replay": {"/topic/bar": ReplayOption.NEW_EVENTS}}
    assert "ext" not in payload[2]


async def test_outgoing_merges_with_existing_ext() -> None:
    storage = MappingStorage({"/topic/foo": ReplayMarker("2016-03-29T16:40:08Z", 13)})
    payload = [
        subscribe("/topic/foo", ext={"other": True}),
        subscribe("/topic/foo", ext={"replay": {"/topic/elsewhere": 4}}),
    ]
    await storage.outgoing(payload, {})
    assert payload[0]["ext"] == {"other": True, "replay": {"/topic/foo": 13}}
    assert payload[1]["ext"] == {"replay": {"/topic/elsewhere": 4, "/topic/foo": 13}}


async def test_outgoing_respects_a_forced_replay_id() -> None:
    storage = MappingStorage({"/topic/foo": ReplayMarker("2016-03-29T16:40:08Z", 13)})
    message = subscribe("/topic/foo", ext={"replay": {"/topic/foo": ReplayOption.ALL_EVENTS}})
    await storage.outgoing([message], {})
    assert message["ext"] == {"replay": {"/topic/foo": -2}}


async def test_outgoing_ignores_other_channels_and_malformed_subscribes() -> None:
    storage = ConstantReplayId(ReplayOption.ALL_EVENTS)
    handshake: Message = {"channel": "/meta/handshake", "ext": {"replay": True}}
    no_subscription: Message = {"channel": "/meta/subscribe"}
    event = event_message("/topic/foo", 1, "2016-03-29T16:40:08Z")
    payload = [handshake, no_subscription, event]
    original = copy.deepcopy(payload)
    await storage.outgoing(payload, {})
    assert payload == original


async def test_outgoing_filtered_pushtopic_uses_channel_marker() -> None:
    storage = MappingStorage({"/topic/foo": ReplayMarker("2016-03-29T16:40:08Z", 13)})
    message = subscribe("/topic/foo?Type=Technology Partner")
    await storage.outgoing([message], {})
    assert message["ext"] == {"replay": {"/topic/foo?Type=Technology Partner": 13}}


async def test_insert_replay_id_is_what_outgoing_does() -> None:
    storage = DefaultMappingStorage(
        {"/topic/foo": ReplayMarker("2016-03-29T16:40:08Z", 13)}, ReplayOption.ALL_EVENTS
    )
    stored, missing = subscribe("/topic/foo"), subscribe("/topic/bar", ext={"other": 1})
    await storage.insert_replay_id(stored)
    await storage.insert_replay_id(missing)
    assert stored["ext"] == {"replay": {"/topic/foo": 13}}
    assert missing["ext"] == {"other": 1, "replay": {"/topic/bar": -2}}


async def test_incoming_changes_nothing() -> None:
    storage = MappingStorage({})
    payload = [copy.deepcopy(PUSH_TOPIC)]
    await storage.incoming(payload)
    assert payload == [PUSH_TOPIC]
    assert storage.mapping == {}


# --- MappingStorage -----------------------------------------------------------------


async def test_mapping_storage_with_dict() -> None:
    mapping: dict[str, Any] = {}
    storage = MappingStorage(mapping)
    assert await storage.get_replay_marker("/topic/InvoiceStatementUpdates") is None
    assert await storage.get_replay_id("/topic/InvoiceStatementUpdates") == -1

    await storage.extract_replay_id(PUSH_TOPIC)
    marker = ReplayMarker("2016-03-29T16:40:08.208Z", 13)
    assert mapping == {"/topic/InvoiceStatementUpdates": marker}
    assert await storage.get_replay_marker("/topic/InvoiceStatementUpdates") == marker
    assert await storage.get_replay_id("/topic/InvoiceStatementUpdates") == 13


async def test_mapping_storage_with_ordered_dict() -> None:
    storage = storage_from(OrderedDict())
    assert isinstance(storage, MappingStorage)
    await storage.extract_replay_id(CHANGE_EVENT)
    assert await storage.get_replay_id("/data/ChangeEvents") == 6421


async def test_store_never_moves_the_marker_back() -> None:
    storage = MappingStorage({})
    newer = event_message("/topic/foo", 20, "2016-03-29T16:40:10Z")
    older = event_message("/topic/foo", 19, "2016-03-29T16:40:09Z")
    await storage.extract_replay_id(newer)
    await storage.extract_replay_id(older)
    assert await storage.get_replay_id("/topic/foo") == 20


async def test_extract_replay_id_without_channel() -> None:
    storage = MappingStorage({})
    with pytest.raises(ReplayError, match="no channel"):
        await storage.extract_replay_id({"data": {"event": {"replayId": 1}}})


async def test_extract_replay_id_without_replay_id_stores_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mapping: dict[str, Any] = {}
    storage = MappingStorage(mapping)
    await storage.extract_replay_id({"channel": "/topic/foo", "data": {"event": {}}})
    assert mapping == {}
    assert "replay marker not stored" in caplog.text
    assert "/topic/foo" in caplog.text


async def test_extract_replay_id_without_date_stores_the_id() -> None:
    storage = MappingStorage({})
    await storage.extract_replay_id(
        {"channel": "/event/Foo__e", "data": {"event": {"replayId": 4}}}
    )
    assert storage.mapping == {"/event/Foo__e": ReplayMarker("", 4)}


# --- calling a storage: the MANUAL policy's context manager -------------------------


async def test_calling_a_storage_stores_the_marker_when_the_block_succeeds() -> None:
    storage = MappingStorage({})
    manager = storage(PUSH_TOPIC)
    assert isinstance(manager, ReplayMarkerStorageContextManager)
    assert manager.replay_storage is storage
    assert manager.message is PUSH_TOPIC
    async with manager as entered:
        assert entered is None
        assert storage.mapping == {}  # not before the block ends
    assert storage.mapping == {
        "/topic/InvoiceStatementUpdates": ReplayMarker("2016-03-29T16:40:08.208Z", 13)
    }


class ProcessingFailed(Exception):
    pass


@pytest.mark.parametrize("error", [ProcessingFailed("boom"), asyncio.CancelledError()])
async def test_calling_a_storage_stores_nothing_when_the_block_raises(
    error: BaseException,
) -> None:
    storage = MappingStorage({"/topic/foo": ReplayMarker("2016-03-29T16:40:01Z", 1)})
    with pytest.raises(type(error)):
        async with storage(event_message("/topic/foo", 2, "2016-03-29T16:40:02Z")):
            raise error
    assert storage.mapping == {"/topic/foo": ReplayMarker("2016-03-29T16:40:01Z", 1)}


async def test_the_context_manager_is_built_on_extract_replay_id() -> None:
    # A storage that changes extract_replay_id changes what the block stores.
    class Recording(MappingStorage):
        async def extract_replay_id(self, message: Message) -> None:
            extracted.append(message)

    extracted: list[Message] = []
    storage = Recording({})
    async with storage(GENERIC):
        pass
    assert extracted == [GENERIC]
    assert storage.mapping == {}


async def test_store_cdc_after_stringified_epoch_marker() -> None:
    # A marker written by 0.5 (epoch millis as a string) is still ordered correctly.
    storage = MappingStorage({"/data/ChangeEvents": ReplayMarker("1501010206000", 6400)})
    await storage.extract_replay_id(CHANGE_EVENT)
    assert await storage.get_replay_id("/data/ChangeEvents") == 6421


async def test_mapping_storage_with_shelve(tmp_path: Path) -> None:
    path = str(tmp_path / "replay.db")
    with shelve.open(path) as shelf:
        storage = MappingStorage(shelf)
        await storage.extract_replay_id(PUSH_TOPIC)
        await storage.extract_replay_id(PLATFORM_EVENT)
    with shelve.open(path) as shelf:
        storage = MappingStorage(shelf)
        assert await storage.get_replay_marker("/topic/InvoiceStatementUpdates") == ReplayMarker(
            "2016-03-29T16:40:08.208Z", 13
        )
        assert await storage.get_replay_id("/event/Low_Ink__e") == 2
        assert await storage.get_replay_id("/topic/unknown") == ReplayOption.NEW_EVENTS
        message = subscribe("/event/Low_Ink__e")
        await storage.outgoing([message], {})
        assert message["ext"] == {"replay": {"/event/Low_Ink__e": 2}}


def test_replay_marker_pickles_like_version_0_5() -> None:
    # 0.5 stored ``namedtuple("ReplayMarker", "date, replay_id")`` in shelves with pickle
    # protocol 3; those bytes must still load.
    stored = (
        b"\x80\x03caiosfstream.replay\nReplayMarker\nq\x00X\x18\x00\x00\x00"
        b"2016-03-29T16:40:08.208Zq\x01K\r\x86q\x02\x81q\x03."
    )
    marker = pickle.loads(stored)
    assert marker == ReplayMarker("2016-03-29T16:40:08.208Z", 13)
    assert type(marker) is ReplayMarker
    assert pickle.dumps(marker, protocol=3) == stored


async def test_mapping_storage_accepts_marker_shaped_values() -> None:
    storage = MappingStorage(
        {
            "/topic/tuple": ("2016-03-29T16:40:08Z", 1),
            "/topic/list": ["2016-03-29T16:40:08Z", 2],
            "/topic/dict": {"date": "2016-03-29T16:40:08Z", "replay_id": 3},
        }
    )
    assert await storage.get_replay_marker("/topic/tuple") == ReplayMarker(
        "2016-03-29T16:40:08Z", 1
    )
    assert await storage.get_replay_id("/topic/list") == 2
    assert await storage.get_replay_id("/topic/dict") == 3


@pytest.mark.parametrize(
    "value",
    [42, "2016-03-29T16:40:08Z", ("2016-03-29T16:40:08Z",), (13, "2016"), ("d", True), object()],
)
async def test_mapping_storage_rejects_other_values(value: object) -> None:
    storage = MappingStorage({"/topic/foo": value})
    with pytest.raises(ReplayError, match="/topic/foo"):
        await storage.get_replay_marker("/topic/foo")


@pytest.mark.parametrize("mapping", [None, [], "text", {"a": 1}.items(), frozenset()])
def test_mapping_storage_type_check(mapping: Any) -> None:
    with pytest.raises(TypeError, match="MutableMapping"):
        MappingStorage(mapping)


# --- DefaultMappingStorage and ConstantReplayId -------------------------------------


async def test_default_mapping_storage() -> None:
    mapping: dict[str, Any] = {}
    storage = DefaultMappingStorage(mapping, ReplayOption.ALL_EVENTS)
    assert storage.default_id is ReplayOption.ALL_EVENTS
    assert await storage.get_replay_id("/topic/foo") == -2
    await storage.extract_replay_id(event_message("/topic/foo", 5, "2016-03-29T16:40:08Z"))
    assert await storage.get_replay_id("/topic/foo") == 5
    message = subscribe("/topic/bar")
    await storage.outgoing([message], {})
    assert message["ext"] == {"replay": {"/topic/bar": -2}}


@pytest.mark.parametrize("default_id", [-1, -2, 0, 12345])
def test_default_ids_accepted(default_id: int) -> None:
    assert DefaultMappingStorage({}, default_id).default_id == default_id
    assert ConstantReplayId(default_id).default_id == default_id


def test_plain_option_ints_become_replay_options() -> None:
    assert ConstantReplayId(-1).default_id is ReplayOption.NEW_EVENTS
    assert DefaultMappingStorage({}, -2).default_id is ReplayOption.ALL_EVENTS


@pytest.mark.parametrize(
    ("default_id", "error"),
    [(True, TypeError), ("-1", TypeError), (1.0, TypeError), (None, TypeError), (-3, ValueError)],
)
def test_default_ids_rejected(default_id: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="default_id"):
        DefaultMappingStorage({}, default_id)
    with pytest.raises(error, match="default_id"):
        ConstantReplayId(default_id)


async def test_constant_replay_id() -> None:
    storage = ConstantReplayId(ReplayOption.ALL_EVENTS)
    await storage.extract_replay_id(PUSH_TOPIC)
    assert await storage.get_replay_marker("/topic/InvoiceStatementUpdates") is None
    assert await storage.get_replay_id("/topic/InvoiceStatementUpdates") == -2
    message = subscribe("/topic/InvoiceStatementUpdates")
    await storage.outgoing([message], {})
    assert message["ext"] == {"replay": {"/topic/InvoiceStatementUpdates": -2}}


def test_the_default_id_storages_share_the_mixin() -> None:
    assert issubclass(DefaultMappingStorage, DefaultReplayIdMixin)
    assert issubclass(ConstantReplayId, DefaultReplayIdMixin)


async def test_a_storage_of_ones_own_with_the_default_id_mixin() -> None:
    class ShelfLikeStorage(DefaultReplayIdMixin, MappingStorage):
        """As 0.5 users composed their storages."""

    storage = ShelfLikeStorage(ReplayOption.ALL_EVENTS, mapping={})
    assert storage.default_id is ReplayOption.ALL_EVENTS
    assert await storage.get_replay_id("/topic/foo") == -2
    await storage.extract_replay_id(event_message("/topic/foo", 5, "2016-03-29T16:40:08Z"))
    assert await storage.get_replay_id("/topic/foo") == 5
    with pytest.raises(ValueError, match="default_id"):
        ShelfLikeStorage(-3, mapping={})
    with pytest.raises(TypeError, match="MutableMapping"):
        ShelfLikeStorage(-1, mapping=[])


def test_an_argument_no_base_class_takes_is_refused() -> None:
    with pytest.raises(TypeError):
        ConstantReplayId(-1, unexpected=True)


# --- storage_from -------------------------------------------------------------------


def test_storage_from() -> None:
    constant = storage_from(ReplayOption.ALL_EVENTS)
    assert isinstance(constant, ConstantReplayId)
    assert constant.default_id is ReplayOption.ALL_EVENTS

    mapping: dict[str, Any] = {}
    wrapped = storage_from(mapping)
    assert isinstance(wrapped, MappingStorage)
    assert wrapped.mapping is mapping

    custom = DefaultMappingStorage({}, ReplayOption.ALL_EVENTS)
    assert storage_from(custom) is custom


@pytest.mark.parametrize(
    ("replay", "match"),
    [
        (-1, "ReplayOption.NEW_EVENTS"),
        (-2, "not the int -2"),
        (42, "ConstantReplayId"),
        (True, "ReplayOption"),
        (None, "NoneType"),
        ("/topic/foo", "str"),
        ([("a", 1)], "list"),
    ],
)
def test_storage_from_rejects(replay: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        storage_from(replay)


# --- a user's own storage, as in the docs -------------------------------------------


class MyReplayMarkerStorage(ReplayMarkerStorage):
    """Like the docs' example; its "database" is a list of rows."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, ReplayMarker]] = []

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        await asyncio.sleep(0)  # a database call would yield here
        self.rows.append((subscription, replay_marker))

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        await asyncio.sleep(0)
        for channel, marker in reversed(self.rows):
            if channel == subscription:
                return marker
        return None


async def test_custom_storage() -> None:
    storage = MyReplayMarkerStorage()
    assert storage_from(storage) is storage
    assert await storage.get_replay_id("/event/Low_Ink__e") == ReplayOption.NEW_EVENTS
    await storage.extract_replay_id(PLATFORM_EVENT_NO_MILLIS)
    await storage.extract_replay_id(PLATFORM_EVENT)  # same id, later date (millis)
    assert storage.rows == [
        ("/event/Low_Ink__e", ReplayMarker("2017-04-09T18:31:40Z", 2)),
        ("/event/Low_Ink__e", ReplayMarker("2017-04-09T18:31:40.517Z", 2)),
    ]
    message = subscribe("/event/Low_Ink__e")
    await storage.outgoing([message], {})
    assert message["ext"] == {"replay": {"/event/Low_Ink__e": 2}}
    assert repr(storage) == "MyReplayMarkerStorage(default_id=<ReplayOption.NEW_EVENTS: -1>)"


async def test_concurrent_stores_keep_the_newest() -> None:
    storage = MyReplayMarkerStorage()
    messages = [event_message("/topic/foo", i, f"2016-03-29T16:40:{i:02d}Z") for i in range(10, 30)]
    await asyncio.gather(*(storage.extract_replay_id(m) for m in reversed(messages)))
    assert await storage.get_replay_id("/topic/foo") == 29


def test_storage_usable_across_event_loops() -> None:
    storage = MappingStorage({})
    asyncio.run(storage.extract_replay_id(event_message("/topic/foo", 1, "2016-03-29T16:40:01Z")))
    asyncio.run(storage.extract_replay_id(event_message("/topic/foo", 2, "2016-03-29T16:40:02Z")))
    assert storage.mapping["/topic/foo"].replay_id == 2


def test_policy_values() -> None:
    assert {policy.name for policy in ReplayMarkerStoragePolicy} == {"AUTOMATIC", "MANUAL"}


def test_replay_option_values() -> None:
    assert int(ReplayOption.NEW_EVENTS) == -1
    assert int(ReplayOption.ALL_EVENTS) == -2


# --- property: the stored marker is the newest one ----------------------------------

_instants = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(timezone.utc)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


def _format(moment: datetime, form: int) -> str:
    if form == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if form == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    if form == 2:
        shifted = moment.astimezone(timezone(timedelta(hours=-7)))
        return shifted.isoformat(timespec="milliseconds")
    return str((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1))


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(_instants, st.integers(min_value=0, max_value=10**9), st.integers(0, 3)),
        min_size=1,
        max_size=20,
    )
)
def test_stored_marker_is_always_the_newest(events: list[tuple[datetime, int, int]]) -> None:
    storage = MappingStorage({})

    async def store_all() -> None:
        for moment, replay_id, form in events:
            await storage.store_marker("/topic/foo", ReplayMarker(_format(moment, form), replay_id))

    asyncio.run(store_all())
    newest = max((moment, replay_id) for moment, replay_id, _ in events)
    stored = storage.mapping["/topic/foo"]
    assert (parse_marker_date(stored.date), stored.replay_id) == newest


@settings(deadline=None)
@given(_instants, st.integers(0, 3))
def test_every_date_form_is_kept_as_written_and_parses_back(moment: datetime, form: int) -> None:
    written = _format(moment, form)
    marker = marker_from_message(event_message("/topic/foo", 1, written))
    assert marker.date == written
    assert parse_marker_date(marker.date) == moment


# --- big replay ids, and errors that name the type received -------------------------

_SAME_DATE = "2024-05-01T12:00:00.000000+00:00"
#: Ids a dict or a shelf holds as they are: past a double's 2**53, past 64 bits, negative.
_BIG_IDS = [2**53 + 1, 2**63 - 1, 2**63, 2**64 + 1, -(2**63) - 1, 10**30, 10**5000]


async def _assert_holds_big_ids(storage: MappingStorage) -> None:
    for number, replay_id in enumerate(_BIG_IDS):
        await storage.set_replay_marker(f"/topic/{number}", ReplayMarker(_SAME_DATE, replay_id))
    for number, replay_id in enumerate(_BIG_IDS):
        assert await storage.get_replay_id(f"/topic/{number}") == replay_id
    # Equal dates: the ids decide, exactly, even one apart beyond 2**53.
    await storage.store_marker("/topic/cmp", ReplayMarker(_SAME_DATE, 2**53 + 1))
    await storage.store_marker("/topic/cmp", ReplayMarker(_SAME_DATE, 2**53))
    assert await storage.get_replay_id("/topic/cmp") == 2**53 + 1
    await storage.store_markers({"/topic/cmp": ReplayMarker(_SAME_DATE, 2**64 + 1)})
    await storage.store_markers({"/topic/cmp": ReplayMarker(_SAME_DATE, 2**64)})
    assert await storage.get_replay_id("/topic/cmp") == 2**64 + 1


async def test_a_dict_holds_replay_ids_of_any_size() -> None:
    await _assert_holds_big_ids(MappingStorage({}))


async def test_a_shelf_holds_replay_ids_of_any_size(tmp_path: Path) -> None:
    path = str(tmp_path / "big.db")
    with shelve.open(path) as shelf:
        await _assert_holds_big_ids(MappingStorage(shelf))
    with shelve.open(path) as shelf:  # and they come back from the file unchanged
        storage = MappingStorage(shelf)
        for number, replay_id in enumerate(_BIG_IDS):
            assert await storage.get_replay_id(f"/topic/{number}") == replay_id


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # The old code reported the tuple it had made out of the dict.
        (
            {"date": "2016-03-29T16:40:08Z", "replay_id": "3"},
            "(got a dict whose replay_id is a str, not an int or bytes)",
        ),
        # The old code said "got ReplayMarker": right type, wrong field.
        (
            ReplayMarker("2016-03-29T16:40:08Z", True),
            "(got a ReplayMarker whose replay_id is a bool, not an int or bytes)",
        ),
        ((b"2016-03-29T16:40:08Z", 1), "(got a tuple whose date is a bytes, not a str)"),
        (
            ["2016-03-29T16:40:08Z", 1.0],
            "(got a list whose replay_id is a float, not an int or bytes)",
        ),
        (("2016-03-29T16:40:08Z",), "(got a tuple of length 1)"),
        (42, "(got int)"),
    ],
)
async def test_a_stored_value_that_is_not_a_marker_is_described_exactly(
    value: object, message: str
) -> None:
    storage = MappingStorage({"/topic/foo": value})
    with pytest.raises(ReplayError) as caught:
        await storage.get_replay_marker("/topic/foo")
    assert str(caught.value) == f"stored value for '/topic/foo' is not a replay marker {message}"


async def test_mapping_storage_refuses_bad_markers_naming_the_type_received() -> None:
    # The old code stored every one of these, and the channel's marker could not be
    # read any more.
    mapping: dict[str, Any] = {}
    storage = MappingStorage(mapping)
    with pytest.raises(TypeError) as caught:
        await storage.set_replay_marker("/topic/foo", ReplayMarker(_SAME_DATE, True))
    assert str(caught.value) == "replay_marker.replay_id must be an int or bytes, got bool"
    with pytest.raises(TypeError) as caught:
        await storage.store_marker("/topic/foo", (_SAME_DATE, "7"))  # type: ignore[arg-type]
    assert str(caught.value) == "marker.replay_id must be an int or bytes, got str"
    with pytest.raises(TypeError) as caught:
        await storage.store_marker("/topic/foo", 7)  # type: ignore[arg-type]
    assert str(caught.value) == "marker must be a ReplayMarker, got int"
    batch: Any = {"/topic/a": ReplayMarker(_SAME_DATE, 1), "/topic/b": (b"2024", 2)}
    with pytest.raises(TypeError) as caught:
        await storage.store_markers(batch)
    assert str(caught.value) == "markers['/topic/b'].date must be a str, got bytes"
    with pytest.raises(TypeError) as caught:
        await storage.store_markers([("/topic/a", ReplayMarker(_SAME_DATE, 1))])  # type: ignore[arg-type]
    assert str(caught.value) == "markers must be a Mapping, got list"
    assert mapping == {}  # the good marker of the refused batch was not stored either
    await storage.store_marker("/topic/foo", (_SAME_DATE, 7))  # type: ignore[arg-type]
    assert type(mapping["/topic/foo"]) is ReplayMarker


def test_a_default_id_too_long_to_print_is_described() -> None:
    # The old code failed to format the id itself: "Exceeds the limit (4300 digits)".
    with pytest.raises(ValueError, match="default_id") as caught:
        DefaultMappingStorage({}, -(10**5000))
    assert str(caught.value) == (
        "default_id must be -2, -1 or a replay id (>= 0), got <a negative 16610-bit integer>"
    )


# --- Pub/Sub's bytes replay ids -----------------------------------------------------

_PUBSUB_ID = (18098167).to_bytes(8, "big")


@pytest.mark.parametrize(
    ("candidate_date", "current_date"),
    [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:09Z"),  # an older date
        ("2024-05-01T12:00:09Z", "2024-05-01T12:00:00Z"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000+0000"),  # the same instant
        ("", "2024-05-01T12:00:00Z"),
        ("2024-05-01T12:00:00Z", ""),
    ],
)
def test_a_bytes_marker_is_newer_than_any_stored_one(
    candidate_date: str, current_date: str
) -> None:
    # Bytes ids are never compared, and dates do not stand in for them: the last one
    # stored is the newest.
    assert is_newer(ReplayMarker(candidate_date, b"\x01"), ReplayMarker(current_date, b"\x02"))
    assert is_newer(ReplayMarker(candidate_date, b"\x02"), ReplayMarker(current_date, b"\x01"))
    assert is_newer(ReplayMarker(candidate_date, b"\x01"), ReplayMarker(current_date, b"\x01"))
    # A change of kind (a channel moving between CometD and Pub/Sub) replaces as well.
    assert is_newer(ReplayMarker(candidate_date, b"\x01"), ReplayMarker(current_date, 900))
    assert is_newer(ReplayMarker(candidate_date, 900), ReplayMarker(current_date, b"\x01"))


def test_ids_of_each_kind_are_never_compared_with_each_other() -> None:
    # b"\x01" > 2 would raise TypeError: the rule must not reach a comparison.
    same = "2024-05-01T12:00:00Z"
    assert is_newer(ReplayMarker(same, 2), ReplayMarker(same, b"\x01"))
    assert is_newer(ReplayMarker(same, b"\x01"), ReplayMarker(same, 2))


@settings(deadline=None)
@given(st.lists(st.tuples(_instants, st.binary(min_size=1, max_size=12)), min_size=1, max_size=20))
def test_the_stored_bytes_marker_is_always_the_last(events: list[tuple[datetime, bytes]]) -> None:
    storage = MappingStorage({})

    async def store_all() -> None:
        for moment, replay_id in events:
            marker = ReplayMarker(moment.isoformat(timespec="milliseconds"), replay_id)
            await storage.store_marker("/event/E__e", marker)

    asyncio.run(store_all())
    last_moment, last_id = events[-1]
    assert storage.mapping["/event/E__e"] == (
        last_moment.isoformat(timespec="milliseconds"),
        last_id,
    )


def test_a_bytes_marker_pickles_and_loads_as_it_was() -> None:
    marker = ReplayMarker("2024-05-01T12:00:00.000Z", _PUBSUB_ID)
    loaded = pickle.loads(pickle.dumps(marker, protocol=3))
    assert loaded == marker
    assert type(loaded) is ReplayMarker
    assert type(loaded.replay_id) is bytes


async def test_a_shelf_keeps_both_kinds_across_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "replay.db")
    with shelve.open(path) as shelf:
        storage = MappingStorage(shelf)
        await storage.extract_replay_id(PUSH_TOPIC)
        await storage.store_marker("/event/Order_Event__e", ReplayMarker("", _PUBSUB_ID))
    with shelve.open(path) as shelf:
        storage = MappingStorage(shelf)
        assert await storage.get_replay_id("/topic/InvoiceStatementUpdates") == 13
        replay_id = await storage.get_replay_id("/event/Order_Event__e")
        assert replay_id == _PUBSUB_ID
        assert type(replay_id) is bytes


async def test_marker_shaped_values_with_bytes_ids_are_read() -> None:
    # What a JSON-less store of one's own might give back: tuples, lists, mappings.
    storage = MappingStorage(
        {
            "/event/tuple": ("2024-05-01T12:00:00Z", b"\x01"),
            "/event/list": ["2024-05-01T12:00:00Z", b"\x02"],
            "/event/dict": {"date": "", "replay_id": b"\x03"},
        }
    )
    assert await storage.get_replay_marker("/event/tuple") == ("2024-05-01T12:00:00Z", b"\x01")
    assert await storage.get_replay_id("/event/list") == b"\x02"
    assert await storage.get_replay_id("/event/dict") == b"\x03"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (("2024", b""), "(got a tuple whose replay_id is empty bytes)"),
        (
            ("2024", bytearray(b"\x01")),
            "(got a tuple whose replay_id is a bytearray, not an int or bytes)",
        ),
        (
            {"date": "2024", "replay_id": memoryview(b"\x01")},
            "(got a dict whose replay_id is a memoryview, not an int or bytes)",
        ),
    ],
    ids=["empty", "bytearray", "memoryview"],
)
async def test_a_stored_id_of_neither_kind_is_described(value: object, message: str) -> None:
    storage = MappingStorage({"/event/E__e": value})
    with pytest.raises(ReplayError) as caught:
        await storage.get_replay_marker("/event/E__e")
    assert str(caught.value) == f"stored value for '/event/E__e' is not a replay marker {message}"


async def test_cometd_subscribes_with_the_default_id_over_a_pubsub_marker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Pub/Sub topic and a CometD channel can share a name, and so a storage entry; the
    # bytes id means nothing to CometD (and could not even be written as JSON).
    storage = DefaultMappingStorage(
        {
            "/event/Order_Event__e": ReplayMarker("", _PUBSUB_ID),
            "/topic/foo": ReplayMarker("2016-03-29T16:40:08Z", 13),
        },
        ReplayOption.ALL_EVENTS,
    )
    payload = [subscribe("/event/Order_Event__e"), subscribe("/topic/foo")]
    await storage.outgoing(payload, {})
    assert payload[0]["ext"] == {"replay": {"/event/Order_Event__e": ReplayOption.ALL_EVENTS}}
    assert payload[1]["ext"] == {"replay": {"/topic/foo": 13}}
    assert "'/event/Order_Event__e' comes from the Pub/Sub API" in caplog.text
    assert caplog.records[0].levelname == "WARNING"
    # The marker itself is left for the Pub/Sub client.
    assert await storage.get_replay_id("/event/Order_Event__e") == _PUBSUB_ID


@pytest.mark.parametrize("default_id", [b"\x01", bytearray(b"\x01")])
def test_a_default_id_is_never_bytes(default_id: object) -> None:
    # default_id keeps its CometD meaning: a replay option or a CometD replay id.
    with pytest.raises(TypeError, match="default_id must be an int or a ReplayOption"):
        DefaultMappingStorage({}, default_id)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="default_id must be an int or a ReplayOption"):
        ConstantReplayId(default_id)  # type: ignore[arg-type]


def test_a_cometd_message_with_a_bytes_replay_id_has_no_marker() -> None:
    # CometD events carry ints; JSON has no bytes, so a bytes id there is not CometD's.
    message: Message = {"channel": "/topic/Foo", "data": {"event": {"replayId": b"\x01"}}}
    with pytest.raises(ReplayError, match=r"no integer data\.event\.replayId"):
        marker_from_message(message)


# --- messages of the Pub/Sub client -------------------------------------------------

# The shape aiosfstream.pubsub.messages.make_message builds; dates are epoch milliseconds.
PUBSUB_ORDER: Message = {
    "topic": "/event/Order_Event__e",
    "replay_id": _PUBSUB_ID,
    "event_id": "5e7b3e0c-6a4b-4f38-9a8e-1f0d2c3b4a59",
    "schema_id": "dffQ2QLzDNHqwB8_sHMxdA",
    "payload": {"CreatedDate": 1764747000123, "CreatedById": "005xx", "OrderNumber__c": "42"},
}
PUBSUB_ACCOUNT_CHANGE: Message = {
    "topic": "/data/AccountChangeEvent",
    "replay_id": b"\x00\x00\x00\x00\x00\x00\x01\x07",
    "event_id": "0b6f0c7d-2a8e-4c55-bb0e-6c8f1a2e3d4f",
    "schema_id": "Jc6QvCj3cbwzMybhdPbWMg",
    "payload": {
        # The record's creation, long before the change: not the event's date.
        "CreatedDate": 1262304000000,
        "ChangeEventHeader": {
            "entityName": "Account",
            "changeType": "UPDATE",
            "commitTimestamp": 1764747001456,
            "changedFields": ["Name", "LastModifiedDate"],
        },
        "Name": "Acme",
    },
}


def pubsub_message(topic: str, replay_id: bytes, payload: dict[str, Any]) -> Message:
    """A Pub/Sub event as the client hands it over."""
    return {
        "topic": topic,
        "replay_id": replay_id,
        "event_id": "",
        "schema_id": "",
        "payload": payload,
    }


PUBSUB_MARKERS = [
    pytest.param(PUBSUB_ORDER, ReplayMarker("1764747000123", _PUBSUB_ID), id="platform-event"),
    pytest.param(
        PUBSUB_ACCOUNT_CHANGE,
        ReplayMarker("1764747001456", b"\x00\x00\x00\x00\x00\x00\x01\x07"),
        id="cdc",
    ),
]


@pytest.mark.parametrize(("message", "expected"), PUBSUB_MARKERS)
def test_marker_from_a_pubsub_message(message: Message, expected: ReplayMarker) -> None:
    original = copy.deepcopy(message)
    marker = marker_from_message(message)
    assert marker == expected
    assert type(marker.replay_id) is bytes
    assert message == original


@pytest.mark.parametrize(("message", "expected"), PUBSUB_MARKERS)
def test_a_pubsub_date_reads_as_the_same_moment(message: Message, expected: ReplayMarker) -> None:
    millis = int(expected.date)
    assert parse_marker_date(
        ReplayMarkerStorage.get_message_date(message)
    ) == datetime.fromtimestamp(millis / 1000, timezone.utc)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="none"),
        pytest.param({"CreatedDate": None}, id="null"),
        pytest.param({"CreatedDate": True}, id="bool"),
        pytest.param({"ChangeEventHeader": {"commitTimestamp": None}, "CreatedDate": 5}, id="cdc"),
    ],
)
def test_a_pubsub_message_without_a_date(payload: dict[str, Any]) -> None:
    message = pubsub_message("/event/Foo__e", b"\x01", payload)
    assert marker_from_message(message) == ReplayMarker("", b"\x01")
    with pytest.raises(ReplayError, match="message on topic '/event/Foo__e' has no creation date"):
        ReplayMarkerStorage.get_message_date(message)


@pytest.mark.parametrize(
    ("replay_id", "kind"),
    [
        (None, "NoneType"),
        (b"", "bytes"),
        (7, "int"),
        (bytearray(b"\x01"), "bytearray"),
        ("AAAAAAE=", "str"),
    ],
)
def test_a_pubsub_message_without_a_bytes_replay_id(replay_id: object, kind: str) -> None:
    message = {**PUBSUB_ORDER, "replay_id": replay_id}
    with pytest.raises(ReplayError) as caught:
        marker_from_message(message)
    assert str(caught.value) == (
        f"message on topic '/event/Order_Event__e' has no bytes replay_id (got {kind})"
    )


@pytest.mark.parametrize("message", [None, "text", [PUBSUB_ORDER], ("topic", b"\x01")])
async def test_a_message_that_is_not_a_dict_is_a_type_error(message: Any) -> None:
    storage = MappingStorage({})
    expected = f"message must be a dict, got {type(message).__name__}"
    with pytest.raises(TypeError, match=expected):
        marker_from_message(message)
    with pytest.raises(TypeError, match=expected):
        ReplayMarkerStorage.get_message_date(message)
    with pytest.raises(TypeError, match=expected):
        await storage.extract_replay_id(message)
    with pytest.raises(TypeError, match=expected):
        async with storage(message):
            pass
    assert storage.mapping == {}


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({}, id="empty"),
        pytest.param({"replay_id": b"\x01", "payload": {}}, id="pubsub-without-topic"),
        pytest.param({"clientId": "x", "successful": True}, id="meta-reply"),
    ],
)
async def test_a_message_of_neither_client_is_a_replay_error(message: Message) -> None:
    storage = MappingStorage({})
    with pytest.raises(ReplayError, match=r"no channel and no data .* and no topic"):
        marker_from_message(message)
    with pytest.raises(ReplayError, match=r"no channel and no data .* and no topic"):
        await storage.extract_replay_id(message)
    assert storage.mapping == {}


async def test_a_pubsub_topic_that_is_not_text_is_a_replay_error() -> None:
    storage = MappingStorage({})
    with pytest.raises(ReplayError, match="message has no topic"):
        await storage.extract_replay_id({**PUBSUB_ORDER, "topic": None})
    assert storage.mapping == {}


async def test_one_storage_keeps_the_markers_of_both_clients() -> None:
    storage = MappingStorage({})
    await storage.extract_replay_id(PUSH_TOPIC)
    await storage.extract_replay_id(PUBSUB_ORDER)
    async with storage(PUBSUB_ACCOUNT_CHANGE):
        pass
    assert storage.mapping == {
        "/topic/InvoiceStatementUpdates": ReplayMarker("2016-03-29T16:40:08.208Z", 13),
        "/event/Order_Event__e": ReplayMarker("1764747000123", _PUBSUB_ID),
        "/data/AccountChangeEvent": ReplayMarker(
            "1764747001456", b"\x00\x00\x00\x00\x00\x00\x01\x07"
        ),
    }
    assert await storage.get_replay_id("/event/Order_Event__e") == _PUBSUB_ID


async def test_the_last_pubsub_marker_stored_wins_whatever_its_date() -> None:
    # Pub/Sub ids are ordered by arrival (is_newer): an earlier CreatedDate stored later
    # still moves the position on.
    storage = MappingStorage({})
    topic = "/event/Order_Event__e"
    await storage.extract_replay_id(pubsub_message(topic, b"\x01", {"CreatedDate": 2_000}))
    await storage.extract_replay_id(pubsub_message(topic, b"\x02", {"CreatedDate": 1_000}))
    assert storage.mapping[topic] == ReplayMarker("1000", b"\x02")


async def test_a_failed_block_stores_no_pubsub_marker() -> None:
    storage = MappingStorage({})
    with pytest.raises(RuntimeError):
        async with storage(PUBSUB_ORDER):
            raise RuntimeError("processing failed")
    assert storage.mapping == {}


async def test_a_pubsub_message_without_an_id_stores_nothing_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = MappingStorage({})
    await storage.extract_replay_id({**PUBSUB_ORDER, "replay_id": b""})
    assert storage.mapping == {}
    assert "replay marker not stored" in caplog.text
    assert "/event/Order_Event__e" in caplog.text


def test_a_message_with_a_channel_is_read_as_cometd_even_with_a_topic() -> None:
    # The CometD shape wins: a channel names where CometD delivered it.
    message = {**PUSH_TOPIC, "topic": "/event/Order_Event__e"}
    assert marker_from_message(message) == ReplayMarker("2016-03-29T16:40:08.208Z", 13)
