"""Salesforce's error rules, fed with the reply shapes Salesforce really sends."""

from __future__ import annotations

import pytest

from aiosfstream.cometd.exceptions import ServerError
from aiosfstream.cometd.protocol import Action
from aiosfstream.policy import (
    LIMIT_BACKOFF_SCALE,
    backoff_scale,
    check_api_version,
    cometd_url,
    failure_action,
    failure_reason,
    is_invalid_replay_error,
)

AUTH_INVALID_ON_CONNECT = {
    "clientId": "1q1ib66fvm7kli1gfoauu95i78g",
    "advice": {"reconnect": "none", "interval": 0},
    "channel": "/meta/connect",
    "id": 7,
    "error": "401::Authentication invalid",
    "successful": False,
}
HANDSHAKE_DENIED_401 = {
    "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}},
    "advice": {"reconnect": "none"},
    "channel": "/meta/handshake",
    "error": "403::Handshake denied",
    "successful": False,
}
UNKNOWN_CLIENT = {
    "advice": {"interval": 0, "reconnect": "handshake"},
    "channel": "/meta/connect",
    "id": "304",
    "error": "403::Unknown client",
    "successful": False,
}
CONNECTION_LIMIT = {
    "channel": "/meta/handshake",
    "id": "1",
    "error": "403::Handshake denied",
    "successful": False,
    "advice": {"reconnect": "none"},
    "ext": {
        "sfdc": {
            "failureReason": "403::To protect all customers from excessive use and Denial "
            "of Service attacks, we limit the number of simultaneous connections per server.  "
            "Your request has been denied because this limit has been exceeded.  Please try "
            "your request again later."
        },
        "replay": True,
        "payload.format": True,
    },
}
TOO_BUSY_ON_CONNECT = {
    "channel": "/meta/connect",
    "id": "6",
    "error": "401::Authentication invalid",
    "successful": False,
    "ext": {
        "sfdc": {"failureReason": "503::Server is too busy.  Please try your request again later."}
    },
    "clientId": "b1unwa43ckd43m16v60gs6v2yv7",
    "advice": {"reconnect": "none", "interval": 0},
}
INVALID_REPLAY = {
    "clientId": "i9lforkm2jvg2z19w4a0vngqcao",
    "channel": "/meta/subscribe",
    "id": "79017b98",
    "subscription": "/data/ChangeEvents",
    "error": "400::The replayId {1} you provided was invalid.  Please provide a valid ID, -2 to "
    "replay all events, or -1 to replay only new events.",
    "successful": False,
}


def test_authentication_invalid_on_connect_means_reauthenticate() -> None:
    assert failure_action(AUTH_INVALID_ON_CONNECT, Action.FAIL) is Action.REAUTHENTICATE


def test_handshake_denied_for_401_means_reauthenticate() -> None:
    assert failure_action(HANDSHAKE_DENIED_401, Action.FAIL) is Action.REAUTHENTICATE


def test_unknown_client_keeps_the_generic_handshake_decision() -> None:
    assert failure_action(UNKNOWN_CLIENT, Action.HANDSHAKE) is Action.HANDSHAKE


def test_faye_style_unknown_client_is_not_an_auth_failure() -> None:
    reply = {"channel": "/meta/connect", "successful": False, "error": "401:abc:Unknown client"}
    assert failure_action(reply, Action.HANDSHAKE) is Action.HANDSHAKE


@pytest.mark.parametrize("reply", [CONNECTION_LIMIT, TOO_BUSY_ON_CONNECT])
def test_limits_are_retried_later_not_fatal(reply: dict[str, object]) -> None:
    assert failure_action(reply, Action.FAIL) is Action.HANDSHAKE
    assert backoff_scale(reply) == LIMIT_BACKOFF_SCALE


def test_limit_on_connect_with_retry_advice_keeps_connecting() -> None:
    reply = {**TOO_BUSY_ON_CONNECT, "advice": {"reconnect": "retry"}}
    assert failure_action(reply, Action.CONNECT) is Action.CONNECT


def test_ordinary_errors_back_off_normally() -> None:
    assert backoff_scale(UNKNOWN_CLIENT) == 1.0
    assert backoff_scale(None) == 1.0


def test_failure_reason() -> None:
    assert failure_reason(HANDSHAKE_DENIED_401) == "401::Authentication invalid"
    assert failure_reason(UNKNOWN_CLIENT) == ""
    assert failure_reason({"ext": {"sfdc": "junk"}}) == ""


def test_invalid_replay_error_is_recognised() -> None:
    assert is_invalid_replay_error(ServerError("Subscribe failed", INVALID_REPLAY))
    missing_channel = {
        **INVALID_REPLAY,
        "error": "400::The channel you requested to subscribe to does not exist {/topic/X}",
    }
    assert not is_invalid_replay_error(ServerError("Subscribe failed", missing_channel))


@pytest.mark.parametrize(("given", "expected"), [("66.0", "66.0"), (52, "52.0"), (45.0, "45.0")])
def test_api_version_is_normalised(given: object, expected: str) -> None:
    assert check_api_version(given) == expected


@pytest.mark.parametrize("given", ["36.0", "66", "v66.0", "66.1", 12])
def test_bad_api_versions_raise_value_error(given: object) -> None:
    with pytest.raises(ValueError, match="api_version"):
        check_api_version(given)


@pytest.mark.parametrize("given", [None, True, ["66.0"]])
def test_api_version_of_wrong_type_raises_type_error(given: object) -> None:
    with pytest.raises(TypeError, match="api_version"):
        check_api_version(given)


def test_cometd_url() -> None:
    assert cometd_url("https://acme.my.salesforce.com/", "66.0") == (
        "https://acme.my.salesforce.com/cometd/66.0"
    )
