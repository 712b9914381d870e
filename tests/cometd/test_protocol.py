"""The sans-I/O Bayeux session: states, messages, sorting replies, decisions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiosfstream.cometd.advice import Advice, Reconnect
from aiosfstream.cometd.constants import BAYEUX_VERSION, ConnectionType, MetaChannel
from aiosfstream.cometd.exceptions import (
    ClientError,
    ClientInvalidOperation,
    ServerError,
)
from aiosfstream.cometd.messages import InvalidMessage, is_event, validate_payload
from aiosfstream.cometd.protocol import BayeuxProtocol, Incoming, State
from aiosfstream.cometd.recovery import Action, Phase, RecoveryPolicy, Situation, Step
from aiosfstream.typing import Message
from tests.cometd import samples

LP = ConnectionType.LONG_POLLING
WS = ConnectionType.WEBSOCKET
CLIENT_ID = "1cyu4thyxh3fgv1nqwcvebt3o9x"


def handshake_reply(
    request: Message, sample: str = samples.HANDSHAKE_SUCCESS, **fields: Any
) -> Message:
    """The real Salesforce handshake reply, answering *request*."""
    return samples.load(sample, id=request["id"], **fields)


def decide(protocol: BayeuxProtocol, reply: Message, step: Step = Step.CONNECT) -> Action:
    """What the generic recovery table does after *reply*, with the session's advice."""
    policy = RecoveryPolicy()
    outcome = policy.classify_reply(reply, protocol.advice)
    return policy.decide(Situation(Phase.RUNNING, step), outcome).action


def connected(types: Sequence[ConnectionType] = (LP,), **fields: Any) -> BayeuxProtocol:
    """A protocol that completed a Salesforce handshake."""
    protocol = BayeuxProtocol(types)
    request = protocol.handshake()
    protocol.handle_handshake(handshake_reply(request, **fields))
    return protocol


def state_of(protocol: BayeuxProtocol) -> State:
    """``protocol.state``, read through a call so that mypy does not narrow it."""
    return protocol.state


def advice_of(protocol: BayeuxProtocol) -> Advice:
    """``protocol.advice``, read through a call so that mypy does not narrow it."""
    return protocol.advice


def reach(state: State) -> BayeuxProtocol:
    """A protocol in *state*, reached through the public API only."""
    protocol = BayeuxProtocol([LP])
    if state is State.UNCONNECTED:
        return protocol
    request = protocol.handshake()
    if state is State.HANDSHAKING:
        return protocol
    if state is State.DISCONNECTED:
        protocol.close()
        return protocol
    protocol.handle_handshake(handshake_reply(request))
    if state is State.DISCONNECTING:
        protocol.disconnect()
    return protocol


def test_reach_reaches_every_state() -> None:
    for state in State:
        assert reach(state).state is state


def test_needs_a_connection_type() -> None:
    with pytest.raises(ValueError, match="connection type"):
        BayeuxProtocol([])


def test_initial_state() -> None:
    protocol = BayeuxProtocol([WS, LP])
    assert protocol.state is State.UNCONNECTED
    assert protocol.client_id is None
    assert protocol.connection_type is None
    assert protocol.advice == Advice()
    assert protocol.subscriptions == frozenset()
    assert protocol.subscription_order == []


# -- the state table -----------------------------------------------------------------------

#: The specification, written out independently of the implementation's table.
LEGAL: dict[tuple[State, str], State] = {
    (State.UNCONNECTED, "send_handshake"): State.HANDSHAKING,
    (State.HANDSHAKING, "send_handshake"): State.HANDSHAKING,
    (State.CONNECTED, "send_handshake"): State.HANDSHAKING,
    (State.HANDSHAKING, "handshake_succeeded"): State.CONNECTED,
    (State.HANDSHAKING, "handshake_failed"): State.UNCONNECTED,
    (State.CONNECTED, "session_lost"): State.UNCONNECTED,
    (State.UNCONNECTED, "session_lost"): State.UNCONNECTED,
    (State.CONNECTED, "send_disconnect"): State.DISCONNECTING,
    **{(state, "close"): State.DISCONNECTED for state in State},
}

FAILED_HANDSHAKE = (
    '{"channel":"/meta/handshake","successful":false,"error":"403::Handshake denied"}'
)


def _send_handshake(protocol: BayeuxProtocol) -> None:
    protocol.handshake()


def _handshake_succeeded(protocol: BayeuxProtocol) -> None:
    protocol.handle_handshake(samples.load(samples.HANDSHAKE_SUCCESS))


def _handshake_failed(protocol: BayeuxProtocol) -> None:
    with pytest.raises(ServerError, match="Handshake failed: 403::Handshake denied"):
        protocol.handle_handshake(samples.load(FAILED_HANDSHAKE))


def _send_disconnect(protocol: BayeuxProtocol) -> None:
    protocol.disconnect()


EVENTS: dict[str, Callable[[BayeuxProtocol], None]] = {
    "send_handshake": _send_handshake,
    "handshake_succeeded": _handshake_succeeded,
    "handshake_failed": _handshake_failed,
    "session_lost": BayeuxProtocol.session_lost,
    "send_disconnect": _send_disconnect,
    "close": BayeuxProtocol.close,
}


