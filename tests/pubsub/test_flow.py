"""The demand bookkeeping: never much more than max_pending_count ahead, never above 100,
and never a topic left with nothing queued and nothing asked for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiosfstream.pubsub.flow import MAX_REQUESTED, DemandBudget


def test_a_stream_asks_for_the_room_in_the_queue() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=3, stream_queued=3) == 7
    assert budget.outstanding("a") == 7


def test_a_request_never_exceeds_the_servers_maximum() -> None:
    budget = DemandBudget(1000)
    budget.add("a")
    assert budget.grant("a", queued=0, stream_queued=0) == MAX_REQUESTED
    assert budget.grant("a", queued=0, stream_queued=0) == 0


def test_no_limit_keeps_the_servers_maximum_outstanding() -> None:
    budget = DemandBudget(0)
    budget.add("a")
    assert budget.grant("a", queued=5000, stream_queued=5000) == MAX_REQUESTED


def test_a_full_queue_asks_for_nothing() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=10, stream_queued=10) == 0


def test_a_stream_still_waiting_tops_up_only_once_half_its_share_is_missing() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=0, stream_queued=0) == 10
    budget.received("a", 4)
    assert budget.grant("a", queued=4, stream_queued=4) == 0  # 6 outstanding + 4 queued: no room
    budget.received("a", 3)  # the consumer took all 7 meanwhile
    assert budget.grant("a", queued=0, stream_queued=0) == 7
    budget.received("a", 4)
    assert budget.grant("a", queued=0, stream_queued=0) == 0  # 4 missing of a share of 10: not yet
    budget.received("a", 1)
    assert budget.grant("a", queued=0, stream_queued=0) == 5


def test_a_stream_that_owes_nothing_asks_even_for_one_event() -> None:
    # The server closes a stream that owes nothing after 60 s of silence.
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.grant("a", queued=9, stream_queued=9) == 1


def test_streams_share_the_limit_so_a_quiet_one_cannot_starve_a_busy_one() -> None:
    budget = DemandBudget(100)
    budget.add("quiet")
    budget.add("busy")
    assert budget.grant("quiet", queued=0, stream_queued=0) == 50
    assert budget.grant("busy", queued=0, stream_queued=0) == 50
    budget.received("busy", 50)
    assert budget.grant("busy", queued=0, stream_queued=0) == 50


def test_more_events_than_asked_for_leave_nothing_outstanding() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    budget.grant("a", queued=0, stream_queued=0)
    budget.received("a", 25)
    assert budget.outstanding("a") == 0


def test_a_forgotten_stream_starts_again_from_zero() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    budget.grant("a", queued=0, stream_queued=0)
    budget.forget("a")
    assert budget.total_outstanding == 0
    budget.received("a", 3)  # late news of a finished stream changes nothing
    assert budget.outstanding("a") == 0


def test_a_topic_added_after_one_took_the_whole_limit_still_asks_for_one_event() -> None:
    # Demand asked for cannot be taken back: the quiet stream keeps its 100.
    budget = DemandBudget(100)
    budget.add("quiet")
    assert budget.grant("quiet", queued=0, stream_queued=0) == 100
    budget.add("busy")
    assert budget.grant("busy", queued=0, stream_queued=0) == 1
    budget.received("busy", 1)
    assert budget.grant("busy", queued=1, stream_queued=1) == 0  # its event is queued
    assert budget.grant("busy", queued=0, stream_queued=0) == 1  # the consumer took it
    assert budget.total_outstanding == 101


def test_a_quiet_stream_never_tops_up_above_its_new_share() -> None:
    budget = DemandBudget(100)
    budget.add("a")
    budget.grant("a", queued=0, stream_queued=0)
    budget.add("b")
    budget.received("a", 80)
    assert budget.grant("a", queued=0, stream_queued=0) == 30  # up to 50, not 100
    assert budget.grant("b", queued=0, stream_queued=0) == 50


def test_a_grant_is_worth_asking_for_only_with_room_for_half_a_share_or_an_idle_stream() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    assert budget.worth_granting(queued=0)  # "a" holds nothing
    budget.grant("a", queued=0, stream_queued=0)
    budget.received("a", 8)
    assert not budget.worth_granting(queued=8)
    assert not budget.worth_granting(queued=4)  # 4 free, below half of 10
    assert budget.worth_granting(queued=3)
    assert budget.grant("a", queued=3, stream_queued=3) == 5
    assert not DemandBudget(0).worth_granting(queued=0)  # no limit: no shared room


def test_adding_a_stream_twice_keeps_the_counts_right() -> None:
    budget = DemandBudget(10)
    budget.add("a")
    budget.grant("a", queued=0, stream_queued=0)
    budget.add("a")  # a new call of the same topic starts from zero
    assert budget.total_outstanding == 0
    assert budget.worth_granting(queued=0)


@given(
    limit=st.integers(min_value=1, max_value=300),
    steps=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 4), st.integers(0, 120)),
        max_size=80,
    ),
)
def test_queued_plus_outstanding_stays_within_the_limit_plus_one_per_topic(
    limit: int, steps: list[tuple[str, int, int]]
) -> None:
    budget = DemandBudget(limit)
    queued = dict.fromkeys("abc", 0)
    left_behind = 0  # events queued by streams forgotten since
    for stream, action, count in steps:
        if action == 0:  # a response delivers up to what is outstanding
            delivered = min(count, budget.outstanding(stream))
            budget.received(stream, delivered)
            queued[stream] += delivered
        elif action == 1:  # the consumer takes some of one topic
            queued[stream] -= min(count, queued[stream])
        elif action == 4:  # the topic is unsubscribed; its events stay queued
            budget.forget(stream)
            left_behind, queued[stream] = left_behind + queued[stream], 0
        else:
            if action == 2:  # a topic subscribed, or a call started again
                budget.add(stream)
            all_queued = sum(queued.values()) + left_behind
            worth = budget.worth_granting(all_queued)
            starved = not queued[stream] and not budget.outstanding(stream)
            if budget.grant(stream, all_queued, queued[stream]) and not starved:
                assert worth  # the cheap check never hides a grant
            assert queued[stream] + budget.outstanding(stream) > 0  # never starved
        assert sum(queued.values()) + budget.total_outstanding <= limit + len("abc")
        assert budget.total_outstanding == sum(budget.outstanding(name) for name in "abc")
        assert all(budget.outstanding(name) <= MAX_REQUESTED for name in "abc")
