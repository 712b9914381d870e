"""What a failed Pub/Sub call means and what the client does next: pure decisions.

A failure is a gRPC status plus, from Salesforce, an ``error-code`` trailer such as
``sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted`` ("Handling Errors"
and "Retry RPC Calls" pages of the Pub/Sub API guide).  :func:`reaction_to` reads the code
first and falls back on the status; :func:`decide` turns the reaction into the next step
and its delay, within ``connection_timeout``.  No I/O, no clock, no randomness of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aiosfstream.cometd.backoff import Backoff

__all__ = [
    "CODE_REACTIONS",
    "ERROR_CODE_PREFIX",
    "STATUS_REACTIONS",
    "Decision",
    "Reaction",
    "Situation",
    "Step",
    "decide",
    "reaction_to",
]

#: The prefix of every Salesforce ``error-code`` trailer.
ERROR_CODE_PREFIX = "sfdc.platform.eventbus.grpc."


class Reaction(enum.Enum):
    """What a failure calls for."""

    #: Temporary: call again (a stream resumes after its last event) after a backoff.
    RETRY = "retry"
    #: A limit or overload: retry after a backoff ten times longer.
    RETRY_LATER = "retry later"
    #: The token was refused: obtain a fresh one (not again if that one is refused at
    #: once), then call again.
    REAUTHENTICATE = "reauthenticate"
    #: The replay id was refused: subscribe with ``replay_fallback``, or fail without one.
    FALL_BACK = "fall back"
    #: A refusal that calling again would not change: raise it.
    FAIL = "fail"


_R, _L, _A, _P, _F = (
    Reaction.RETRY,
    Reaction.RETRY_LATER,
    Reaction.REAUTHENTICATE,
    Reaction.FALL_BACK,
    Reaction.FAIL,
)

#: Salesforce's error codes (without :data:`ERROR_CODE_PREFIX`) and their reaction.
CODE_REACTIONS: dict[str, Reaction] = {
    "service.unavailable": _R,
    "service.auth.error": _A,
    "service.auth.refresh.invalid": _A,
    "service.auth.headers.invalid": _F,
    "service.protection.stream.limit.triggered": _L,
    "service.protection.triggered": _L,
    "service.tenant.license": _F,
    "concurrent.client.limit.exceeded": _L,
    "topic.not.found": _F,
    "topic.meta.permission": _F,
    "topic.validation.empty": _F,
    "topic.api.unavailable": _R,
    "schema.api.unavailable": _R,
    "schema.meta.permission": _F,
    "schema.validation.failed": _F,
    # "Invalid replay ID or outside retention": resubscribe with another preset.
    "subscription.fetch.replayid.corrupted": _P,
    "subscription.fetch.replayid.validation.failed": _P,
    "subscription.fetch.requested.events.invalid": _F,
    "subscription.fetch.topic.mismatch": _F,
    "subscription.fetch.replay.repeated": _R,
    "subscription.fetch.overflow": _R,
    "subscription.fetch.request.invalid": _F,
    "subscription.topic.cannot.subscribe": _F,
    # The org's 24-hour delivery allocation is used up: retrying cannot succeed for hours.
    "subscription.limit.exceeded": _F,
    "subscription.internal.error": _R,
    "publish.stream.sweeper.timeout": _R,
    "publish.event.count.invalid": _F,
    "publish.topic.validation.empty": _F,
    "publish.topic.mismatch": _F,
    "publish.auth.refresh.invalid": _F,
}

#: The reaction to a gRPC status (by name) that carries no known error code.
STATUS_REACTIONS: dict[str, Reaction] = {
    # A reset stream, a lost connection, a server restarting: "retry Subscribe".
    "UNAVAILABLE": _R,
    "INTERNAL": _R,
    "UNKNOWN": _R,
    "ABORTED": _R,
    "CANCELLED": _R,
    "DEADLINE_EXCEEDED": _R,
    "RESOURCE_EXHAUSTED": _L,
    "UNAUTHENTICATED": _A,
}


def reaction_to(status: str, error_code: str | None) -> Reaction:
    """The reaction to a failure with gRPC *status* (a ``grpc.StatusCode`` name) and
    Salesforce's *error_code* trailer, if any.

    ``OK`` is a stream that the server ended without an error: it is resumed.
    """
    if error_code is not None and error_code.startswith(ERROR_CODE_PREFIX):
        known = CODE_REACTIONS.get(error_code[len(ERROR_CODE_PREFIX) :])
        if known is not None:
            return known
    if status == "OK":
        return _R
    return STATUS_REACTIONS.get(status, _F)


class Step(enum.Enum):
    """What the client does after a failure."""

    #: Call again after :attr:`Decision.delay`.
    RETRY = "retry"
    #: Obtain a fresh token, then call again.
    REAUTHENTICATE = "reauthenticate"
    #: Subscribe again with ``replay_fallback``.
    FALL_BACK = "fall back"
    #: Raise the failure.
    FAIL = "fail"
    #: ``connection_timeout`` is used up: raise a timeout naming the failure.
    GIVE_UP = "give up"


@dataclass(frozen=True)
class Situation:
    """What :func:`decide` needs to know besides the reaction."""

    #: Failures since the call last worked (0 for the first).
    attempt: int = 0
    #: Seconds since the call last worked.
    elapsed: float = 0.0
    #: ``connection_timeout``; ``None`` retries forever.
    timeout: float | None = None
    #: The refused token is the fresh one obtained after the previous refusal, and
    #: nothing showed it was ever accepted.
    reauthenticated: bool = False
    #: The client has a ``replay_fallback`` it did not use yet for this stream.
    can_fall_back: bool = False
    #: A number in [0, 1) that places the backoff delay within its range.
    jitter: float = 0.5


@dataclass(frozen=True)
class Decision:
    """The next step and the seconds to wait before it."""

    step: Step
    delay: float = 0.0


#: How much longer :attr:`Reaction.RETRY_LATER` waits than a plain retry.
LONG_BACKOFF_SCALE = 10.0
#: Remaining seconds below which the deadline counts as reached (timer slack).
DEADLINE_SLACK = 0.01


def decide(reaction: Reaction, situation: Situation, backoff: Backoff) -> Decision:
    """What follows a failure that calls for *reaction*, in *situation*."""
    if reaction is Reaction.FAIL:
        return Decision(Step.FAIL)
    if reaction is Reaction.FALL_BACK:
        return Decision(Step.FALL_BACK if situation.can_fall_back else Step.FAIL)
    if reaction is Reaction.REAUTHENTICATE:
        # The second refusal of the same outage means the fresh token is refused too.
        return Decision(Step.FAIL if situation.reauthenticated else Step.REAUTHENTICATE)
    scale = LONG_BACKOFF_SCALE if reaction is Reaction.RETRY_LATER else 1.0
    delay = backoff.delay(situation.attempt, situation.jitter, scale=scale)
    if situation.timeout is None:
        return Decision(Step.RETRY, delay)
    # The last attempt falls on the deadline, so an outage a little shorter than
    # connection_timeout still ends in a success.
    remaining = situation.timeout - situation.elapsed
    if remaining <= DEADLINE_SLACK:
        return Decision(Step.GIVE_UP)
    return Decision(Step.RETRY, min(delay, remaining))