@pytest.mark.parametrize(
    ("state", "event"), [(state, event) for state in State for event in EVENTS]
)
def test_state_table(state: State, event: str) -> None:
    protocol = reach(state)
    expected = LEGAL.get((state, event))
    if expected is None:
        with pytest.raises(ClientInvalidOperation) as info:
            EVENTS[event](protocol)
        assert f"state {state.value}" in str(info.value)
        assert protocol.state is state
    else:
        EVENTS[event](protocol)
        assert protocol.state is expected


@pytest.mark.parametrize("state", [s for s in State if s is not State.HANDSHAKING])
def test_an_illegal_handshake_reply_changes_nothing(state: State) -> None:
    """A handshake reply that arrives when no handshake is pending is refused; it must
    not install its clientId, connection type or advice before being refused."""
    protocol = reach(state)
    before = (protocol.client_id, protocol.connection_type, protocol.advice)
    reply = samples.load(samples.HANDSHAKE_SUCCESS, clientId="other", advice={"interval": 5000})
    with pytest.raises(ClientInvalidOperation, match=state.value):
        protocol.handle_handshake(reply)
    assert protocol.state is state
    assert (protocol.client_id, protocol.connection_type, protocol.advice) == before


@pytest.mark.parametrize("state", [s for s in State if s is not State.CONNECTED])
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(BayeuxProtocol.connect, id="connect"),
        pytest.param(lambda p: p.subscribe("/topic/x"), id="subscribe"),
        pytest.param(lambda p: p.unsubscribe("/topic/x"), id="unsubscribe"),
        pytest.param(lambda p: p.publish("/topic/x", {}), id="publish"),
        pytest.param(BayeuxProtocol.disconnect, id="disconnect"),
    ],
)
def test_session_operations_need_the_connected_state(
    state: State, build: Callable[[BayeuxProtocol], Message]
) -> None:
    protocol = reach(state)
    with pytest.raises(ClientInvalidOperation, match=state.value):
        build(protocol)
    assert protocol.state is state


def test_close_forgets_the_client_id_and_is_final() -> None:
    protocol = connected()
    protocol.close()
    assert protocol.client_id is None
    assert protocol.state is State.DISCONNECTED
    protocol.close()
    assert protocol.state is State.DISCONNECTED
    with pytest.raises(ClientInvalidOperation, match="disconnected"):
        protocol.handshake()


def test_disconnect_then_close() -> None:
    protocol = connected()
    message = protocol.disconnect()
    assert message["channel"] == "/meta/disconnect"
    assert message["clientId"] == CLIENT_ID
    assert state_of(protocol) is State.DISCONNECTING
    protocol.close()
    assert state_of(protocol) is State.DISCONNECTED


# -- building messages ---------------------------------------------------------------------


def test_handshake_message() -> None:
    protocol = BayeuxProtocol([WS, LP])
    message = protocol.handshake()
    assert message == {
        "channel": "/meta/handshake",
        "id": "1",
        "version": BAYEUX_VERSION,
        "minimumVersion": BAYEUX_VERSION,
        "supportedConnectionTypes": ["websocket", "long-polling"],
    }
    assert json.loads(json.dumps(message)) == message


def test_messages_carry_the_client_id_after_the_handshake() -> None:
    protocol = connected()
    assert protocol.client_id == CLIENT_ID
    for message in (
        protocol.connect(),
        protocol.subscribe("/topic/x"),
        protocol.unsubscribe("/topic/x"),
        protocol.publish("/service/x", {"a": 1}),
        protocol.disconnect(),
    ):
        assert message["clientId"] == CLIENT_ID


def test_a_new_handshake_drops_the_old_client_id() -> None:
    protocol = connected()
    message = protocol.handshake()
    assert "clientId" not in message
    assert protocol.client_id is None
    protocol.handle_handshake(handshake_reply(message, clientId="second"))
    assert protocol.connect()["clientId"] == "second"


def test_ids_are_unique_increasing_strings() -> None:
    protocol = BayeuxProtocol([LP])
    messages = [protocol.handshake()]
    protocol.handle_handshake(handshake_reply(messages[0]))
    for _ in range(12):
        messages += [
            protocol.connect(),
            protocol.subscribe("/topic/x"),
            protocol.unsubscribe("/topic/x"),
            protocol.publish("/topic/y", None),
        ]
    messages.append(protocol.handshake())
    protocol.handle_handshake(handshake_reply(messages[-1]))
    messages.append(protocol.connect())
    ids = [message["id"] for message in messages]
    assert all(isinstance(message_id, str) for message_id in ids)
    assert len(set(ids)) == len(ids)
    numbers = [int(message_id) for message_id in ids]
    assert numbers == sorted(numbers)
    assert numbers == list(range(1, len(ids) + 1))


def test_only_the_first_connect_of_a_session_asks_for_an_immediate_answer() -> None:
    protocol = connected()
    first = protocol.connect()
    assert first["channel"] == "/meta/connect"
    assert first["connectionType"] == "long-polling"
    assert first["advice"] == {"timeout": 0}
    for _ in range(3):
        assert "advice" not in protocol.connect()
    # A new session starts over.
    protocol.handle_handshake(handshake_reply(protocol.handshake()))
    assert protocol.connect()["advice"] == {"timeout": 0}
    assert "advice" not in protocol.connect()


