"""The recovery decision table: every outcome of every step in every phase is decided.

The expected tables below are written out by hand, independently of the code: a
change to a rule must change this file too, and a new outcome or step cannot be
added without a decision for each of its cells.
"""

from __future__ import annotations

import itertools
import ssl

import pytest

from aiosfstream.cometd.advice import Advice, Reconnect
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.exceptions import (
    ClientError,
    HTTPRedirectError,
    HTTPStatusError,
    ResponseTooLargeError,
    TransportConnectionClosed,
    TransportError,
    TransportTimeoutError,
)
from aiosfstream.cometd.messages import InvalidMessage
from aiosfstream.cometd.recovery import (
    BAYEUX_TABLE,
    DEADLINE_SLACK,
    Action,
    Decision,
    Delay,
    LostReply,
    Outcome,
    Phase,
    RecoveryPolicy,
    Rule,
    Situation,
    Step,
    Table,
)
from aiosfstream.policy import SALESFORCE_TABLE, SalesforceRecoveryPolicy

CELLS = {
    "fail": Rule(Action.FAIL),
    "return": Rule(Action.RETURN),
    "report": Rule(Action.REPORT),
    "resub": Rule(Action.RESUBSCRIBE),
    "hs": Rule(Action.HANDSHAKE),
    "hs~": Rule(Action.HANDSHAKE, Delay.BACKOFF),
    "hs~~": Rule(Action.HANDSHAKE, Delay.LONG_BACKOFF),
    "hs-i~": Rule(Action.HANDSHAKE, Delay.INTERVAL_THEN_BACKOFF),
    "auth~": Rule(Action.AUTHENTICATE, Delay.BACKOFF),
    "auth-ra": Rule(Action.AUTHENTICATE, Delay.RETRY_AFTER),
    "reauth": Rule(Action.REAUTHENTICATE),
    "conn-i": Rule(Action.CONNECT, Delay.INTERVAL),
    "conn~": Rule(Action.CONNECT, Delay.BACKOFF),
    "conn~~": Rule(Action.CONNECT, Delay.LONG_BACKOFF),
    "resume~": Rule(Action.RESUME, Delay.BACKOFF),
}
STEPS = [Step.AUTHENTICATE, Step.HANDSHAKE, Step.RESUBSCRIBE, Step.CONNECT, Step.REQUEST]

# Running phase, generic Bayeux rules. Columns: the steps above, in that order.
BAYEUX_RUNNING = """
success                 | hs      | resub  | resub   | conn-i  | return
retry advised           | fail    | hs~    | report  | conn~   | fail
handshake advised       | fail    | hs~    | hs-i~   | hs-i~   | hs-i~
none advised            | fail    | fail   | report  | fail    | fail
unknown client          | fail    | hs~    | hs-i~   | hs-i~   | hs-i~
authentication invalid  | fail    | reauth | reauth  | reauth  | hs-i~
overloaded              | fail    | hs~~   | hs~~    | conn~~  | fail
server disconnect       | fail    | fail   | fail    | fail    | fail
HTTP 401                | fail    | reauth | reauth  | reauth  | hs-i~
HTTP redirect           | fail    | fail   | fail    | fail    | fail
HTTP 4xx                | fail    | hs~    | hs~     | conn~   | fail
HTTP 5xx                | auth~   | hs~    | hs~     | resume~ | fail
network error           | auth~   | hs~    | hs~     | resume~ | fail
certificate refused     | fail    | fail   | fail    | fail    | fail
timeout                 | auth~   | hs~    | hs~     | resume~ | fail
malformed reply         | auth~   | hs~    | hs~     | resume~ | fail
lost reply              | auth~   | hs~    | hs~     | resume~ | fail
body too large          | auth~   | hs~    | hs~     | resume~ | fail
incompatible            | fail    | fail   | fail    | fail    | fail
token refused           | fail    | fail   | fail    | fail    | fail
token unavailable       | auth-ra | fail   | fail    | fail    | fail
extension error         | fail    | fail   | fail    | fail    | fail
"""
# While opening, a 4xx on the handshake is final: the setup is wrong.
OPENING_DIFFERENCES = {(Step.HANDSHAKE, Outcome.HTTP_CLIENT_ERROR): "fail"}
# Salesforce ends sessions on its own: a new session follows, wherever it comes.
SALESFORCE_DIFFERENCES = {
    (Step.HANDSHAKE, Outcome.SERVER_DISCONNECT): "hs~",
    (Step.RESUBSCRIBE, Outcome.SERVER_DISCONNECT): "hs",
    (Step.CONNECT, Outcome.SERVER_DISCONNECT): "hs",
    (Step.REQUEST, Outcome.SERVER_DISCONNECT): "hs-i~",
}


