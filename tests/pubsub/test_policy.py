"""The failure table: Salesforce's codes first, then the gRPC status."""

from __future__ import annotations

import pytest

from aiosfstream.cometd.backoff import Backoff
from aiosfstream.pubsub.policy import (
    CODE_REACTIONS,
    ERROR_CODE_PREFIX,
    Decision,
    Reaction,
    Situation,
    Step,
    decide,
    reaction_to,
)


@pytest.mark.parametrize(
    ("status", "code", "reaction"),
    [
        ("UNAVAILABLE", None, Reaction.RETRY),
        ("INTERNAL", "service.unavailable", Reaction.RETRY),
        ("OK", None, Reaction.RETRY),  # the server ended the stream without an error
        ("UNAUTHENTICATED", "service.auth.error", Reaction.REAUTHENTICATE),
        ("UNAUTHENTICATED", None, Reaction.REAUTHENTICATE),
        ("INVALID_ARGUMENT", "subscription.fetch.replayid.corrupted", Reaction.FALL_BACK),
        ("INVALID_ARGUMENT", "subscription.fetch.replayid.validation.failed", Reaction.FALL_BACK),
        ("INVALID_ARGUMENT", "subscription.fetch.topic.mismatch", Reaction.FAIL),
        ("INVALID_ARGUMENT", None, Reaction.FAIL),
        ("NOT_FOUND", "topic.not.found", Reaction.FAIL),
        ("PERMISSION_DENIED", None, Reaction.FAIL),
        ("RESOURCE_EXHAUSTED", None, Reaction.RETRY_LATER),
        ("RESOURCE_EXHAUSTED", "subscription.limit.exceeded", Reaction.FAIL),
        ("UNKNOWN", "concurrent.client.limit.exceeded", Reaction.RETRY_LATER),
    ],
)
def test_reactions(status: str, code: str | None, reaction: Reaction) -> None:
    full_code = None if code is None else ERROR_CODE_PREFIX + code
    assert reaction_to(status, full_code) is reaction


def test_an_unknown_code_falls_back_on_the_status() -> None:
    assert reaction_to("UNAVAILABLE", ERROR_CODE_PREFIX + "something.new") is Reaction.RETRY
    assert reaction_to("NOT_FOUND", "not.a.salesforce.code") is Reaction.FAIL


def test_every_code_of_the_table_has_its_reaction() -> None:
    for code, reaction in CODE_REACTIONS.items():
        assert reaction_to("UNKNOWN", ERROR_CODE_PREFIX + code) is reaction


BACKOFF = Backoff(initial=1.0, cap=8.0)


def test_a_retry_waits_the_backoff() -> None:
    decision = decide(Reaction.RETRY, Situation(attempt=2, timeout=None, jitter=0.0), BACKOFF)
    assert decision == Decision(Step.RETRY, 2.0)


def test_retry_later_waits_longer_within_the_cap() -> None:
    decision = decide(Reaction.RETRY_LATER, Situation(attempt=0, jitter=0.0), BACKOFF)
    assert decision == Decision(Step.RETRY, 4.0)


def test_no_delay_reaches_past_the_deadline() -> None:
    situation = Situation(attempt=5, elapsed=9.5, timeout=10.0, jitter=0.99)
    assert decide(Reaction.RETRY, situation, BACKOFF) == Decision(Step.RETRY, 0.5)


def test_at_the_deadline_the_client_gives_up() -> None:
    situation = Situation(attempt=5, elapsed=10.0, timeout=10.0)
    assert decide(Reaction.RETRY, situation, BACKOFF).step is Step.GIVE_UP


def test_a_refused_token_is_renewed_once_per_outage() -> None:
    assert decide(Reaction.REAUTHENTICATE, Situation(), BACKOFF).step is Step.REAUTHENTICATE
    again = Situation(reauthenticated=True)
    assert decide(Reaction.REAUTHENTICATE, again, BACKOFF).step is Step.FAIL


def test_a_refused_replay_id_falls_back_only_when_the_client_can() -> None:
    assert decide(Reaction.FALL_BACK, Situation(), BACKOFF).step is Step.FAIL
    situation = Situation(can_fall_back=True)
    assert decide(Reaction.FALL_BACK, situation, BACKOFF) == Decision(Step.FALL_BACK)


def test_a_fatal_failure_fails_even_with_time_left() -> None:
    assert decide(Reaction.FAIL, Situation(timeout=None), BACKOFF) == Decision(Step.FAIL)