def test_the_first_connect_advice_is_not_shared_between_messages() -> None:
    protocol = connected()
    first = protocol.connect()
    first["advice"]["timeout"] = 99
    protocol.handle_handshake(handshake_reply(protocol.handshake()))
    assert protocol.connect()["advice"] == {"timeout": 0}


def test_subscribe_unsubscribe_publish_messages() -> None:
    protocol = connected()
    assert protocol.subscribe("/event/Low_Ink__e") == {
        "channel": "/meta/subscribe",
        "id": "2",
        "clientId": CLIENT_ID,
        "subscription": "/event/Low_Ink__e",
    }
    assert protocol.unsubscribe("/event/Low_Ink__e") == {
        "channel": "/meta/unsubscribe",
        "id": "3",
        "clientId": CLIENT_ID,
        "subscription": "/event/Low_Ink__e",
    }
    assert protocol.publish("/u/TestStreaming", {"payload": "x"}) == {
        "channel": "/u/TestStreaming",
        "id": "4",
        "clientId": CLIENT_ID,
        "data": {"payload": "x"},
    }


def test_subscribe_accepts_wildcards_but_publish_does_not() -> None:
    protocol = connected()
    assert protocol.subscribe("/topic/*")["subscription"] == "/topic/*"
    with pytest.raises(ValueError, match="wildcards"):
        protocol.publish("/topic/*", {})


@pytest.mark.parametrize("channel", ["/meta/connect", "/meta/subscribe", "/meta/custom"])
def test_publish_refuses_meta_channels(channel: str) -> None:
    with pytest.raises(ValueError, match="meta channel"):
        connected().publish(channel, {})


@pytest.mark.parametrize("state", list(State))
def test_channel_errors_come_before_state_errors(state: State) -> None:
    protocol = reach(state)
    with pytest.raises(TypeError):
        protocol.subscribe(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must start with '/'"):
        protocol.unsubscribe("topic")
    with pytest.raises(ValueError, match="wildcards"):
        protocol.publish("/a/*", 1)


def test_invalid_messages_do_not_use_an_id() -> None:
    protocol = connected()
    with pytest.raises(ValueError, match="must start with '/'"):
        protocol.subscribe("nope")
    assert protocol.connect()["id"] == "2"


# -- connection type negotiation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "offered", "chosen"),
    [
        ([LP], ["long-polling"], LP),
        ([WS, LP], ["long-polling"], LP),
        ([LP, WS], ["websocket", "long-polling"], LP),
        ([WS, LP], ["long-polling", "websocket"], WS),
        ([WS], ["callback-polling", "websocket"], WS),
    ],
)
def test_connection_type_is_the_first_of_ours_the_server_offers(
    ours: list[ConnectionType], offered: list[str], chosen: ConnectionType
) -> None:
    protocol = connected(ours, supportedConnectionTypes=offered)
    assert protocol.connection_type is chosen
    assert protocol.connect()["connectionType"] == chosen.value


@pytest.mark.parametrize(
    "offered", [["long-polling"], [], None, "websocket", {"websocket": True}, ["callback-polling"]]
)
def test_no_common_connection_type(offered: object) -> None:
    protocol = BayeuxProtocol([WS])
    request = protocol.handshake()
    reply = handshake_reply(request, supportedConnectionTypes=offered)
    with pytest.raises(ClientError, match="websocket") as info:
        protocol.handle_handshake(reply)
    assert not isinstance(info.value, ServerError)
    assert protocol.state is State.UNCONNECTED
    assert protocol.client_id is None
    assert protocol.connection_type is None


def test_missing_supported_connection_types() -> None:
    protocol = BayeuxProtocol([LP])
    request = protocol.handshake()
    with pytest.raises(ClientError):
        protocol.handle_handshake(
            samples.load(samples.HANDSHAKE_SUCCESS, drop=("supportedConnectionTypes",))
        )
    assert request["supportedConnectionTypes"] == ["long-polling"]
    assert protocol.state is State.UNCONNECTED


# -- handle_handshake ----------------------------------------------------------------------


@pytest.mark.parametrize("sample", [samples.HANDSHAKE_SUCCESS, samples.HANDSHAKE_SUCCESS_DOC])
def test_handshake_success(sample: str) -> None:
    protocol = BayeuxProtocol([WS, LP])
    request = protocol.handshake()
    reply = handshake_reply(request, sample)
    protocol.handle_handshake(reply)
    assert protocol.state is State.CONNECTED
    assert protocol.client_id == reply["clientId"]
    assert protocol.connection_type is LP
    assert protocol.advice == Advice()


@pytest.mark.parametrize(
    "sample", [FAILED_HANDSHAKE, samples.HANDSHAKE_AUTH_INVALID, samples.HANDSHAKE_DENIED_LIMIT]
)
def test_handshake_failure(sample: str) -> None:
    protocol = BayeuxProtocol([LP])
    protocol.handshake()
    reply = samples.load(sample)
    with pytest.raises(ServerError, match="Handshake failed") as info:
        protocol.handle_handshake(reply)
    assert info.value.response is reply
    assert info.value.error_code == 403
    assert info.value.error_message == "Handshake denied"
    assert protocol.state is State.UNCONNECTED
    assert protocol.client_id is None
    assert protocol.connection_type is None


