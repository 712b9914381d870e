"""What to do after each outcome of each step: the recovery decision table.

Every step the driver takes (obtain credentials, handshake, restore a
subscription, poll, run a user's request) ends in one :class:`Outcome`. The
:class:`RecoveryPolicy` looks the pair up in a table that has a :class:`Rule` for
every phase, step and outcome, then applies three rules that need the
:class:`Situation`: a resumable session is resumed by a new handshake, fresh
credentials are asked for once per outage, and nothing is retried past
``connection_timeout``. It returns a :class:`Decision`: the next action and the
delay before it.

Pure: no I/O, no clock, no randomness of its own (the driver passes the jitter
and the elapsed time in), so the whole table can be enumerated in a test and
printed in the documentation.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from aiosfstream.cometd.advice import Advice, Reconnect
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.exceptions import (
    ClientError,
    HTTPRedirectError,
    HTTPStatusError,
    ResponseTooLargeError,
    TransportError,
    TransportTimeoutError,
    parse_error,
)
from aiosfstream.cometd.messages import InvalidMessage
from aiosfstream.typing import Message

__all__ = [
    "BAYEUX_TABLE",
    "Action",
    "Decision",
    "Delay",
    "Outcome",
    "Phase",
    "RecoveryPolicy",
    "Rule",
    "Situation",
    "Step",
    "Table",
]


class Phase(enum.Enum):
    """Who waits for the step."""

    #: ``open()``: its caller waits for the first session.
    OPENING = "opening"
    #: The background connection, after ``open()`` returned.
    RUNNING = "running"


class Step(enum.Enum):
    """What the driver was doing when the outcome came."""

    #: Obtaining credentials from the authentication extension.
    AUTHENTICATE = "authenticate"
    #: ``/meta/handshake``.
    HANDSHAKE = "handshake"
    #: ``/meta/subscribe`` restoring a subscription in a new session.
    RESUBSCRIBE = "resubscribe"
    #: ``/meta/connect``.
    CONNECT = "connect"
    #: A user's ``subscribe()``, ``unsubscribe()`` or ``publish()``.
    REQUEST = "request"


class Outcome(enum.Enum):
    """How a step ended."""

    SUCCESS = "success"
    #: Unsuccessful reply; the advice says retry (or says nothing).
    RETRY_ADVISED = "retry advised"
    #: Unsuccessful reply; the advice says handshake.
    HANDSHAKE_ADVISED = "handshake advised"
    #: Unsuccessful reply; the advice says do not come back.
    NONE_ADVISED = "none advised"
    #: The server no longer knows the session.
    UNKNOWN_CLIENT = "unknown client"
    #: The server refuses the credentials (a Bayeux error, not an HTTP status).
    AUTHENTICATION_INVALID = "authentication invalid"
    #: The server is at a limit and asks to come back later.
    OVERLOADED = "overloaded"
    #: The server sent ``/meta/disconnect``: the session is over.
    SERVER_DISCONNECT = "server disconnect"
    HTTP_UNAUTHORIZED = "HTTP 401"
    #: Any 3xx: never followed, it could carry the session or secrets elsewhere.
    HTTP_REDIRECT = "HTTP redirect"
    #: Another 4xx.
    HTTP_CLIENT_ERROR = "HTTP 4xx"
    #: 5xx, 408 or 429: the server or a proxy in front of it is unavailable.
    HTTP_UNAVAILABLE = "HTTP 5xx"
    #: The connection failed or was cut.
    NETWORK_ERROR = "network error"
    #: The server's TLS certificate failed verification: retrying would not help,
    #: and would hide a wrong ``ssl`` setting behind a timeout.
    CERTIFICATE_REFUSED = "certificate refused"
    #: No answer within the request's timeout.
    TIMEOUT = "timeout"
    #: The body is not valid JSON, not a Bayeux payload, or one message spoils it.
    MALFORMED = "malformed reply"
    #: The response does not carry the reply to the request.
    LOST_REPLY = "lost reply"
    #: The body is larger than the client accepts.
    TOO_LARGE = "body too large"
    #: The server offers no connection type the client can use.
    INCOMPATIBLE = "incompatible"
    #: The token endpoint refused definitively (bad credentials, unknown client id).
    TOKEN_REFUSED = "token refused"
    #: The token endpoint failed in a way that may pass (5xx, 429, network).
    TOKEN_UNAVAILABLE = "token unavailable"
    #: An extension or another user hook raised.
    EXTENSION_ERROR = "extension error"


class Action(enum.Enum):
    """What the driver does next."""

    #: Poll with ``/meta/connect``.
    CONNECT = "connect"
    #: Start a new session: handshake, then restore every subscription.
    HANDSHAKE = "handshake"
    #: After a poll whose events may be lost: a new session when some subscription
    #: can resume from a replay position, else poll again in the same session.
    RESUME = "resume"
    #: Obtain credentials (again, after a failure of the credentials step).
    AUTHENTICATE = "authenticate"
    #: The server refused the credentials: obtain fresh ones once per outage.
    REAUTHENTICATE = "reauthenticate"
    #: Restore the next subscription.
    RESUBSCRIBE = "resubscribe"
    #: The server refused to restore one subscription: drop it, queue the error for
    #: ``receive()``, go on with the others.
    REPORT = "report"
    #: The user's request is done: return its reply.
    RETURN = "return"
    #: Raise the outcome's error.
    FAIL = "fail"
    #: ``connection_timeout`` is used up: raise ``TransportTimeoutError`` naming the cause.
    GIVE_UP = "give up"


class Delay(enum.Enum):
    """How long to wait before the next action."""

    NONE = "none"
    #: The server's advice interval.
    INTERVAL = "interval"
    #: The advice interval on the first failure, the backoff after.
    INTERVAL_THEN_BACKOFF = "interval, then backoff"
    #: Exponential backoff with jitter, at least the advice interval.
    BACKOFF = "backoff"
    #: The backoff, :attr:`RecoveryPolicy.long_backoff_scale` times longer.
    LONG_BACKOFF = "long backoff"
    #: The backoff, or the server's ``Retry-After`` if that is longer.
    RETRY_AFTER = "retry-after"


@dataclass(frozen=True)
class Rule:
    """One cell of the table."""

    action: Action
    delay: Delay = Delay.NONE

    def __str__(self) -> str:
        if self.delay is Delay.NONE:
            return self.action.value
        return f"{self.action.value} after {self.delay.value}"


@dataclass(frozen=True)
class Situation:
    """What the policy needs to know besides the outcome."""

    phase: Phase
    step: Step
    #: Failures since the last successful poll (0 for the first failure).
    attempt: int = 0
    #: Seconds since the outage began (since ``open()`` began, while opening).
    elapsed: float = 0.0
    #: ``connection_timeout``: ``None`` retries forever.
    timeout: float | None = None
    #: Some subscription can resume from a replay position.
    resumable: bool = False
    #: There is an authentication extension that can obtain fresh credentials.
    can_authenticate: bool = False
    #: Fresh credentials were already obtained after a refusal in this outage.
    reauthenticated: bool = False
    #: The server's advice interval, in seconds.
    interval: float = 0.0
    #: Seconds the server asked to wait (``Retry-After``), if it did.
    retry_after: float | None = None
    #: A number in [0, 1) that places the backoff delay within its range.
    jitter: float = 0.5


@dataclass(frozen=True)
class Decision:
    """The policy's answer: what to do, and after how many seconds."""

    action: Action
    delay: float = 0.0
    #: The table cell the decision comes from.
    rule: Rule | None = None


