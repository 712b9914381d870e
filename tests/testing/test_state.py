"""The pure org model, driven by a fake clock: no server, no sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from aiosfstream.testing.events import format_datetime
from aiosfstream.testing.state import (
    ChannelNotFound,
    InvalidReplayId,
    OrgSettings,
    OrgState,
    Session,
    SubscriptionRefused,
    name_set,
    split_subscription,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> OrgState:
    org = OrgState(clock=clock, client_expiry=40.0)
    org.add_user("u@example.com", "pw")
    org.add_app("key", "secret")
    return org


def publish(state: OrgState, channel: str, replay_id: int | None = None) -> int:
    def build(_: Any, rid: int, created: float) -> dict[str, Any]:
        return {"channel": channel, "data": {"event": {"replayId": rid}, "sobject": {"Id": rid}}}

    event, _ = state.append_event(channel, build, replay_id=replay_id)
    return event.replay_id


def open_session(state: OrgState) -> Session:
    token = state.issue_token("u@example.com", "key")
    return state.open_session(token, "browser", 66.0)


def test_replay_ids_increase(state: OrgState) -> None:
    state.create_channel("/topic/T")
    assert [publish(state, "/topic/T") for _ in range(3)] == [1, 2, 3]
    assert publish(state, "/topic/T", replay_id=10) == 10
    assert publish(state, "/topic/T") == 11
    with pytest.raises(ValueError, match="not above"):
        publish(state, "/topic/T", replay_id=5)


def test_topics_must_be_created_events_need_not(state: OrgState) -> None:
    with pytest.raises(ChannelNotFound):
        publish(state, "/topic/T")
    with pytest.raises(ChannelNotFound):
        publish(state, "/u/G")
    assert publish(state, "/event/E__e") == 1
    assert publish(state, "/data/ChangeEvents") == 1


@pytest.mark.parametrize("name", ["/meta/x", "/foo/bar", "/topic/", "/topic/T?Name=x"])
def test_create_channel_rejects_bad_names(state: OrgState, name: str) -> None:
    with pytest.raises(ValueError, match="not a streaming channel"):
        state.create_channel(name)


def test_retention_windows(state: OrgState, clock: FakeClock) -> None:
    state.create_channel("/topic/T")
    publish(state, "/topic/T")
    publish(state, "/event/E__e")
    clock.now += 24 * 3600 + 1
    assert state.purge() == 1
    assert len(state.channels["/event/E__e"].events) == 1
    clock.now += 48 * 3600
    assert state.purge() == 1


def test_purge_before(state: OrgState, clock: FakeClock) -> None:
    state.create_channel("/topic/T")
    publish(state, "/topic/T")
    clock.now += 10
    publish(state, "/topic/T")
    assert state.purge(before=clock.now - 5) == 1
    assert [e.replay_id for e in state.iter_events("/topic/T")] == [2]


def test_subscribe_replay_options(state: OrgState) -> None:
    state.create_channel("/topic/T")
    for _ in range(3):
        publish(state, "/topic/T")
    session = open_session(state)
    state.subscribe(session, "/topic/T", -1)
    assert not session.pending
    state.subscribe(session, "/topic/T", -2)
    assert [d.event.replay_id for d in session.pending] == [1, 2, 3]
    state.subscribe(session, "/topic/T", 2)
    assert [d.event.replay_id for d in session.pending] == [3]
    for bad in (4, 0, -3, "1", True, None):
        with pytest.raises(InvalidReplayId):
            state.subscribe(session, "/topic/T", bad)


def test_publish_queues_for_subscribers(state: OrgState) -> None:
    state.create_channel("/topic/T")
    subscribed, other = open_session(state), open_session(state)
    state.subscribe(subscribed, "/topic/T", -1)
    channel = "/topic/T"
    _, woken = state.append_event(
        channel, lambda _c, rid, _t: {"channel": channel, "data": {"event": {"replayId": rid}}}
    )
    assert woken == [subscribed]
    assert len(subscribed.pending) == 1
    assert not other.pending
    assert len(state.take_pending(subscribed)) == 1
    assert state.stats.events_delivered == 1


def test_filtered_subscription(state: OrgState) -> None:
    state.create_channel("/topic/T")
    session = open_session(state)
    state.subscribe(session, "/topic/T?Type=Technology Partner", -1)

    def build(sobject: dict[str, Any]) -> Any:
        return lambda _c, rid, _t: {"channel": "/topic/T", "data": {"sobject": sobject}}

    state.append_event("/topic/T", build({"Type": "Technology Partner"}))
    state.append_event("/topic/T", build({"Type": "Customer"}))
    state.append_event("/topic/T", build({"Name": "no type"}))
    assert [d.event.replay_id for d in session.pending] == [1]
    assert session.pending[0].subscription == "/topic/T?Type=Technology Partner"


def test_split_subscription() -> None:
    assert split_subscription("/topic/T") == ("/topic/T", {})
    assert split_subscription("/topic/T?Type=Technology Partner&Phone=(415) 555-1212") == (
        "/topic/T",
        {"Type": "Technology Partner", "Phone": "(415) 555-1212"},
    )


def test_client_expiry(state: OrgState, clock: FakeClock) -> None:
    session = open_session(state)
    clock.now += 39
    assert state.get_session(session.client_id) is session
    session.last_seen = clock.now
    session.holding = True
    clock.now += 100
    assert state.get_session(session.client_id) is session
    session.holding = False
    assert state.get_session(session.client_id) is None
    assert session.closed == "expired"


def test_sweep_on_publish(state: OrgState, clock: FakeClock) -> None:
    state.create_channel("/topic/T")
    session = open_session(state)
    state.subscribe(session, "/topic/T", -1)
    clock.now += 41
    publish(state, "/topic/T")
    assert session.client_id not in state.sessions
    assert not session.pending


def test_unsubscribe_drops_queued_events(state: OrgState) -> None:
    state.create_channel("/topic/T")
    publish(state, "/topic/T")
    session = open_session(state)
    state.subscribe(session, "/topic/T", -2)
    assert state.unsubscribe(session, "/topic/T") is True
    assert not session.pending
    assert state.unsubscribe(session, "/topic/T") is False


def test_tokens(state: OrgState, clock: FakeClock) -> None:
    token = state.issue_token("u@example.com", "key")
    assert state.check_token(token.value) is token
    assert state.check_token("nope") is None
    refresh = state.issue_refresh_token("u@example.com", "key")
    assert state.revoke_tokens("someone-else@example.com") == 0
    assert state.revoke_tokens() == 1
    assert state.check_token(token.value) is None
    assert refresh not in state.refresh_tokens


def test_session_timeout(clock: FakeClock) -> None:
    state = OrgState(clock=clock, session_timeout=100.0)
    state.add_user("u@example.com", "pw")
    token = state.issue_token("u@example.com", "key")
    clock.now += 90
    assert state.check_token(token.value) is token
    clock.now += 90
    assert state.check_token(token.value) is token
    clock.now += 101
    assert state.check_token(token.value) is None


def test_inactive_user_token(state: OrgState) -> None:
    token = state.issue_token("u@example.com", "key")
    state.users["u@example.com"].active = False
    assert state.check_token(token.value) is None


def test_faults_are_consumed(state: OrgState) -> None:
    from aiosfstream.testing.state import Fault

    state.faults.append(Fault("connect", times=2))
    assert state.take_fault("handshake") is None
    assert state.take_fault("connect") is not None
    assert state.take_fault("connect") is not None
    assert state.take_fault("connect") is None


def test_event_dates_follow_the_clock(state: OrgState, clock: FakeClock) -> None:
    state.create_channel("/topic/T")
    event, _ = state.append_event("/topic/T", lambda _c, _r, created: {"created": created})
    assert event.created == clock.now
    assert format_datetime(event.created).endswith("Z")


def test_stats_as_dict(state: OrgState) -> None:
    state.stats.grants["password"] += 1
    data = state.stats.as_dict()
    assert data["grants"] == {"password": 1}
    state.stats.reset()
    assert state.stats.as_dict()["grants"] == {}


def test_settings_are_checked_before_any_change() -> None:
    settings = OrgSettings()
    with pytest.raises(ValueError, match="unknown setting 'max_client'"):
        settings.update({"max_clients": 3, "max_client": 3})
    assert settings.max_clients is None
    with pytest.raises(TypeError, match="'dynamic_channels' must be true or false"):
        settings.update({"dynamic_channels": 1})
    with pytest.raises(TypeError, match="'max_clients' must be an integer or null"):
        settings.update({"max_clients": True})
    with pytest.raises(ValueError, match="'max_batch_size' must be at least 1"):
        settings.update({"max_batch_size": 0})
    settings.update({"max_clients": 0, "my_domain": False})
    assert settings.as_dict()["max_clients"] == 0
    assert settings.as_dict()["my_domain"] is False


def test_daily_allowance_is_a_rolling_window(state: OrgState, clock: FakeClock) -> None:
    state.settings.update({"daily_delivery_limit": 3})
    state.client_expiry = 48 * 3600
    state.create_channel("/topic/T")
    session = open_session(state)
    state.subscribe(session, "/topic/T", -1)
    for _ in range(2):
        publish(state, "/topic/T")
    assert len(state.take_pending(session)) == 2
    clock.now += 3600
    for _ in range(2):
        publish(state, "/topic/T")
    # One delivery left: the batch is cut, the rest waits.
    assert len(state.take_pending(session)) == 1
    assert state.delivery_allowance() == 0
    clock.now += 23 * 3600
    assert state.delivery_allowance() == 2
    assert len(state.take_pending(session)) == 1


def test_refusal_carries_the_unknown_fields(state: OrgState) -> None:
    state.create_channel("/topic/T", fields=["Id"])
    session = open_session(state)
    with pytest.raises(SubscriptionRefused) as refused:
        state.subscribe(session, "/topic/T?B=1&Id=2&A=3", -1)
    assert (refused.value.reason, refused.value.fields) == ("unknown_query_fields", ("B", "A"))


def test_create_channel_again_replaces_the_options_and_keeps_the_events(state: OrgState) -> None:
    state.create_channel("/topic/T", fields=["Id"], max_subscribers=1)
    publish(state, "/topic/T")
    channel = state.create_channel("/topic/T")
    assert (channel.fields, channel.max_subscribers) == (None, None)
    assert [event.replay_id for event in channel.events] == [1]


@pytest.mark.parametrize("names", ["Id", 3, ["Id", ""], ["Id", 3]])
def test_name_set_refuses_anything_but_names(names: Any) -> None:
    with pytest.raises(TypeError, match="fields must"):
        name_set("fields", names)