@pytest.mark.parametrize("successful", [None, "absent"])
def test_handshake_reply_without_successful_is_a_failure(successful: str | None) -> None:
    protocol = BayeuxProtocol([LP])
    protocol.handshake()
    reply = samples.load(samples.HANDSHAKE_SUCCESS, drop=("successful",))
    if successful is None:
        reply["successful"] = None
    with pytest.raises(ServerError, match="Handshake failed"):
        protocol.handle_handshake(reply)
    assert protocol.state is State.UNCONNECTED


@pytest.mark.parametrize("client_id", ["absent", None, "", 42, ["abc"]])
def test_handshake_reply_without_a_client_id(client_id: object) -> None:
    protocol = BayeuxProtocol([LP])
    protocol.handshake()
    reply = samples.load(samples.HANDSHAKE_SUCCESS, drop=("clientId",))
    if client_id != "absent":
        reply["clientId"] = client_id
    # A successful reply that cannot be used is malformed, not a refusal: the recovery
    # table retries it rather than reading its "successful" as success.
    with pytest.raises(InvalidMessage, match="no clientId"):
        protocol.handle_handshake(reply)
    assert protocol.state is State.UNCONNECTED
    assert protocol.client_id is None


def test_a_failed_rehandshake_keeps_the_subscriptions_for_later() -> None:
    protocol = connected()
    protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), "/topic/a")
    protocol.handshake()
    with pytest.raises(ServerError):
        protocol.handle_handshake(samples.load(FAILED_HANDSHAKE))
    assert protocol.subscription_order == ["/topic/a"]
    protocol.handle_handshake(handshake_reply(protocol.handshake()))
    assert protocol.subscription_order == ["/topic/a"]


# -- sort ----------------------------------------------------------------------------------


def test_sort_a_salesforce_connect_batch_in_any_order() -> None:
    protocol = connected()
    request = protocol.connect()
    reply = samples.load(samples.FIRST_CONNECT, id=request["id"])
    events = [samples.load(sample) for sample in samples.EVENTS]
    payload = [events[0], events[1], reply, events[2], events[3]]
    incoming = protocol.sort(payload, [request])
    assert incoming.replies == {request["id"]: reply}
    assert incoming.replies[request["id"]] is reply
    assert incoming.events == events
    assert incoming.unsolicited == []
    assert protocol.advice == Advice(Reconnect.RETRY, timeout=110.0, interval=0.0)


def test_sort_matches_integer_ids() -> None:
    protocol = connected()
    requests = [protocol.connect() for _ in range(7)]
    request = requests[-1]
    assert request["id"] == "8"
    reply = samples.load(samples.CONNECT_AUTH_INVALID, id=8)
    incoming = protocol.sort([reply], requests)
    assert incoming.replies == {"8": reply}
    assert protocol.advice.reconnect is Reconnect.NONE


def test_sort_matches_the_real_integer_id_seven() -> None:
    requests: list[Message] = [{"channel": "/meta/connect", "id": "7"}]
    reply = samples.load(samples.CONNECT_AUTH_INVALID)
    assert reply["id"] == 7
    assert BayeuxProtocol([LP]).sort([reply], requests).replies == {"7": reply}


def test_sort_matches_a_reply_without_id_by_channel() -> None:
    protocol = connected()
    subscribe = protocol.subscribe("/topic/x")
    connect = protocol.connect()
    reply = samples.load(samples.UNKNOWN_CLIENT_403, drop=("id",))
    incoming = protocol.sort([reply], [subscribe, connect])
    assert incoming.replies == {connect["id"]: reply}
    assert incoming.events == []
    assert incoming.unsolicited == []


def test_sort_matches_a_faye_reply_without_id() -> None:
    protocol = connected()
    connect = protocol.connect()
    reply = samples.load(samples.UNKNOWN_CLIENT_FAYE)
    assert "id" not in reply
    assert protocol.sort([reply], [connect]).replies == {connect["id"]: reply}


def test_sort_does_not_match_a_reply_with_a_foreign_id() -> None:
    protocol = connected()
    connect = protocol.connect()
    stale = samples.load(samples.IDLE_CONNECT, id="1")
    incoming = protocol.sort([stale], [connect])
    assert incoming.replies == {}
    assert incoming.events == []
    assert incoming.unsolicited == [stale]


def test_sort_keeps_only_the_first_reply_to_a_request() -> None:
    protocol = connected()
    connect = protocol.connect()
    first = samples.load(samples.IDLE_CONNECT, id=connect["id"])
    second = samples.load(samples.IDLE_CONNECT, drop=("id",))
    incoming = protocol.sort([first, second], [connect])
    assert incoming.replies == {connect["id"]: first}
    assert incoming.replies[connect["id"]] is first
    assert incoming.unsolicited == [second]


def test_sort_matches_several_requests() -> None:
    protocol = connected()
    subscribes = [protocol.subscribe(f"/topic/{n}") for n in range(3)]
    replies = [
        samples.load(samples.SUBSCRIBE_SUCCESS, id=int(request["id"]), subscription=f"/topic/{n}")
        for n, request in enumerate(subscribes)
    ]
    incoming = protocol.sort(list(reversed(replies)), subscribes)
    assert incoming.replies == {
        request["id"]: r for request, r in zip(subscribes, replies, strict=True)
    }