Table = Mapping[tuple[Phase, Step, Outcome], Rule]

#: Remaining seconds below which the deadline counts as reached (timer slack).
DEADLINE_SLACK = 0.01

_NOW = Delay.NONE
_BACKOFF = Delay.BACKOFF
# Outcomes after which the fate of a request is unknown: it may have been processed.
_LOST = (
    Outcome.HTTP_UNAVAILABLE,
    Outcome.NETWORK_ERROR,
    Outcome.TIMEOUT,
    Outcome.MALFORMED,
    Outcome.LOST_REPLY,
    Outcome.TOO_LARGE,
)
# Outcomes no step but the credentials step produces, and the reverse.
_TOKEN = (Outcome.TOKEN_REFUSED, Outcome.TOKEN_UNAVAILABLE)
_BAYEUX_REPLY = (
    Outcome.RETRY_ADVISED,
    Outcome.HANDSHAKE_ADVISED,
    Outcome.NONE_ADVISED,
    Outcome.UNKNOWN_CLIENT,
    Outcome.AUTHENTICATION_INVALID,
    Outcome.OVERLOADED,
    Outcome.SERVER_DISCONNECT,
    Outcome.INCOMPATIBLE,
)


def _row(default: Rule, **cells: Rule) -> dict[Outcome, Rule]:
    """A step's rules: *default* for every outcome not named in *cells*."""
    row = dict.fromkeys(Outcome, default)
    for name, rule in cells.items():
        row[Outcome[name]] = rule
    return row


