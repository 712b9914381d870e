"""Salesforce's error rules, fed with the reply shapes Salesforce really sends."""

from __future__ import annotations

import pytest

from aiosfstream.cometd.advice import Advice
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.exceptions import ServerError
from aiosfstream.cometd.recovery import Action, Outcome, Phase, Situation, Step
from aiosfstream.exceptions import AuthenticationError
from aiosfstream.policy import (
    SalesforceRecoveryPolicy,
    check_api_version,
    cometd_url,
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


def classify(reply: dict[str, object]) -> Outcome:
    return SalesforceRecoveryPolicy().classify_reply(reply, Advice())


def test_authentication_invalid_on_connect_means_reauthenticate() -> None:
    assert classify(AUTH_INVALID_ON_CONNECT) is Outcome.AUTHENTICATION_INVALID


def test_handshake_denied_for_401_means_reauthenticate() -> None:
    assert classify(HANDSHAKE_DENIED_401) is Outcome.AUTHENTICATION_INVALID


@pytest.mark.parametrize("advice", ["handshake", "none", "retry"])
def test_unknown_client_means_a_new_session_whatever_the_advice(advice: str) -> None:
    # Salesforce has answered it with "reconnect": "none" (faye issue 492).
    reply = {**UNKNOWN_CLIENT, "advice": {"reconnect": advice}}
    assert classify(reply) is Outcome.UNKNOWN_CLIENT
    situation = Situation(Phase.RUNNING, Step.CONNECT)
    decision = SalesforceRecoveryPolicy().decide(situation, classify(reply))
    assert decision.action is Action.HANDSHAKE


def test_faye_style_unknown_client_is_not_an_auth_failure() -> None:
    reply = {"channel": "/meta/connect", "successful": False, "error": "401:abc:Unknown client"}
    assert classify(reply) is Outcome.UNKNOWN_CLIENT


@pytest.mark.parametrize("reply", [CONNECTION_LIMIT, TOO_BUSY_ON_CONNECT])
def test_limits_are_retried_later_not_fatal(reply: dict[str, object]) -> None:
    assert classify(reply) is Outcome.OVERLOADED
    policy = SalesforceRecoveryPolicy(Backoff(initial=1.0, cap=100.0))
    for step in (Step.HANDSHAKE, Step.CONNECT):
        longer = policy.decide(Situation(Phase.RUNNING, step, jitter=0.0), Outcome.OVERLOADED)
        normal = policy.decide(Situation(Phase.RUNNING, step, jitter=0.0), Outcome.RETRY_ADVISED)
        assert longer.action is not Action.FAIL
        assert longer.delay == normal.delay * policy.long_backoff_scale


def test_a_server_disconnect_starts_a_new_session() -> None:
    policy = SalesforceRecoveryPolicy()
    for step in (Step.CONNECT, Step.RESUBSCRIBE, Step.REQUEST):
        situation = Situation(Phase.RUNNING, step)
        assert policy.decide(situation, Outcome.SERVER_DISCONNECT).action is Action.HANDSHAKE


def test_token_endpoint_errors_are_read_by_retryability() -> None:
    policy = SalesforceRecoveryPolicy()
    transient = AuthenticationError("HTTP 503", status=503, retryable=True)
    refused = AuthenticationError("refused", status=400, error="invalid_grant")
    assert policy.classify_error(transient) is Outcome.TOKEN_UNAVAILABLE
    assert policy.classify_error(refused) is Outcome.TOKEN_REFUSED


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