def test_an_event_with_a_matching_id_is_still_an_event() -> None:
    protocol = connected()
    connect = protocol.connect()
    event = samples.load(samples.PLATFORM_EVENT, id=connect["id"])
    incoming = protocol.sort([event], [connect])
    assert incoming.replies == {}
    assert incoming.events == [event]


def test_an_event_on_a_published_channel_is_not_the_publish_reply() -> None:
    protocol = connected()
    publish = protocol.publish("/u/TestStreaming", {"payload": "x"})
    event = samples.load(samples.GENERIC_EVENT)
    reply = {"channel": "/u/TestStreaming", "id": publish["id"], "successful": True}
    incoming = protocol.sort([event, reply], [publish])
    assert incoming.events == [event]
    assert incoming.replies == {publish["id"]: reply}


@pytest.mark.parametrize(
    "message",
    [
        json.loads(samples.SERVER_DISCONNECT),
        {"channel": "/meta/disconnect"},
        {"channel": "/meta/disconnect", "data": {}},
    ],
)
def test_a_server_disconnect_is_unsolicited(message: Message) -> None:
    protocol = connected()
    connect = protocol.connect()
    event = samples.load(samples.PUSHTOPIC_EVENT)
    incoming = protocol.sort([event, message], [connect])
    assert incoming.replies == {}
    assert incoming.events == [event]
    assert incoming.unsolicited == [message]


def test_sort_without_requests() -> None:
    protocol = connected()
    event = samples.load(samples.CDC_EVENT)
    reply = samples.load(samples.IDLE_CONNECT)
    no_data = {"channel": "/topic/x"}
    incoming = protocol.sort([reply, event, no_data], ())
    assert incoming == Incoming(replies={}, events=[event], unsolicited=[reply, no_data])


def test_sort_updates_the_advice_from_any_message() -> None:
    protocol = connected()
    connect = protocol.connect()
    event = samples.load(samples.PUSHTOPIC_EVENT, advice={"interval": 2000})
    disconnect = {"channel": "/meta/disconnect", "advice": {"reconnect": "handshake"}}
    foreign = samples.load(samples.IDLE_CONNECT, id="999", advice={"timeout": 30000})
    incoming = protocol.sort([event, disconnect, foreign], [connect])
    assert incoming.events == [event]
    assert incoming.unsolicited == [disconnect, foreign]
    assert protocol.advice == Advice(Reconnect.HANDSHAKE, timeout=30.0, interval=2.0)


def test_later_advice_wins_within_a_batch() -> None:
    protocol = connected()
    payload: list[Message] = [
        {"channel": "/topic/x", "data": 1, "advice": {"interval": 1000}},
        {"channel": "/topic/x", "data": 2, "advice": {"interval": 3000}},
    ]
    protocol.sort(payload, ())
    assert protocol.advice.interval == 3.0


def test_sort_does_not_change_the_messages() -> None:
    protocol = connected()
    connect = protocol.connect()
    payload = [samples.load(samples.FIRST_CONNECT, id=connect["id"])] + [
        samples.load(sample) for sample in samples.EVENTS
    ]
    snapshot = json.dumps(payload)
    protocol.sort(payload, [connect])
    assert json.dumps(payload) == snapshot


# -- subscriptions -------------------------------------------------------------------------


def test_handle_subscribe_records_in_order() -> None:
    protocol = connected()
    for channel in ("/topic/b", "/event/A__e", "/data/ChangeEvents"):
        protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), channel)
    assert protocol.subscription_order == ["/topic/b", "/event/A__e", "/data/ChangeEvents"]
    assert protocol.subscriptions == frozenset(protocol.subscription_order)
    # A repeated subscription keeps its original place.
    protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), "/topic/b")
    assert protocol.subscription_order == ["/topic/b", "/event/A__e", "/data/ChangeEvents"]


def test_subscription_order_is_a_copy() -> None:
    protocol = connected()
    protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), "/topic/a")
    protocol.subscription_order.append("/topic/evil")
    assert protocol.subscription_order == ["/topic/a"]
    assert isinstance(protocol.subscriptions, frozenset)


@pytest.mark.parametrize(
    ("sample", "code", "message"),
    [
        (samples.REPLAY_ERROR, 400, samples.REPLAY_ERROR_MESSAGE),
        (
            samples.SUBSCRIBE_NO_SUCH_TOPIC,
            400,
            "The channel you requested to subscribe to does not exist {/topic/AccountUpdates}",
        ),
    ],
)
def test_handle_subscribe_failure(sample: str, code: int, message: str) -> None:
    protocol = connected()
    reply = samples.load(sample)
    channel = reply["subscription"]
    with pytest.raises(ServerError, match=f"Subscribe request to {channel} failed") as info:
        protocol.handle_subscribe(reply, channel)
    assert info.value.response is reply
    assert info.value.error_code == code
    assert info.value.error_message == message
    assert protocol.subscriptions == frozenset()


def test_a_failed_subscribe_keeps_an_earlier_subscription() -> None:
    protocol = connected()
    protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), "/data/ChangeEvents")
    with pytest.raises(ServerError):
        protocol.handle_subscribe(samples.load(samples.REPLAY_ERROR), "/data/ChangeEvents")
    assert protocol.subscription_order == ["/data/ChangeEvents"]