def expected_table(
    differences: dict[tuple[Step, Outcome], str],
) -> dict[tuple[Phase, Step, Outcome], Rule]:
    rows: dict[tuple[Step, Outcome], str] = {}
    for line in BAYEUX_RUNNING.strip().splitlines():
        name, *cells = (cell.strip() for cell in line.split("|"))
        assert len(cells) == len(STEPS), line
        for step, cell in zip(STEPS, cells, strict=True):
            rows[step, Outcome(name)] = cell
    rows.update(differences)
    table = {}
    for phase in Phase:
        for (step, outcome), cell in rows.items():
            opening = OPENING_DIFFERENCES.get((step, outcome)) if phase is Phase.OPENING else None
            table[phase, step, outcome] = CELLS[opening or cell]
    return table


def all_keys() -> list[tuple[Phase, Step, Outcome]]:
    return list(itertools.product(Phase, Step, Outcome))


@pytest.mark.parametrize(
    ("table", "differences"),
    [(BAYEUX_TABLE, {}), (SALESFORCE_TABLE, SALESFORCE_DIFFERENCES)],
    ids=["bayeux", "salesforce"],
)
def test_every_cell_is_decided_as_written_here(
    table: Table, differences: dict[tuple[Step, Outcome], str]
) -> None:
    expected = expected_table(differences)
    assert set(expected) == set(all_keys())  # the hand-written table is complete too
    assert set(table) == set(all_keys())
    wrong = {
        key: (str(table[key]), str(rule)) for key, rule in expected.items() if table[key] != rule
    }
    assert wrong == {}


def test_a_table_with_a_missing_cell_is_refused() -> None:
    incomplete = dict(BAYEUX_TABLE)
    del incomplete[Phase.RUNNING, Step.CONNECT, Outcome.TIMEOUT]
    with pytest.raises(ValueError, match="no rule for timeout while connect"):
        RecoveryPolicy(table=incomplete)


# -- decide(): every outcome x situation -----------------------------------------------

BACKOFF = Backoff(initial=1.0, cap=8.0)


def situations() -> list[Situation]:
    found = []
    for phase, step, resumable, can_auth, reauthed, elapsed, timeout in itertools.product(
        Phase,
        Step,
        (False, True),
        (False, True),
        (False, True),
        (0.0, 9.5, 10.0),
        (None, 10.0),
    ):
        found.append(
            Situation(
                phase,
                step,
                attempt=2,
                elapsed=elapsed,
                timeout=timeout,
                resumable=resumable,
                can_authenticate=can_auth,
                reauthenticated=reauthed,
                interval=0.25,
                retry_after=6.0,
                jitter=0.0,
            )
        )
    return found


def expected_decision(rule: Rule, situation: Situation, outcome: Outcome) -> Decision:
    """The situational rules, restated independently of the policy's code."""
    action = rule.action
    if action is Action.RESUME:
        action = Action.HANDSHAKE if situation.resumable else Action.CONNECT
    if action is Action.REAUTHENTICATE and (
        not situation.can_authenticate or situation.reauthenticated
    ):
        action = Action.FAIL
    retries = {
        Action.CONNECT,
        Action.HANDSHAKE,
        Action.AUTHENTICATE,
        Action.REAUTHENTICATE,
    }
    if action not in retries:
        return Decision(action, 0.0, rule)
    # attempt 2, jitter 0, initial 1: the backoff is half of 1 * 2**2 = 2.0 s.
    delay = {
        Delay.NONE: 0.0,
        Delay.INTERVAL: 0.25,
        Delay.INTERVAL_THEN_BACKOFF: 2.0,
        Delay.BACKOFF: 2.0,
        Delay.LONG_BACKOFF: 4.0,  # the cap of 8 s, at jitter 0
        Delay.RETRY_AFTER: 6.0,
    }[rule.delay]
    if outcome is Outcome.SUCCESS or situation.timeout is None:
        return Decision(action, delay, rule)
    remaining = situation.timeout - situation.elapsed
    if remaining <= DEADLINE_SLACK:
        return Decision(Action.GIVE_UP, 0.0, rule)
    return Decision(action, min(delay, remaining), rule)


