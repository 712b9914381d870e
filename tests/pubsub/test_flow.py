"""The demand bookkeeping: never more than max_pending_count ahead, never above 100."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiosfstream.pubsub.flow import MAX_REQUESTED, DemandBudget


def test_a_stream_asks_for_the_room_in_the_queue() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=3) == 7
    assert budget.outstanding("a") == 7


def test_a_request_never_exceeds_the_servers_maximum() -> None:
    budget = DemandBudget(1000)
    budget.add("a")
    assert budget.grant("a", queued=0) == MAX_REQUESTED
    assert budget.grant("a", queued=0) == 0


def test_no_limit_keeps_the_servers_maximum_outstanding() -> None:
    budget = DemandBudget(0)
    budget.add("a")
    assert budget.grant("a", queued=5000) == MAX_REQUESTED


def test_a_full_queue_asks_for_nothing() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=10) == 0


def test_a_stream_still_waiting_tops_up_only_once_half_its_share_is_missing() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=0) == 10
    budget.received("a", 4)
    assert budget.grant("a", queued=4) == 0  # 6 outstanding + 4 queued: no room
    budget.received("a", 3)  # the consumer took all 7 meanwhile
    assert budget.grant("a", queued=0) == 7
    budget.received("a", 4)
    assert budget.grant("a", queued=0) == 0  # 4 missing of a share of 10: not yet
    budget.received("a", 1)
    assert budget.grant("a", queued=0) == 5


def test_a_stream_that_owes_nothing_asks_even_for_one_event() -> None:
    # The server closes a stream that owes nothing after 60 s of silence.
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=9) == 1


def test_streams_share_the_limit_so_a_quiet_one_cannot_starve_a_busy_one() -> None:
    budget = DemandBudget(100)
    budget.add("quiet")
    budget.add("busy")
    assert budget.grant("quiet", queued=0) == 50
    assert budget.grant("busy", queued=0) == 50
    budget.received("busy", 50)
    assert budget.grant("busy", queued=0) == 50


def test_more_events_than_asked_for_leave_nothing_outstanding() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    budget.grant("a", queued=0)
    budget.received("a", 25)
    assert budget.outstanding("a") == 0


def test_a_forgotten_stream_starts_again_from_zero() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    budget.grant("a", queued=0)
    budget.forget("a")
    assert budget.total_outstanding == 0
    budget.received("a", 3)  # late news of a finished stream changes nothing
    assert budget.outstanding("a") == 0


@given(
    limit=st.integers(min_value=1, max_value=300),
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3), st.integers(0, 120)),
        max_size=60,
    ),
)
def test_queued_plus_outstanding_never_exceeds_the_limit(
    limit: int, steps: list[tuple[str, int, int]]
) -> None:
    budget = DemandBudget(limit)
    for name in "abc":
        budget.add(name)
    queued = 0
    for stream, action, count in steps:
        if action == 0:  # a response delivers up to what is outstanding
            delivered = min(count, budget.outstanding(stream))
            budget.received(stream, delivered)
            queued += delivered
        elif action == 1:  # the consumer takes some
            queued -= min(count, queued)
        else:
            budget.grant(stream, queued)
        assert queued + budget.total_outstanding <= limit
        assert all(budget.outstanding(name) <= MAX_REQUESTED for name in "abc")