def test_handle_unsubscribe() -> None:
    protocol = connected()
    for channel in ("/topic/a", "/topic/b", "/topic/c"):
        protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), channel)
    ok: Message = {"channel": "/meta/unsubscribe", "id": "9", "successful": True}
    protocol.handle_unsubscribe(ok, "/topic/b")
    assert protocol.subscription_order == ["/topic/a", "/topic/c"]
    # Unsubscribing from a channel we never had is harmless.
    protocol.handle_unsubscribe(ok, "/topic/zzz")
    assert protocol.subscription_order == ["/topic/a", "/topic/c"]


def test_handle_unsubscribe_failure_keeps_the_subscription() -> None:
    protocol = connected()
    protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), "/topic/a")
    refused: Message = {
        "channel": "/meta/unsubscribe",
        "id": "9",
        "successful": False,
        "error": "403::Unknown client",
    }
    with pytest.raises(ServerError, match="Unsubscribe request from /topic/a failed") as info:
        protocol.handle_unsubscribe(refused, "/topic/a")
    assert info.value.error_code == 403
    assert protocol.subscription_order == ["/topic/a"]


def test_forget_subscription() -> None:
    protocol = connected()
    for channel in ("/topic/a", "/topic/b"):
        protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), channel)
    protocol.forget_subscription("/topic/a")
    assert protocol.subscription_order == ["/topic/b"]
    protocol.forget_subscription("/topic/a")
    protocol.forget_subscription("/never")
    assert protocol.subscription_order == ["/topic/b"]


def test_subscriptions_survive_a_new_handshake_in_order() -> None:
    protocol = connected()
    for channel in ("/topic/a", "/topic/b"):
        protocol.handle_subscribe(samples.load(samples.SUBSCRIBE_SUCCESS), channel)
    assert decide(protocol, samples.load(samples.UNKNOWN_CLIENT_403)) is Action.HANDSHAKE
    protocol.session_lost()
    request = protocol.handshake()
    protocol.handle_handshake(handshake_reply(request, clientId="new"))
    assert protocol.subscription_order == ["/topic/a", "/topic/b"]


# -- what the recovery table makes of real replies -------------------------------------


@pytest.mark.parametrize("sample", [samples.FIRST_CONNECT, samples.IDLE_CONNECT])
def test_a_successful_connect_continues(sample: str) -> None:
    protocol = connected()
    request = protocol.connect()
    reply = samples.load(sample, id=request["id"])
    incoming = protocol.sort([reply], [request])
    assert decide(protocol, incoming.replies[request["id"]]) is Action.CONNECT
    assert protocol.state is State.CONNECTED


def test_first_connect_advice_is_kept_by_idle_connects() -> None:
    protocol = connected()
    first = protocol.connect()
    protocol.sort([samples.load(samples.FIRST_CONNECT, id=first["id"])], [first])
    second = protocol.connect()
    protocol.sort([samples.load(samples.IDLE_CONNECT, id=second["id"])], [second])
    assert protocol.advice == Advice(Reconnect.RETRY, timeout=110.0, interval=0.0)


CONNECT_FAILURES = [
    pytest.param(samples.UNKNOWN_CLIENT_403, {}, (), Action.HANDSHAKE, id="403-unknown-client"),
    pytest.param(
        samples.UNKNOWN_CLIENT_403, {}, ("id",), Action.HANDSHAKE, id="403-unknown-client-no-id"
    ),
    pytest.param(
        samples.UNKNOWN_CLIENT_403,
        {},
        ("advice",),
        Action.HANDSHAKE,
        id="403-unknown-client-no-advice",
    ),
    pytest.param(
        samples.UNKNOWN_CLIENT_403,
        {"advice": {"reconnect": "retry"}},
        (),
        Action.HANDSHAKE,
        id="403-unknown-client-retry-advice",
    ),
    pytest.param(
        samples.UNKNOWN_CLIENT_403,
        {"clientId": "hbx1v2cxebbeder11s99dqkxmasre"},
        (),
        Action.HANDSHAKE,
        id="403-unknown-client-with-client-id",
    ),
    pytest.param(
        samples.UNKNOWN_CLIENT_403_NONE, {}, (), Action.FAIL, id="403-unknown-client-none"
    ),
    pytest.param(samples.UNKNOWN_CLIENT_FAYE, {}, (), Action.HANDSHAKE, id="faye-401"),
    pytest.param(
        samples.UNKNOWN_CLIENT_FAYE, {}, ("advice",), Action.HANDSHAKE, id="faye-401-no-advice"
    ),
    pytest.param(samples.UNKNOWN_CLIENT_402, {}, (), Action.HANDSHAKE, id="cometd-402"),
    pytest.param(
        samples.UNKNOWN_CLIENT_402_NO_ADVICE, {}, (), Action.HANDSHAKE, id="cometd-402-no-advice"
    ),
    pytest.param(
        samples.UNKNOWN_CLIENT_403,
        {"error": "403::UNKNOWN CLIENT"},
        ("advice",),
        Action.HANDSHAKE,
        id="unknown-client-upper-case",
    ),
    pytest.param(samples.CONNECT_AUTH_INVALID, {}, (), Action.FAIL, id="401-auth-invalid"),
    pytest.param(samples.CONNECT_SERVER_BUSY, {}, (), Action.FAIL, id="503-server-busy"),
    pytest.param(samples.CONNECT_USER_MISMATCH, {}, (), Action.FAIL, id="400-user-mismatch"),
    pytest.param(
        samples.IDLE_CONNECT,
        {"successful": False, "error": "500::Internal error", "advice": {"reconnect": "retry"}},
        (),
        Action.CONNECT,
        id="retry-advice",
    ),
    pytest.param(
        samples.IDLE_CONNECT,
        {"successful": False, "error": "500::Internal error"},
        (),
        Action.CONNECT,
        id="no-advice",
    ),
    pytest.param(
        samples.IDLE_CONNECT, {"successful": False}, (), Action.CONNECT, id="no-error-no-advice"
    ),
    pytest.param(
        samples.IDLE_CONNECT,
        {"successful": False, "error": "500::x", "advice": {"reconnect": "handshake"}},
        (),
        Action.HANDSHAKE,
        id="handshake-advice",
    ),
    pytest.param(
        samples.IDLE_CONNECT,
        {"successful": False, "error": "500::x", "advice": {"reconnect": "none"}},
        (),
        Action.FAIL,
        id="none-advice",
    ),
]