@pytest.mark.parametrize("policy_class", [RecoveryPolicy, SalesforceRecoveryPolicy])
def test_every_outcome_in_every_situation(policy_class: type[RecoveryPolicy]) -> None:
    policy = policy_class(BACKOFF)
    checked = 0
    for situation in situations():
        for outcome in Outcome:
            rule = policy.rule(situation.phase, situation.step, outcome)
            decision = policy.decide(situation, outcome)
            assert decision == expected_decision(rule, situation, outcome), (situation, outcome)
            # Nothing the driver cannot execute comes out, and no wait passes the deadline.
            assert decision.action not in (Action.RESUME,)
            assert decision.delay >= 0
            if situation.timeout is not None and outcome is not Outcome.SUCCESS:
                assert situation.elapsed + decision.delay <= situation.timeout
            checked += 1
    assert checked == len(situations()) * len(Outcome)


def test_an_outage_shorter_than_the_timeout_gets_an_attempt_at_the_deadline() -> None:
    # Default connection_timeout 10 s, default backoff, an 8 s outage: the attempts may
    # never jump past the moment the server is back and the deadline.
    policy = RecoveryPolicy(Backoff())
    elapsed, attempt = 0.0, 0
    attempts = []
    while True:
        situation = Situation(
            Phase.RUNNING,
            Step.HANDSHAKE,
            attempt=attempt,
            elapsed=elapsed,
            timeout=10.0,
            jitter=0.99,
        )
        decision = policy.decide(situation, Outcome.NETWORK_ERROR)
        if decision.action is Action.GIVE_UP:
            break
        elapsed += decision.delay
        attempt += 1
        attempts.append(elapsed)
    assert attempts[-1] == pytest.approx(10.0)
    assert any(8.0 <= moment <= 10.0 for moment in attempts)


def test_success_never_gives_up() -> None:
    situation = Situation(Phase.RUNNING, Step.HANDSHAKE, elapsed=50.0, timeout=10.0)
    assert RecoveryPolicy().decide(situation, Outcome.SUCCESS).action is Action.RESUBSCRIBE


def test_no_timeout_means_retrying_forever() -> None:
    situation = Situation(Phase.OPENING, Step.HANDSHAKE, attempt=500, elapsed=1e6)
    assert RecoveryPolicy().decide(situation, Outcome.NETWORK_ERROR).action is Action.HANDSHAKE


def test_the_first_new_session_request_is_not_delayed_by_backoff() -> None:
    policy = RecoveryPolicy(Backoff(initial=5.0, cap=5.0))
    first = Situation(Phase.RUNNING, Step.CONNECT, attempt=0, interval=0.5)
    again = Situation(Phase.RUNNING, Step.CONNECT, attempt=1, interval=0.5, jitter=0.0)
    assert policy.decide(first, Outcome.UNKNOWN_CLIENT).delay == 0.5
    assert policy.decide(again, Outcome.UNKNOWN_CLIENT).delay == 2.5


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    policy = RecoveryPolicy(Backoff(initial=0.5))
    situation = Situation(Phase.OPENING, Step.AUTHENTICATE, retry_after=3.0, jitter=0.0)
    assert policy.decide(situation, Outcome.TOKEN_UNAVAILABLE).delay == 3.0
    without = Situation(Phase.OPENING, Step.AUTHENTICATE, jitter=0.0)
    assert policy.decide(without, Outcome.TOKEN_UNAVAILABLE).delay == 0.25


