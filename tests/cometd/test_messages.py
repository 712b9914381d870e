"""Channel names and the validation of decoded response bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiosfstream.cometd.constants import MetaChannel
from aiosfstream.cometd.exceptions import TransportError
from aiosfstream.cometd.messages import (
    InvalidMessage,
    check_channel,
    is_event,
    is_meta,
    is_meta_channel,
    validate_payload,
)
from aiosfstream.typing import Message
from tests.cometd import samples

# -- check_channel -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "channel",
    [
        "/topic/InvoiceStatementUpdates",
        "/event/Low_Ink__e",
        "/data/ChangeEvents",
        "/u/notifications/Channel",
        "/topic/TestAccount?Type=Technology Partner&Phone=(415) 555-1212",
        "/a",
        "/meta/connect",
    ],
)
def test_check_channel_returns_valid_names(channel: str) -> None:
    assert check_channel(channel) is channel
    assert check_channel(channel, allow_wildcards=False) is channel


@pytest.mark.parametrize("channel", [None, 1, b"/topic/x", ["/topic/x"], MetaChannel])
def test_check_channel_rejects_non_strings(channel: object) -> None:
    with pytest.raises(TypeError, match="channel must be a str"):
        check_channel(channel)


@pytest.mark.parametrize("channel", ["", "/", "topic/x", " /topic/x", "*", "\\topic"])
def test_check_channel_rejects_bad_names(channel: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        check_channel(channel)


@pytest.mark.parametrize("channel", ["/topic/*", "/topic/**", "/*"])
def test_check_channel_wildcards(channel: str) -> None:
    assert check_channel(channel) == channel
    with pytest.raises(ValueError, match="wildcards"):
        check_channel(channel, allow_wildcards=False)


def test_meta_channel_members_are_valid_channels() -> None:
    for channel in MetaChannel:
        assert check_channel(channel) == channel.value


# -- validate_payload ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        # Winter '27: Salesforce rejects standalone objects; a server may send one too.
        (json.loads(samples.IDLE_CONNECT), "dict"),
        (None, "NoneType"),
        ("[]", "str"),
        (1, "int"),
        (True, "bool"),
        ((), "tuple"),
    ],
)
def test_validate_payload_rejects_non_lists(payload: object, kind: str) -> None:
    with pytest.raises(InvalidMessage, match=f"array.*{kind}"):
        validate_payload(payload)


@pytest.mark.parametrize(
    ("item", "kind"), [(None, "NoneType"), (1, "int"), ("x", "str"), ([{}], "list")]
)
def test_validate_payload_rejects_non_dict_items(item: object, kind: str) -> None:
    payload = [samples.load(samples.PUSHTOPIC_EVENT), item]
    with pytest.raises(InvalidMessage, match=f"message 1 .*{kind}.*not an object"):
        validate_payload(payload)


@pytest.mark.parametrize(
    "message",
    [
        {"data": {}},
        {"channel": None, "data": {}},
        {"channel": 5, "data": {}},
        {"channel": ["/topic/x"], "data": {}},
        {"channel": "topic/x", "data": {}},
        {"channel": "", "data": {}},
        # The documented form of 403::Unknown client has no channel at all.
        json.loads(samples.UNKNOWN_CLIENT_403_DOC),
    ],
)
def test_validate_payload_rejects_missing_or_bad_channels(message: Message) -> None:
    with pytest.raises(InvalidMessage, match=r"message 0 .*no valid channel"):
        validate_payload([message])


@pytest.mark.parametrize("successful", ["true", "false", 1, 0, [], {}, 1.0])
@pytest.mark.parametrize("channel", ["/meta/connect", "/meta/disconnect", "/topic/x"])
def test_validate_payload_rejects_non_boolean_successful(successful: object, channel: str) -> None:
    with pytest.raises(InvalidMessage, match="non-boolean 'successful'"):
        validate_payload([{"channel": channel, "id": "1", "successful": successful}])


@pytest.mark.parametrize(
    "channel",
    [
        MetaChannel.HANDSHAKE.value,
        MetaChannel.CONNECT.value,
        MetaChannel.SUBSCRIBE.value,
        MetaChannel.UNSUBSCRIBE.value,
    ],
)
@pytest.mark.parametrize("successful", ["absent", None])
def test_validate_payload_rejects_meta_replies_without_successful(
    channel: str, successful: str | None
) -> None:
    message: Message = {"channel": channel, "id": "3", "clientId": "abc"}
    if successful != "absent":
        message["successful"] = successful
    with pytest.raises(InvalidMessage, match=f"reply on {channel} has no 'successful'"):
        validate_payload([message])


def test_validate_payload_accepts_a_server_disconnect_without_successful() -> None:
    payload = [{"channel": "/meta/disconnect"}]
    assert validate_payload(payload) is payload


def test_validate_payload_accepts_unknown_meta_channels_without_successful() -> None:
    payload = [{"channel": "/meta/ping", "data": 1}]
    assert validate_payload(payload) is payload


def test_validate_payload_names_the_first_bad_message() -> None:
    payload: list[Any] = [
        samples.load(samples.PUSHTOPIC_EVENT),
        samples.load(samples.IDLE_CONNECT),
        {"channel": "/meta/connect", "id": "9"},
        "junk",
    ]
    with pytest.raises(InvalidMessage, match="/meta/connect"):
        validate_payload(payload)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        [json.loads(samples.HANDSHAKE_SUCCESS)],
        [json.loads(samples.HANDSHAKE_SUCCESS_DOC)],
        [json.loads(samples.HANDSHAKE_AUTH_INVALID)],
        [json.loads(samples.HANDSHAKE_DENIED_LIMIT)],
        [json.loads(samples.FIRST_CONNECT)],
        [json.loads(sample) for sample in samples.EVENTS] + [json.loads(samples.IDLE_CONNECT)],
        [json.loads(samples.UNKNOWN_CLIENT_403)],
        [json.loads(samples.UNKNOWN_CLIENT_403_NONE)],
        [json.loads(samples.UNKNOWN_CLIENT_FAYE)],
        [json.loads(samples.UNKNOWN_CLIENT_402)],
        [json.loads(samples.CONNECT_AUTH_INVALID)],
        [json.loads(samples.CONNECT_SERVER_BUSY)],
        [json.loads(samples.CONNECT_USER_MISMATCH)],
        [json.loads(samples.SUBSCRIBE_SUCCESS)],
        [json.loads(samples.SUBSCRIBE_NO_SUCH_TOPIC)],
        [json.loads(samples.REPLAY_ERROR)],
        [json.loads(samples.SERVER_DISCONNECT)],
        [{"channel": "/service/echo", "id": "4", "successful": True}],
    ],
)
def test_validate_payload_accepts_real_payloads(payload: list[Message]) -> None:
    snapshot = json.dumps(payload)
    assert validate_payload(payload) is payload
    # Validation never modifies what it checks.
    assert json.dumps(payload) == snapshot


def test_invalid_message_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        validate_payload({})


# -- is_meta / is_event --------------------------------------------------------------------


@pytest.mark.parametrize("sample", samples.EVENTS)
def test_salesforce_events_are_events(sample: str) -> None:
    message = samples.load(sample)
    assert is_event(message)
    assert not is_meta(message)


@pytest.mark.parametrize(
    "sample",
    [
        samples.HANDSHAKE_SUCCESS,
        samples.FIRST_CONNECT,
        samples.UNKNOWN_CLIENT_403,
        samples.SUBSCRIBE_SUCCESS,
        samples.REPLAY_ERROR,
        samples.SERVER_DISCONNECT,
    ],
)
def test_meta_replies_are_meta_and_not_events(sample: str) -> None:
    message = samples.load(sample)
    assert is_meta(message)
    assert not is_event(message)


@pytest.mark.parametrize(
    ("message", "meta", "event"),
    [
        ({"channel": "/meta/connect", "data": {}}, True, False),
        ({"channel": "/meta/", "data": {}}, True, False),
        ({"channel": "/metadata/x", "data": {}}, False, True),
        ({"channel": "/meta"}, False, False),
        ({"channel": "/topic/x"}, False, False),
        ({"channel": "/topic/x", "data": None}, False, True),
        ({"channel": "/topic/x", "data": {}, "successful": True}, False, False),
        ({"channel": "/service/x", "id": "4", "successful": False}, False, False),
        ({"channel": None, "data": {}}, False, True),
        ({"channel": 5}, False, False),
        ({}, False, False),
    ],
)
def test_is_meta_and_is_event(message: Message, meta: bool, event: bool) -> None:
    assert is_meta(message) is meta
    assert is_event(message) is event


@pytest.mark.parametrize(
    ("channel", "meta"),
    [
        ("/meta/connect", True),
        ("/meta/", True),
        ("/meta/\U0010ffff", True),
        ("/meta", False),
        ("/metadata", False),
        ("/meta0", False),
        ("/meta.x", False),
        ("/topic/meta/", False),
        ("", False),
    ],
)
def test_is_meta_channel_is_a_prefix_test(channel: str, meta: bool) -> None:
    assert is_meta_channel(channel) is meta
    assert is_meta_channel(channel) is channel.startswith("/meta/")
