"""Salesforce's reading of Bayeux errors: pure decisions, no I/O.

Each rule quotes the Salesforce documentation it implements
("Handling Errors" and "Streaming API Error Codes" of the Streaming API guide).
"""

from __future__ import annotations

import re
from typing import Any

from aiosfstream.cometd.exceptions import ServerError, parse_error
from aiosfstream.cometd.protocol import Action
from aiosfstream.typing import Message

__all__ = [
    "DEFAULT_API_VERSION",
    "LIMIT_BACKOFF_SCALE",
    "MINIMUM_API_VERSION",
    "backoff_scale",
    "check_api_version",
    "cometd_url",
    "failure_action",
    "failure_reason",
    "is_invalid_replay_error",
]

#: The API version used when none is given.
DEFAULT_API_VERSION = "66.0"
#: "Unsupported API version. Only API versions '37.0' and later are supported."
MINIMUM_API_VERSION = 37.0
#: How much longer to back off after Salesforce says it is overloaded or at a limit.
LIMIT_BACKOFF_SCALE = 10.0

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


def failure_action(reply: Message, default: Action) -> Action:
    """Decide what follows an unsuccessful ``/meta/connect`` or ``/meta/handshake``.

    *default* is the generic Bayeux decision, used when no Salesforce rule applies.
    """
    texts = _texts(reply)
    # "503::Server is too busy" and the connection limits: retry later, serially.
    if any(marker in text for text in texts for marker in _RETRY_LATER):
        return default if default is Action.CONNECT else Action.HANDSHAKE
    # "401::Authentication invalid" on connect, or "403::Handshake denied" whose
    # failureReason is a 401: the client must reauthenticate and reconnect.
    if parse_error(reply.get("error")).code == 401 and not any(
        "unknown client" in t for t in texts
    ):
        return Action.REAUTHENTICATE
    if failure_reason(reply).startswith("401"):
        return Action.REAUTHENTICATE
    # "403::Unknown client": the session is gone, the token is not; handshake again.
    return default


def backoff_scale(reply: Message | None) -> float:
    """How much longer than usual to wait after *reply*."""
    if reply is not None and any(m in t for t in _texts(reply) for m in _RETRY_LATER):
        return LIMIT_BACKOFF_SCALE
    return 1.0