# -- classify: what each error and reply means ----------------------------------------


def certificate_failure() -> TransportError:
    """A TransportError as the transport raises it, caused by a failed verification."""
    error = TransportError("/meta/handshake request: certificate verify failed")
    error.__cause__ = OSError("connector error")
    error.__cause__.__cause__ = ssl.SSLCertVerificationError("self-signed certificate")
    return error


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (HTTPRedirectError("moved", 307, "http://elsewhere/"), Outcome.HTTP_REDIRECT),
        (HTTPStatusError("unauthorized", 401), Outcome.HTTP_UNAUTHORIZED),
        (HTTPStatusError("not found", 404), Outcome.HTTP_CLIENT_ERROR),
        (HTTPStatusError("too many", 429), Outcome.HTTP_UNAVAILABLE),
        (HTTPStatusError("request timeout", 408), Outcome.HTTP_UNAVAILABLE),
        (HTTPStatusError("bad gateway", 502), Outcome.HTTP_UNAVAILABLE),
        (HTTPStatusError("html page", 200), Outcome.MALFORMED),
        (HTTPStatusError("odd redirect", 399), Outcome.HTTP_REDIRECT),
        (ResponseTooLargeError("big", 10), Outcome.TOO_LARGE),
        (LostReply("no reply"), Outcome.LOST_REPLY),
        (InvalidMessage("bad json"), Outcome.MALFORMED),
        (TransportTimeoutError("slow"), Outcome.TIMEOUT),
        (TransportConnectionClosed("closed"), Outcome.NETWORK_ERROR),
        (TransportError("refused"), Outcome.NETWORK_ERROR),
        (ClientError("no common connection type"), Outcome.INCOMPATIBLE),
        (certificate_failure(), Outcome.CERTIFICATE_REFUSED),
        (KeyError("a storage bug"), Outcome.EXTENSION_ERROR),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.name,
)
def test_errors_are_classified(error: BaseException, outcome: Outcome) -> None:
    assert RecoveryPolicy().classify_error(error) is outcome
    assert SalesforceRecoveryPolicy().classify_error(error) is outcome


@pytest.mark.parametrize(
    ("reply", "advice", "bayeux", "salesforce"),
    [
        ({"successful": True}, Advice(), Outcome.SUCCESS, Outcome.SUCCESS),
        (
            {"successful": False, "error": "403::Unknown client", "advice": {"reconnect": "none"}},
            Advice(),
            Outcome.NONE_ADVISED,
            Outcome.UNKNOWN_CLIENT,  # faye issue 492: Salesforce still takes a new session
        ),
        (
            {"successful": False, "error": "402::Unknown client"},
            Advice(),
            Outcome.UNKNOWN_CLIENT,
            Outcome.UNKNOWN_CLIENT,
        ),
        (
            {"successful": False, "error": "500::x"},
            Advice(reconnect=Reconnect.HANDSHAKE),
            Outcome.HANDSHAKE_ADVISED,
            Outcome.HANDSHAKE_ADVISED,
        ),
        ({"successful": False}, Advice(), Outcome.RETRY_ADVISED, Outcome.RETRY_ADVISED),
        (
            {"successful": False, "error": "401::Authentication invalid"},
            Advice(),
            Outcome.RETRY_ADVISED,
            Outcome.AUTHENTICATION_INVALID,
        ),
        (
            {
                "successful": False,
                "error": "403::Handshake denied",
                "advice": {"reconnect": "none"},
                "ext": {
                    "sfdc": {"failureReason": "403::Organization concurrent user limit exceeded"}
                },
            },
            Advice(),
            Outcome.NONE_ADVISED,
            Outcome.OVERLOADED,
        ),
    ],
)
def test_replies_are_classified(
    reply: dict[str, object], advice: Advice, bayeux: Outcome, salesforce: Outcome
) -> None:
    assert RecoveryPolicy().classify_reply(reply, advice) is bayeux
    assert SalesforceRecoveryPolicy().classify_reply(reply, advice) is salesforce