def _bayeux_rows() -> dict[Step, dict[Outcome, Rule]]:
    fail = Rule(Action.FAIL)
    reauthenticate = Rule(Action.REAUTHENTICATE)
    handshake_later = Rule(Action.HANDSHAKE, _BACKOFF)
    lost = {outcome.name: handshake_later for outcome in _LOST}
    new_session = Rule(Action.HANDSHAKE, Delay.INTERVAL_THEN_BACKOFF)
    return {
        Step.AUTHENTICATE: _row(
            fail,  # a reply outcome cannot come from this step; refusals are final
            SUCCESS=Rule(Action.HANDSHAKE),
            TOKEN_UNAVAILABLE=Rule(Action.AUTHENTICATE, Delay.RETRY_AFTER),
            **{outcome.name: Rule(Action.AUTHENTICATE, _BACKOFF) for outcome in _LOST},
        ),
        Step.HANDSHAKE: _row(
            fail,
            SUCCESS=Rule(Action.RESUBSCRIBE),
            RETRY_ADVISED=handshake_later,
            HANDSHAKE_ADVISED=handshake_later,
            UNKNOWN_CLIENT=handshake_later,
            OVERLOADED=Rule(Action.HANDSHAKE, Delay.LONG_BACKOFF),
            AUTHENTICATION_INVALID=reauthenticate,
            HTTP_UNAUTHORIZED=reauthenticate,
            HTTP_CLIENT_ERROR=handshake_later,
            **lost,
        ),
        Step.RESUBSCRIBE: _row(
            fail,
            SUCCESS=Rule(Action.RESUBSCRIBE),
            RETRY_ADVISED=Rule(Action.REPORT),
            NONE_ADVISED=Rule(Action.REPORT),
            HANDSHAKE_ADVISED=new_session,
            UNKNOWN_CLIENT=new_session,
            OVERLOADED=Rule(Action.HANDSHAKE, Delay.LONG_BACKOFF),
            AUTHENTICATION_INVALID=reauthenticate,
            HTTP_UNAUTHORIZED=reauthenticate,
            HTTP_CLIENT_ERROR=handshake_later,
            **lost,
        ),
        Step.CONNECT: _row(
            fail,
            SUCCESS=Rule(Action.CONNECT, Delay.INTERVAL),
            RETRY_ADVISED=Rule(Action.CONNECT, _BACKOFF),
            HANDSHAKE_ADVISED=new_session,
            UNKNOWN_CLIENT=new_session,
            OVERLOADED=Rule(Action.CONNECT, Delay.LONG_BACKOFF),
            AUTHENTICATION_INVALID=reauthenticate,
            HTTP_UNAUTHORIZED=reauthenticate,
            HTTP_CLIENT_ERROR=Rule(Action.CONNECT, _BACKOFF),
            **{outcome.name: Rule(Action.RESUME, _BACKOFF) for outcome in _LOST},
        ),
        # A request that may have been processed is never sent twice (a publish
        # would be duplicated): only a session that is certainly gone is retried.
        Step.REQUEST: _row(
            fail,
            SUCCESS=Rule(Action.RETURN),
            HANDSHAKE_ADVISED=new_session,
            UNKNOWN_CLIENT=new_session,
            AUTHENTICATION_INVALID=new_session,
            HTTP_UNAUTHORIZED=new_session,
        ),
    }


def _build_table(
    rows: Mapping[Step, Mapping[Outcome, Rule]],
) -> dict[tuple[Phase, Step, Outcome], Rule]:
    """Expand per-step rows to every phase.

    While opening, a 4xx on the handshake is final: the URL or the setup is wrong,
    and the caller of ``open()`` should hear it now rather than after the timeout.
    """
    table: dict[tuple[Phase, Step, Outcome], Rule] = {}
    for phase in Phase:
        for step in Step:
            for outcome in Outcome:
                table[phase, step, outcome] = rows[step][outcome]
    table[Phase.OPENING, Step.HANDSHAKE, Outcome.HTTP_CLIENT_ERROR] = Rule(Action.FAIL)
    return table


#: The generic Bayeux rules.
BAYEUX_TABLE: Table = _build_table(_bayeux_rows())

# Actions that retry after a failure: subject to connection_timeout.
_RETRIES = frozenset(
    {Action.CONNECT, Action.HANDSHAKE, Action.RESUME, Action.AUTHENTICATE, Action.REAUTHENTICATE}
)


