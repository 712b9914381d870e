"""Bayeux error strings and the exception hierarchy."""

from __future__ import annotations

from typing import Any

import pytest

from aiosfstream.cometd import exceptions
from aiosfstream.cometd.exceptions import (
    BayeuxError,
    ClientError,
    ClientInvalidOperation,
    CometdException,
    HTTPStatusError,
    ServerError,
    TransportConnectionClosed,
    TransportError,
    TransportInvalidOperation,
    TransportTimeoutError,
    parse_error,
)
from aiosfstream.cometd.messages import InvalidMessage
from tests.cometd import samples


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("403::Unknown client", BayeuxError(403, [], "Unknown client")),
        ("402::Unknown client", BayeuxError(402, [], "Unknown client")),
        ("401:abc,def:Unknown client", BayeuxError(401, ["abc", "def"], "Unknown client")),
        (
            "401:2v1ozicqq5hbjy11wiv2c7puqxf7:Unknown client",
            BayeuxError(401, ["2v1ozicqq5hbjy11wiv2c7puqxf7"], "Unknown client"),
        ),
        ("403::Handshake denied", BayeuxError(403, [], "Handshake denied")),
        ("401::Authentication invalid", BayeuxError(401, [], "Authentication invalid")),
        ("403::", BayeuxError(403, [], "")),
        ("500:x:", BayeuxError(500, ["x"], "")),
        # Empty arguments between commas are kept: they are positional.
        ("400:a,,b:m", BayeuxError(400, ["a", "", "b"], "m")),
    ],
)
def test_parse_error_splits_code_args_and_message(error: str, expected: BayeuxError) -> None:
    assert parse_error(error) == expected


def test_parse_error_keeps_colons_in_the_message() -> None:
    text = "400::The channel you requested to subscribe to does not exist {/topic/a:b}"
    parsed = parse_error(text)
    assert parsed.code == 400
    assert parsed.args == []
    assert parsed.message == "The channel you requested to subscribe to does not exist {/topic/a:b}"
    # Only the first two colons separate fields; args stop at the second one.
    assert parse_error("401:abc:x:y:z") == BayeuxError(401, ["abc"], "x:y:z")


def test_parse_error_keeps_the_salesforce_replay_error_verbatim() -> None:
    error = samples.load(samples.REPLAY_ERROR)["error"]
    assert parse_error(error) == BayeuxError(400, [], samples.REPLAY_ERROR_MESSAGE)


def test_parse_error_accepts_multiline_messages() -> None:
    assert parse_error("500::first line\nsecond line") == BayeuxError(
        500, [], "first line\nsecond line"
    )


@pytest.mark.parametrize(
    "junk",
    [
        "Unknown client",
        "",
        "403",
        "403:Unknown client",
        "40::two digits",
        "4030::four digits",
        "abc::letters",
        " 403::leading space",
        "::no code",
    ],
)
def test_parse_error_turns_text_without_the_format_into_the_message(junk: str) -> None:
    assert parse_error(junk) == BayeuxError(None, [], junk)


@pytest.mark.parametrize(
    ("error", "message"),
    [(None, ""), (42, "42"), (4.5, "4.5"), (True, "True"), (["403::x"], "['403::x']")],
)
def test_parse_error_on_non_strings(error: object, message: str) -> None:
    assert parse_error(error) == BayeuxError(None, [], message)


def test_parse_error_on_a_dict_never_raises() -> None:
    parsed = parse_error({"code": 403})
    assert parsed.code is None
    assert parsed.args == []
    assert "403" in parsed.message


def test_server_error_exposes_the_parts_of_the_error() -> None:
    reply = samples.load(samples.UNKNOWN_CLIENT_FAYE)
    error = ServerError("Connect failed", reply)
    assert error.response is reply
    assert error.error == "401:2v1ozicqq5hbjy11wiv2c7puqxf7:Unknown client"
    assert error.error_code == 401
    assert error.error_args == ["2v1ozicqq5hbjy11wiv2c7puqxf7"]
    assert error.error_message == "Unknown client"
    assert str(error) == "Connect failed: 401:2v1ozicqq5hbjy11wiv2c7puqxf7:Unknown client"


def test_server_error_on_the_salesforce_handshake_denial() -> None:
    error = ServerError("Handshake failed", samples.load(samples.HANDSHAKE_DENIED_LIMIT))
    assert str(error) == "Handshake failed: 403::Handshake denied"
    assert error.error_code == 403
    assert error.error_args == []
    assert error.error_message == "Handshake denied"


def test_server_error_on_an_error_that_is_not_in_bayeux_form() -> None:
    error = ServerError("Subscribe failed", {"successful": False, "error": "nope"})
    assert error.error == "nope"
    assert error.error_code is None
    assert error.error_args == []
    assert error.error_message == "nope"
    assert str(error) == "Subscribe failed: nope"


@pytest.mark.parametrize(
    "response",
    [
        None,
        {"channel": "/meta/connect", "successful": False},
        {"channel": "/meta/connect", "successful": False, "error": None},
        {"channel": "/meta/connect", "successful": False, "error": 403},
        {"channel": "/meta/connect", "successful": False, "error": ["403::x"]},
    ],
)
def test_server_error_without_a_string_error(response: dict[str, Any] | None) -> None:
    error = ServerError("Connect failed", response)
    assert error.response is response
    assert error.error is None
    assert error.error_code is None
    assert error.error_args == []
    assert error.error_message is None
    assert str(error) == "Connect failed"
    assert error.args == ("Connect failed",)


def test_server_error_with_an_empty_error_string() -> None:
    error = ServerError("Connect failed", {"error": ""})
    assert error.error == ""
    assert error.error_message == ""
    assert str(error) == "Connect failed"


def test_http_status_error_keeps_the_status() -> None:
    error = HTTPStatusError("Service Unavailable", 503)
    assert error.status == 503
    assert str(error) == "Service Unavailable"


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ClientError, CometdException),
        (ClientInvalidOperation, ClientError),
        (TransportError, CometdException),
        (HTTPStatusError, TransportError),
        (TransportInvalidOperation, TransportError),
        (TransportTimeoutError, TransportError),
        (TransportConnectionClosed, TransportError),
        (ServerError, CometdException),
        (InvalidMessage, TransportError),
        (CometdException, Exception),
    ],
)
def test_hierarchy(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    ("cls", "unrelated"),
    [
        (ServerError, TransportError),
        (ServerError, ClientError),
        (TransportError, ClientError),
        (ClientError, TransportError),
        # A TransportTimeoutError must not be caught by ``except TimeoutError`` handlers
        # meant for asyncio, nor the other way round.
        (TransportTimeoutError, TimeoutError),
    ],
)
def test_branches_are_separate(cls: type[Exception], unrelated: type[Exception]) -> None:
    assert not issubclass(cls, unrelated)


def test_every_exported_error_derives_from_cometd_exception() -> None:
    for name in exceptions.__all__:
        obj = getattr(exceptions, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, CometdException), name