@pytest.mark.parametrize(("sample", "fields", "drop", "action"), CONNECT_FAILURES)
def test_connect_failures(
    sample: str, fields: dict[str, Any], drop: tuple[str, ...], action: Action
) -> None:
    """What the client does: sort the response, then decide on the reply."""
    protocol = connected()
    request = protocol.connect()
    reply = samples.load(sample, drop=drop, **fields)
    if "id" in reply:
        reply["id"] = request["id"]
    incoming = protocol.sort(validate_payload([reply]), [request])
    assert incoming.replies == {request["id"]: reply}
    assert decide(protocol, reply) is action
    assert protocol.state is State.CONNECTED  # deciding changes nothing


@pytest.mark.parametrize(("sample", "fields", "drop", "action"), CONNECT_FAILURES)
def test_the_decision_needs_the_reply_alone(
    sample: str, fields: dict[str, Any], drop: tuple[str, ...], action: Action
) -> None:
    """Without ``sort`` first: the reply's own advice is enough."""
    protocol = connected()
    assert decide(protocol, samples.load(sample, drop=drop, **fields)) is action


def test_the_documented_unknown_client_without_channel_means_handshake() -> None:
    protocol = connected()
    reply = samples.load(samples.UNKNOWN_CLIENT_403_DOC)
    assert decide(protocol, reply) is Action.HANDSHAKE


def test_deciding_does_not_store_the_reply_advice() -> None:
    protocol = connected()
    decide(protocol, samples.load(samples.CONNECT_AUTH_INVALID))
    assert protocol.advice == Advice()


def test_stored_advice_applies_to_a_reply_without_advice() -> None:
    protocol = connected()
    protocol.sort([{"channel": "/topic/x", "data": {}, "advice": {"reconnect": "handshake"}}], ())
    reply = samples.load(samples.IDLE_CONNECT, successful=False, error="500::x")
    assert decide(protocol, reply) is Action.HANDSHAKE


def test_unknown_client_after_a_server_disconnect() -> None:
    protocol = connected()
    protocol.session_lost()
    assert decide(protocol, samples.load(samples.UNKNOWN_CLIENT_403)) is Action.HANDSHAKE
    assert protocol.state is State.UNCONNECTED


HANDSHAKE_FAILURES = [
    pytest.param(samples.HANDSHAKE_AUTH_INVALID, {}, Action.FAIL, id="401-failure-reason"),
    pytest.param(samples.HANDSHAKE_DENIED_LIMIT, {}, Action.FAIL, id="connection-limit"),
    pytest.param(FAILED_HANDSHAKE, {}, Action.HANDSHAKE, id="no-advice"),
    pytest.param(
        FAILED_HANDSHAKE, {"advice": {"reconnect": "retry"}}, Action.HANDSHAKE, id="retry-advice"
    ),
    pytest.param(
        FAILED_HANDSHAKE,
        {"advice": {"reconnect": "handshake", "interval": 1000}},
        Action.HANDSHAKE,
        id="handshake-advice",
    ),
    pytest.param(
        samples.HANDSHAKE_AUTH_INVALID,
        {"advice": {"interval": 0}},
        Action.HANDSHAKE,
        id="401-failure-reason-no-reconnect",
    ),
]


@pytest.mark.parametrize(("sample", "fields", "action"), HANDSHAKE_FAILURES)
def test_handshake_failures(sample: str, fields: dict[str, Any], action: Action) -> None:
    protocol = connected()
    # The session is lost first, as after a 403::Unknown client.
    connect = protocol.connect()
    lost = samples.load(samples.UNKNOWN_CLIENT_403, id=connect["id"])
    protocol.sort([lost], [connect])
    assert decide(protocol, lost) is Action.HANDSHAKE
    protocol.session_lost()
    request = protocol.handshake()
    reply = samples.load(sample, **fields)
    reply["id"] = request["id"]
    incoming = protocol.sort(validate_payload([reply]), [request])
    with pytest.raises(ServerError) as info:
        protocol.handle_handshake(incoming.replies[request["id"]])
    assert info.value.response is reply
    assert decide(protocol, reply, Step.HANDSHAKE) is action
    assert protocol.state is State.UNCONNECTED