class RecoveryPolicy:
    """Reads outcomes and decides what follows, by :attr:`table`.

    :param backoff: the shape of the delays between attempts (its own state and
        randomness are not used: the attempt count and the jitter come from the
        :class:`Situation`)
    :param table: the rules; the generic Bayeux ones by default
    """

    #: How much longer :attr:`Delay.LONG_BACKOFF` waits than the normal backoff.
    long_backoff_scale = 10.0

    def __init__(self, backoff: Backoff | None = None, table: Table = BAYEUX_TABLE) -> None:
        missing = [key for key in _all_keys() if key not in table]
        if missing:
            phase, step, outcome = missing[0]
            raise ValueError(
                f"the table has no rule for {outcome.value} while {step.value} ({phase.value})"
            )
        self.backoff = backoff or Backoff()
        self.table = table

    # -- reading outcomes ----------------------------------------------------------
    def classify_reply(self, reply: Message, advice: Advice) -> Outcome:
        """The outcome of an unsuccessful reply; *advice* is the session's advice so far."""
        if reply.get("successful"):
            return Outcome.SUCCESS
        reconnect = advice.updated(reply.get("advice")).reconnect
        if reconnect is Reconnect.NONE:
            return Outcome.NONE_ADVISED
        # Servers differ in the code: CometD 402, Salesforce 403, faye 401.
        if "unknown client" in parse_error(reply.get("error")).message.lower():
            return Outcome.UNKNOWN_CLIENT
        if reconnect is Reconnect.HANDSHAKE:
            return Outcome.HANDSHAKE_ADVISED
        return Outcome.RETRY_ADVISED

    def classify_error(self, error: BaseException) -> Outcome:
        """The outcome of a step that raised *error*."""
        if isinstance(error, HTTPRedirectError):
            return Outcome.HTTP_REDIRECT
        if isinstance(error, HTTPStatusError):
            return _http_outcome(error.status)
        if isinstance(error, ResponseTooLargeError):
            return Outcome.TOO_LARGE
        if isinstance(error, LostReply):
            return Outcome.LOST_REPLY
        if isinstance(error, InvalidMessage):
            return Outcome.MALFORMED
        if isinstance(error, TransportTimeoutError):
            return Outcome.TIMEOUT
        if isinstance(error, TransportError):
            return (
                Outcome.CERTIFICATE_REFUSED if _certificate_failed(error) else Outcome.NETWORK_ERROR
            )
        if isinstance(error, ClientError):
            return Outcome.INCOMPATIBLE
        return Outcome.EXTENSION_ERROR

    # -- deciding -------------------------------------------------------------------
    def rule(self, phase: Phase, step: Step, outcome: Outcome) -> Rule:
        """The table cell for *outcome* of *step* in *phase*."""
        return self.table[phase, step, outcome]

    def decide(self, situation: Situation, outcome: Outcome) -> Decision:
        """What follows *outcome* in *situation*."""
        rule = self.rule(situation.phase, situation.step, outcome)
        action = rule.action
        if action is Action.RESUME:
            action = Action.HANDSHAKE if situation.resumable else Action.CONNECT
        if action is Action.REAUTHENTICATE and (
            not situation.can_authenticate or situation.reauthenticated
        ):
            action = Action.FAIL
        if action not in _RETRIES:
            return Decision(action, 0.0, rule)
        delay = self._delay(rule.delay, situation)
        if outcome is Outcome.SUCCESS or situation.timeout is None:
            return Decision(action, delay, rule)
        # No delay reaches past the deadline: the last attempt falls on it, so an outage
        # a little shorter than connection_timeout still ends in a success.
        remaining = situation.timeout - situation.elapsed
        if remaining <= DEADLINE_SLACK:
            return Decision(Action.GIVE_UP, 0.0, rule)
        return Decision(action, min(delay, remaining), rule)

    def _delay(self, kind: Delay, situation: Situation) -> float:
        if kind is Delay.NONE:
            return 0.0
        if kind is Delay.INTERVAL or (
            kind is Delay.INTERVAL_THEN_BACKOFF and situation.attempt == 0
        ):
            return situation.interval
        scale = self.long_backoff_scale if kind is Delay.LONG_BACKOFF else 1.0
        delay = self.backoff.delay(
            situation.attempt, situation.jitter, minimum=situation.interval, scale=scale
        )
        if kind is Delay.RETRY_AFTER and situation.retry_after is not None:
            delay = max(delay, situation.retry_after)
        return delay


class LostReply(InvalidMessage):
    """A response that does not carry the reply to the request it answers."""


def _certificate_failed(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__
    return False


def _http_outcome(status: int) -> Outcome:
    if status == 401:
        return Outcome.HTTP_UNAUTHORIZED
    if status in (408, 429) or status >= 500:
        return Outcome.HTTP_UNAVAILABLE
    if 400 <= status < 500:
        return Outcome.HTTP_CLIENT_ERROR
    if 300 <= status < 400:
        return Outcome.HTTP_REDIRECT
    # A 2xx with a body that is not JSON.
    return Outcome.MALFORMED


def _all_keys() -> list[tuple[Phase, Step, Outcome]]:
    return [(phase, step, outcome) for phase in Phase for step in Step for outcome in Outcome]
