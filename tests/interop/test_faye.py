"""Our client against a real Faye server, over long polling and over websocket."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import time
import warnings
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from aiosfstream.cometd import Client, ConnectionType
from aiosfstream.cometd.exceptions import (
    ClientInvalidOperation,
    ResponseTooLargeError,
    ServerError,
    TransportTimeoutError,
)
from aiosfstream.cometd.transports import WebSocketTransport
from tests.interop.support import (
    Recorder,
    assert_nothing_received,
    check_prefetch_is_bounded,
    opened,
    publish_until_received,
    receive,
    subscriptions_of,
)

if TYPE_CHECKING:
    from aiosfstream.typing import Message, Payload
    from tests.interop.conftest import NodeServer
    from tests.interop.support import TcpProxy

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=[ConnectionType.LONG_POLLING, ConnectionType.WEBSOCKET], ids=str.__str__)
def connection_type(request: pytest.FixtureRequest) -> ConnectionType:
    value: ConnectionType = request.param
    return value


async def test_handshake_negotiates_requested_type(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with opened(faye_server.url, connection_type) as client:
        assert client.connection_type is connection_type
        assert not client.closed
        assert client.subscriptions == set()
        assert client.pending_count == 0
        assert not client.has_pending_messages


async def test_handshake_with_every_type_picks_one_faye_supports(
    faye_server: NodeServer,
) -> None:
    async with opened(faye_server.url) as client:
        assert client.connection_type in (ConnectionType.LONG_POLLING, ConnectionType.WEBSOCKET)
        await client.subscribe("/any")
        await client.publish("/any", {"n": 1})
        assert (await receive(client))["data"] == {"n": 1}


async def test_publish_and_receive_on_one_client(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with opened(faye_server.url, connection_type) as client:
        await client.subscribe("/chat/room")
        assert client.subscriptions == {"/chat/room"}

        reply = await client.publish("/chat/room", {"text": "hello", "n": 1})
        assert reply["successful"] is True
        assert reply["channel"] == "/chat/room"

        message = await receive(client)
        assert message["channel"] == "/chat/room"
        assert message["data"] == {"text": "hello", "n": 1}


async def test_publish_from_another_client(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with (
        opened(faye_server.url, connection_type) as subscriber,
        opened(faye_server.url, connection_type) as publisher,
    ):
        await subscriber.subscribe("/news")
        for n in range(5):
            await publisher.publish("/news", {"n": n})

        received = [await receive(subscriber) for _ in range(5)]
        assert [message["data"] for message in received] == [{"n": n} for n in range(5)]
        assert {message["channel"] for message in received} == {"/news"}
        # The publisher is not subscribed: it gets nothing.
        await assert_nothing_received(publisher)


async def test_several_channels_and_a_wildcard(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with (
        opened(faye_server.url, connection_type) as subscriber,
        opened(faye_server.url, connection_type) as publisher,
    ):
        for channel in ("/one", "/two", "/many/*"):
            await subscriber.subscribe(channel)
        assert subscriber.subscriptions == {"/one", "/two", "/many/*"}

        for channel in ("/one", "/other", "/two", "/many/x", "/many/x/deeper", "/many/y"):
            await publisher.publish(channel, {"sent_to": channel})

        received = [await receive(subscriber) for _ in range(4)]
        assert [(m["channel"], m["data"]["sent_to"]) for m in received] == [
            ("/one", "/one"),
            ("/two", "/two"),
            ("/many/x", "/many/x"),
            ("/many/y", "/many/y"),
        ]
        await assert_nothing_received(subscriber)


async def test_unsubscribe_stops_delivery(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with (
        opened(faye_server.url, connection_type) as subscriber,
        opened(faye_server.url, connection_type) as publisher,
    ):
        await subscriber.subscribe("/keep")
        await subscriber.subscribe("/drop")
        await publisher.publish("/drop", {"n": 1})
        assert (await receive(subscriber))["channel"] == "/drop"

        await subscriber.unsubscribe("/drop")
        assert subscriber.subscriptions == {"/keep"}
        # Faye delivers in order: had /drop still been subscribed, it would come first.
        await publisher.publish("/drop", {"n": 2})
        await publisher.publish("/keep", {"n": 3})
        message = await receive(subscriber)
        assert (message["channel"], message["data"]) == ("/keep", {"n": 3})
        await assert_nothing_received(subscriber)


async def test_subscribe_to_invalid_channel_raises_server_error(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with opened(faye_server.url, connection_type) as client:
        await client.subscribe("/valid")
        with pytest.raises(ServerError) as caught:
            await client.subscribe("/a/**/b")

        error = caught.value
        assert error.response is not None
        assert error.response["successful"] is False
        assert error.response["error"] == "405:/a/**/b:Invalid channel"
        assert error.error_code == 405
        assert error.error_args == ["/a/**/b"]
        assert error.error_message == "Invalid channel"
        assert client.subscriptions == {"/valid"}

        # The failure concerned one request only: the client goes on working.
        await client.publish("/valid", {"still": "working"})
        assert (await receive(client))["data"] == {"still": "working"}


async def test_publish_to_invalid_channel_raises_server_error(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    # Faye allows only letters, digits and -_!~()$@ in channel names: a dot is refused by the
    # server, not by a check in the client.
    async with opened(faye_server.url, connection_type) as client:
        with pytest.raises(ServerError) as caught:
            await client.publish("/dotted.name", {"n": 1})
        assert caught.value.response is not None
        assert caught.value.response["error"] == "405:/dotted.name:Invalid channel"
        assert caught.value.error_code == 405
        assert caught.value.error_args == ["/dotted.name"]
        assert caught.value.error_message == "Invalid channel"


async def test_extensions_see_every_event(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    recorder = Recorder()
    async with (
        opened(faye_server.url, connection_type, extensions=[recorder]) as subscriber,
        opened(faye_server.url, connection_type) as publisher,
    ):
        await subscriber.subscribe("/seen")
        for n in range(3):
            await publisher.publish("/seen", {"n": n})
        received = [await receive(subscriber) for _ in range(3)]
        assert [message["data"] for message in received] == [{"n": n} for n in range(3)]
    # Extensions such as replay tracking read incoming events: none may bypass them.
    assert [message["data"] for message in recorder.received_on("/seen")] == [
        {"n": n} for n in range(3)
    ]


@pytest.mark.timeout(90)
async def test_server_restart_is_transparent(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    recorder = Recorder()
    async with opened(faye_server.url, connection_type, extensions=[recorder]) as client:
        await client.subscribe("/restart/a")
        await client.subscribe("/restart/b")
        await client.publish("/restart/a", {"before": True})
        assert (await receive(client))["data"] == {"before": True}
        (first_handshake,) = recorder.received_on("/meta/handshake")
        old_client_id = first_handshake["clientId"]

        waiting = asyncio.create_task(client.receive())
        faye_server.restart(downtime=0.5)
        await asyncio.sleep(0)
        assert not waiting.done()

        async with opened(faye_server.url, connection_type) as publisher:
            message = await publish_until_received(publisher, client, "/restart/b", pending=waiting)
        assert message["channel"] == "/restart/b"
        assert "attempt" in message["data"]
        assert client.subscriptions == {"/restart/a", "/restart/b"}
        assert not client.closed

    # What happened on the wire: Faye forgot us and said so with handshake advice, the client
    # shook hands again and renewed both subscriptions under its new id.
    unknown = [
        reply
        for reply in recorder.received
        if reply.get("error") == f"401:{old_client_id}:Unknown client"
    ]
    assert unknown, recorder.received
    assert any(reply.get("advice") == {"reconnect": "handshake"} for reply in unknown)
    handshakes = [reply for reply in recorder.received_on("/meta/handshake") if reply["successful"]]
    assert len(handshakes) >= 2
    new_client_id = handshakes[-1]["clientId"]
    assert new_client_id != old_client_id
    resubscribed = [
        m for m in recorder.sent_on("/meta/subscribe") if m["clientId"] == new_client_id
    ]
    assert subscriptions_of(resubscribed) == {"/restart/a", "/restart/b"}


async def test_outage_longer_than_connection_timeout_raises(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    connection_timeout = 2.0
    async with opened(
        faye_server.url, connection_type, connection_timeout=connection_timeout
    ) as client:
        await client.subscribe("/outage")
        await client.publish("/outage", {"n": 1})
        assert (await receive(client))["data"] == {"n": 1}

        waiting = asyncio.create_task(client.receive())
        await asyncio.sleep(0.2)  # let the client settle in its next /meta/connect
        before_stop = time.monotonic()
        faye_server.stop()
        server_gone = time.monotonic()

        with pytest.raises(TransportTimeoutError):
            await asyncio.wait_for(waiting, connection_timeout * 3)
        raised = time.monotonic()

    # Not before the server had been gone for connection_timeout, and not much later.
    assert raised - before_stop >= connection_timeout - 0.01
    assert raised - server_gone <= connection_timeout * 1.2


@pytest.mark.timeout(90)
async def test_no_connection_timeout_waits_out_an_outage(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    async with opened(faye_server.url, connection_type, connection_timeout=None) as client:
        await client.subscribe("/patient")
        await client.publish("/patient", {"n": 1})
        assert (await receive(client))["data"] == {"n": 1}

        waiting = asyncio.create_task(client.receive())
        faye_server.stop()
        await asyncio.sleep(4.0)
        assert not waiting.done()
        assert not client.closed
        faye_server.start()

        async with opened(faye_server.url, connection_type) as publisher:
            message = await publish_until_received(
                publisher, client, "/patient", pending=waiting, timeout=40
            )
            assert message["channel"] == "/patient"
            # And it keeps delivering after that.
            await publisher.publish("/patient", {"n": "after"})
            while (await receive(client))["data"] != {"n": "after"}:
                pass
        assert client.subscriptions == {"/patient"}


def _client_tasks(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task not in before and task is not current}


async def test_close_is_clean(faye_server: NodeServer, connection_type: ConnectionType) -> None:
    before = asyncio.all_tasks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = Client(faye_server.url, connection_type)
        await client.open()
        await client.subscribe("/bye")
        await client.publish("/bye", {"n": 1})
        assert (await receive(client))["data"] == {"n": 1}
        assert _client_tasks(before), "an open client is expected to have a task listening"

        await asyncio.wait_for(client.close(), 5)
        assert client.closed
        await asyncio.sleep(0.1)
        assert _client_tasks(before) == set()
        gc.collect()

        with pytest.raises(ClientInvalidOperation):
            await client.receive()
        with pytest.raises(ClientInvalidOperation):
            await client.subscribe("/again")
        with pytest.raises(ClientInvalidOperation):
            await client.publish("/bye", {"n": 2})
        del client
        gc.collect()
    assert [str(warning.message) for warning in caught] == []


async def test_close_while_server_is_down_is_prompt_and_clean(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    before = asyncio.all_tasks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = Client(faye_server.url, connection_type, connection_timeout=2.0)
        await client.open()
        await client.subscribe("/down")
        faye_server.stop()
        await asyncio.sleep(0.3)

        started = time.monotonic()
        await asyncio.wait_for(client.close(), 10)
        assert time.monotonic() - started < 3.0
        assert client.closed
        await asyncio.sleep(0.1)
        assert _client_tasks(before) == set()
        del client
        gc.collect()
    assert [str(warning.message) for warning in caught] == []


async def test_async_iteration(faye_server: NodeServer, connection_type: ConnectionType) -> None:
    async with opened(faye_server.url, connection_type) as client:
        await client.subscribe("/iter")
        for n in range(3):
            await client.publish("/iter", {"n": n})
        seen = []

        async def consume() -> None:
            async for message in client:
                seen.append(message["data"]["n"])
                if len(seen) == 3:
                    break

        await asyncio.wait_for(consume(), 5)
        assert seen == [0, 1, 2]


async def test_max_pending_count_bounds_prefetch(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    await check_prefetch_is_bounded(faye_server.url, connection_type, limit=3, total=15)


async def test_reconnects_after_the_connection_is_dropped(
    faye_server: NodeServer, faye_proxy: TcpProxy, connection_type: ConnectionType
) -> None:
    recorder = Recorder()
    async with (
        opened(faye_proxy.url(faye_server.url), connection_type, extensions=[recorder]) as client,
        opened(faye_server.url, connection_type) as publisher,
    ):
        await client.subscribe("/dropped")
        await publisher.publish("/dropped", {"n": 0})
        assert (await receive(client))["data"] == {"n": 0}
        await asyncio.sleep(0.2)  # let the client settle in its next /meta/connect
        accepted = faye_proxy.accepted

        faye_proxy.drop()
        message = await publish_until_received(publisher, client, "/dropped")
        assert message["channel"] == "/dropped"
        assert faye_proxy.accepted > accepted
        assert client.subscriptions == {"/dropped"}
        assert not client.closed

    # Faye still knew the session: the client went on polling with the same id.
    (handshake,) = recorder.received_on("/meta/handshake")
    connects = recorder.sent_on("/meta/connect")
    assert {connect["clientId"] for connect in connects} == {handshake["clientId"]}


async def test_many_messages_arrive_complete_and_in_order(
    faye_server: NodeServer, connection_type: ConnectionType
) -> None:
    total = 300
    async with (
        opened(faye_server.url, connection_type) as subscriber,
        opened(faye_server.url, connection_type) as publisher,
    ):
        await subscriber.subscribe("/many")

        async def consume() -> list[int]:
            return [(await receive(subscriber))["data"]["n"] for _ in range(total)]

        consumer = asyncio.create_task(consume())
        for n in range(total):
            await publisher.publish("/many", {"n": n, "text": "x" * 200})
        assert await asyncio.wait_for(consumer, 30) == list(range(total))
        await assert_nothing_received(subscriber)


async def test_websocket_keeps_one_socket_for_the_session(
    faye_server: NodeServer, faye_proxy: TcpProxy
) -> None:
    recorder = Recorder()
    url = faye_proxy.url(faye_server.url)
    async with opened(url, ConnectionType.WEBSOCKET, extensions=[recorder]) as client:
        await client.subscribe("/echo")
        for n in range(20):
            await client.publish("/echo", {"n": n})
            assert (await receive(client))["data"] == {"n": n}
        # The handshake's HTTP connection and the websocket: nothing opened per request.
        assert faye_proxy.accepted <= 2
    connects = recorder.sent_on("/meta/connect")
    assert connects
    assert {connect["connectionType"] for connect in connects} == {"websocket"}


async def test_websocket_transport_against_faye(faye_server: NodeServer) -> None:
    """The transport alone speaks Bayeux to Faye, and survives a frame over its limit."""
    limit = 10_000
    events: list[Message] = []

    async def on_events(payload: Payload) -> None:
        events.extend(payload)

    ids = itertools.count()

    def message(channel: str, **fields: Any) -> Message:
        return {"channel": channel, "id": str(next(ids)), **fields}

    async with (
        aiohttp.ClientSession() as session,
        WebSocketTransport(
            faye_server.url,
            session,
            json_dumps=json.dumps,
            json_loads=json.loads,
            max_response_bytes=limit,
        ) as transport,
        opened(faye_server.url, ConnectionType.LONG_POLLING) as publisher,
    ):
        transport.unsolicited = on_events
        (reply,) = await transport.send(
            [message("/meta/handshake", version="1.0", supportedConnectionTypes=["websocket"])],
            {},
            timeout=5,
        )
        assert reply["successful"] is True
        client_id = reply["clientId"]

        def connect() -> Message:
            return message("/meta/connect", clientId=client_id, connectionType="websocket")

        (reply,) = await transport.send(
            [message("/meta/subscribe", clientId=client_id, subscription="/big")], {}, timeout=5
        )
        assert reply["successful"] is True
        (reply,) = await transport.send([connect()], {}, timeout=5)  # Faye answers the first
        assert reply["successful"] is True

        held = asyncio.create_task(transport.send([connect()], {}, timeout=10))
        await publisher.publish("/big", {"small": True})
        await asyncio.sleep(0.3)
        assert [event["data"] for event in events] == [{"small": True}]

        await publisher.publish("/big", {"pad": "p" * (2 * limit)})
        with pytest.raises(ResponseTooLargeError) as caught:
            await asyncio.wait_for(held, 5)
        assert caught.value.limit == limit

        # A new socket, the same session.
        held = asyncio.create_task(transport.send([connect()], {}, timeout=10))
        await asyncio.sleep(0.3)
        await publisher.publish("/big", {"after": True})
        (reply,) = await asyncio.wait_for(held, 5)
        assert reply["successful"] is True
        await asyncio.sleep(0.3)
        assert [event["data"] for event in events] == [{"small": True}, {"after": True}]
