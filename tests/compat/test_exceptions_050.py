"""The exceptions module as 0.5.0 code uses it: ServerError's arguments, the translators."""

from __future__ import annotations

import pytest

from aiosfstream.cometd import exceptions as cometd_errors
from aiosfstream.exceptions import (
    EXCEPTION_PAIRS,
    AiosfstreamException,
    ServerError,
    TransportTimeoutError,
    translate_errors,
    translate_errors_context,
    twin_of,
)

INVALID_REPLAY = {
    "channel": "/meta/subscribe",
    "successful": False,
    "error": "400::The replayId {1} you provided was invalid.  Please provide a valid ID, "
    "-2 to replay all events, or -1 to replay only new events.",
}


def test_server_error_takes_message_and_response_by_position() -> None:
    error = ServerError("Subscribe request failed", INVALID_REPLAY)
    assert error.message == "Subscribe request failed"
    assert error.response is INVALID_REPLAY
    assert error.error_code == 400
    assert error.error_message is not None
    assert error.error_message.startswith("The replayId {1} you provided was invalid.")
    assert isinstance(error, cometd_errors.ServerError)


def test_server_error_twin_keeps_message_and_response() -> None:
    twin = twin_of(cometd_errors.ServerError("Subscribe request failed", INVALID_REPLAY))
    assert isinstance(twin, ServerError)
    assert (twin.message, twin.response) == ("Subscribe request failed", INVALID_REPLAY)


def test_every_pair_maps_a_cometd_error_to_its_subclass() -> None:
    for cometd_class, twin_class in EXCEPTION_PAIRS.items():
        assert issubclass(twin_class, cometd_class)
        assert issubclass(twin_class, AiosfstreamException)


def test_translate_errors_context() -> None:
    with pytest.raises(TransportTimeoutError, match="gone"), translate_errors_context():
        raise cometd_errors.TransportTimeoutError("gone")


async def test_translate_errors_decorates_coroutine_functions() -> None:
    @translate_errors
    async def subscribe(channel: str) -> str:
        raise cometd_errors.ServerError(f"Subscribe to {channel} failed", INVALID_REPLAY)

    with pytest.raises(ServerError, match="/topic/foo") as caught:
        await subscribe("/topic/foo")
    assert caught.value.response is INVALID_REPLAY
    assert subscribe.__name__ == "subscribe"


def test_translate_errors_decorates_plain_functions() -> None:
    @translate_errors
    def check(value: int) -> int:
        if value < 0:
            raise cometd_errors.TransportTimeoutError("too late")
        return value

    assert check(3) == 3
    with pytest.raises(TransportTimeoutError, match="too late"):
        check(-1)


def test_other_errors_pass_untouched() -> None:
    @translate_errors
    def fail() -> None:
        raise KeyError("channel")

    with pytest.raises(KeyError):
        fail()