def test_a_handshake_failure_without_advice_from_a_fresh_client() -> None:
    protocol = BayeuxProtocol([LP])
    protocol.handshake()
    reply = samples.load(FAILED_HANDSHAKE)
    with pytest.raises(ServerError):
        protocol.handle_handshake(reply)
    assert decide(protocol, reply, Step.HANDSHAKE) is Action.HANDSHAKE


# -- stale advice --------------------------------------------------------------------------


def test_stale_advice_is_reset_by_a_new_handshake() -> None:
    protocol = connected()
    connect = protocol.connect()
    lost = samples.load(
        samples.UNKNOWN_CLIENT_403,
        id=connect["id"],
        advice={
            "reconnect": "handshake",
            "interval": 0,
            "timeout": 110000,
        },
    )
    protocol.sort([lost], [connect])
    assert protocol.advice.reconnect is Reconnect.HANDSHAKE
    assert decide(protocol, lost) is Action.HANDSHAKE
    protocol.session_lost()
    request = protocol.handshake()
    # The handshake reply repeats the old session's "handshake" advice (cometd/cometd#2057).
    reply = handshake_reply(request, advice={"reconnect": "handshake", "interval": 500})
    protocol.sort([reply], [request])
    protocol.handle_handshake(reply)
    assert protocol.advice == Advice(Reconnect.RETRY, timeout=110.0, interval=0.5)
    # A plain connect failure in the new session is retried, not a new handshake.
    connect = protocol.connect()
    failure = samples.load(samples.IDLE_CONNECT, id=connect["id"], successful=False, error="5::x")
    assert decide(protocol, failure) is Action.CONNECT
    assert protocol.state is State.CONNECTED


def test_advice_none_from_the_old_session_does_not_end_the_new_one() -> None:
    protocol = connected()
    protocol.sort([{"channel": "/topic/x", "data": 1, "advice": {"reconnect": "none"}}], ())
    assert advice_of(protocol).reconnect is Reconnect.NONE
    protocol.handle_handshake(handshake_reply(protocol.handshake()))
    assert advice_of(protocol).reconnect is Reconnect.RETRY
    assert decide(protocol, samples.load(samples.IDLE_CONNECT, successful=False)) is (
        Action.CONNECT
    )


# -- property: sorting arbitrary server output ---------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["retry", "handshake", "none", "403::Unknown client", "1", "2"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
CHANNELS = (
    st.sampled_from([channel.value for channel in MetaChannel])
    | st.sampled_from(["/meta/other", "/topic/x", "/event/E__e", "/service/s", "/", "x", ""])
    | JSON_VALUES
)
IDS = st.sampled_from(["1", "2", "3", "4", "5", 1, 2, 3, 4, 5, 2.0, "02"]) | JSON_VALUES
DURATIONS = st.integers() | st.integers(min_value=2**1024) | st.floats() | JSON_VALUES
ADVICE = (
    st.fixed_dictionaries(
        {},
        optional={
            "reconnect": st.sampled_from(["retry", "handshake", "none"]) | JSON_VALUES,
            "timeout": DURATIONS,
            "interval": DURATIONS,
        },
    )
    | JSON_VALUES
)
MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "channel": CHANNELS,
        "id": IDS,
        "successful": st.booleans() | JSON_VALUES,
        "advice": ADVICE,
        "data": JSON_VALUES,
        "clientId": st.text(max_size=5) | JSON_VALUES,
        "error": st.sampled_from(["403::Unknown client", "401:a:b", "x"]) | JSON_VALUES,
    },
)
PAYLOADS = (
    st.lists(MESSAGES, max_size=6) | st.lists(MESSAGES | JSON_VALUES, max_size=3) | JSON_VALUES
)


def _session_requests() -> tuple[BayeuxProtocol, list[Message]]:
    protocol = connected()
    requests = [protocol.connect(), protocol.subscribe("/topic/x"), protocol.publish("/s/x", 1)]
    return protocol, requests


@settings(max_examples=400, deadline=None)
@given(payload=PAYLOADS)
@example(payload=[{"channel": "/meta/connect", "id": "2", "successful": True}])
@example(payload=[{"channel": "/topic/x", "data": {}, "advice": {"timeout": 10**400}}])
def test_sort_partitions_any_valid_payload_and_rejects_the_rest(payload: Any) -> None:
    """``validate_payload`` then ``sort`` either raises :class:`InvalidMessage` or puts every
    message in exactly one of replies/events/unsolicited; no other exception escapes."""
    protocol, requests = _session_requests()
    try:
        valid = validate_payload(payload)
    except InvalidMessage:  # a TransportError: the client treats it as a lost connection
        return
    incoming = protocol.sort(valid, requests)
    placed = Counter(map(id, [*incoming.replies.values(), *incoming.events, *incoming.unsolicited]))
    assert placed == Counter(map(id, valid))
    request_ids = {request["id"] for request in requests}
    assert set(incoming.replies) <= request_ids
    assert all("successful" in reply for reply in incoming.replies.values())
    assert all(is_event(event) for event in incoming.events)
    assert isinstance(protocol.advice.reconnect, Reconnect)
