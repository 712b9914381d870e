"""Salesforce's reading of Bayeux errors and its recovery rules: pure decisions, no I/O.

Each rule quotes the Salesforce documentation it implements
("Handling Errors" and "Streaming API Error Codes" of the Streaming API guide).
"""

from __future__ import annotations

import re
from typing import Any

from aiosfstream.cometd.advice import Advice
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.exceptions import ServerError, parse_error
from aiosfstream.cometd.recovery import (
    BAYEUX_TABLE,
    Action,
    Delay,
    Outcome,
    RecoveryPolicy,
    Rule,
    Step,
    Table,
)
from aiosfstream.exceptions import AuthenticationError
from aiosfstream.typing import Message

__all__ = [
    "DEFAULT_API_VERSION",
    "MINIMUM_API_VERSION",
    "SALESFORCE_TABLE",
    "SalesforceRecoveryPolicy",
    "check_api_version",
    "cometd_url",
    "failure_reason",
    "is_invalid_replay_error",
]

#: The API version used when none is given.
DEFAULT_API_VERSION = "66.0"
#: "Unsupported API version. Only API versions '37.0' and later are supported."
MINIMUM_API_VERSION = 37.0

_VERSION_PATTERN = re.compile(r"^\d{2,3}\.0$")
# Errors that mean "try again later" rather than "give up".
_RETRY_LATER = (
    "organization concurrent user limit exceeded",
    "server is too busy",
    "we limit the number of simultaneous connections",
)


def check_api_version(version: object) -> str:
    """Return *version* as Salesforce writes it (``"66.0"``), or raise."""
    if isinstance(version, bool) or not isinstance(version, str | int | float):
        raise TypeError(f"api_version must be a str such as '66.0', not {type(version).__name__}")
    text = f"{float(version):.1f}" if not isinstance(version, str) else version
    if not _VERSION_PATTERN.match(text):
        raise ValueError(f"api_version must look like '66.0', got {version!r}")
    if float(text) < MINIMUM_API_VERSION:
        raise ValueError(
            f"api_version {text} is not supported; Salesforce needs {MINIMUM_API_VERSION} or later"
        )
    return text


def cometd_url(instance_url: str, api_version: str) -> str:
    """The Streaming API endpoint of an org: ``<instance_url>/cometd/<api_version>``."""
    return f"{instance_url.rstrip('/')}/cometd/{api_version}"


def failure_reason(reply: Message) -> str:
    """The cause Salesforce puts in ``ext.sfdc.failureReason``, or ``""``."""
    ext: Any = reply.get("ext")
    sfdc = ext.get("sfdc") if isinstance(ext, dict) else None
    reason = sfdc.get("failureReason") if isinstance(sfdc, dict) else None
    return reason if isinstance(reason, str) else ""


def _texts(reply: Message) -> list[str]:
    error = reply.get("error")
    return [text.lower() for text in (error, failure_reason(reply)) if isinstance(text, str)]


def is_invalid_replay_error(error: ServerError) -> bool:
    """Whether a subscribe failed because its replay id is outside the retention window.

    "The replayId {replay_id} you provided was invalid.  Please provide a valid ID,
    -2 to replay all events, or -1 to replay only new events."
    """
    message = (error.error_message or "").lower()
    return error.error_code == 400 and "replayid" in message and "invalid" in message


_SALESFORCE_ROWS = {
    # Salesforce (API 64.0+) ends sessions on its own when it scales its servers; the
    # client must then handshake again ("Streaming API client connection" guide). A
    # request is sent again in the new session.
    **{
        (step, Outcome.SERVER_DISCONNECT): Rule(Action.HANDSHAKE)
        for step in (Step.CONNECT, Step.RESUBSCRIBE)
    },
    (Step.REQUEST, Outcome.SERVER_DISCONNECT): Rule(Action.HANDSHAKE, Delay.INTERVAL_THEN_BACKOFF),
    (Step.HANDSHAKE, Outcome.SERVER_DISCONNECT): Rule(Action.HANDSHAKE, Delay.BACKOFF),
}

#: The Bayeux rules with Salesforce's reading of a server-sent ``/meta/disconnect``.
SALESFORCE_TABLE: Table = {
    (phase, step, outcome): _SALESFORCE_ROWS.get((step, outcome), rule)
    for (phase, step, outcome), rule in BAYEUX_TABLE.items()
}


class SalesforceRecoveryPolicy(RecoveryPolicy):
    """The recovery table, with Salesforce's error replies read the way it means them."""

    def __init__(self, backoff: Backoff | None = None, table: Table = SALESFORCE_TABLE) -> None:
        super().__init__(backoff, table)

    def classify_reply(self, reply: Message, advice: Advice) -> Outcome:
        if reply.get("successful"):
            return Outcome.SUCCESS
        texts = _texts(reply)
        # "503::Server is too busy" and the connection limits: retry later, serially
        # ("Handling Errors").
        if any(marker in text for text in texts for marker in _RETRY_LATER):
            return Outcome.OVERLOADED
        # "403::Unknown client": the session is gone, the token is not. Salesforce has
        # been seen sending it with "reconnect": "none"; a new session still works.
        if any("unknown client" in text for text in texts):
            return Outcome.UNKNOWN_CLIENT
        # "401::Authentication invalid" on connect, or "403::Handshake denied" whose
        # failureReason is a 401: reauthenticate, then handshake again.
        if parse_error(reply.get("error")).code == 401 or failure_reason(reply).startswith("401"):
            return Outcome.AUTHENTICATION_INVALID
        return super().classify_reply(reply, advice)

    def classify_error(self, error: BaseException) -> Outcome:
        if isinstance(error, AuthenticationError):
            return Outcome.TOKEN_UNAVAILABLE if error.retryable else Outcome.TOKEN_REFUSED
        return super().classify_error(error)
