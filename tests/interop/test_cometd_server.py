"""Our client against cometd-nodejs-server, the CometD project's server for node.

That server only has the long-polling transport, and differs from Faye in ways a client must
cope with:

* it finds the session through its ``BAYEUX_BROWSER`` cookie, set on the handshake reply, and
  answers ``402::session_unknown`` to a request that comes without it; the server listens on
  127.0.0.1, so the client must keep cookies set by an IP address;
* it sends the events a publisher receives itself in the reply to the publish request, before
  the publish reply, not in a ``/meta/connect`` reply;
* its replies to ``/meta/connect`` and ``/meta/subscribe`` carry no ``clientId``.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from typing import TYPE_CHECKING

import pytest

from aiosfstream.cometd import Client, ConnectionType
from aiosfstream.cometd.exceptions import (
    ClientInvalidOperation,
    CometdException,
    TransportTimeoutError,
)
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
    from tests.interop.conftest import NodeServer

pytestmark = pytest.mark.timeout(60)

LONG_POLLING = ConnectionType.LONG_POLLING


async def test_every_type_offered_negotiates_long_polling(cometd_server: NodeServer) -> None:
    async with opened(cometd_server.url) as client:
        assert client.connection_type is LONG_POLLING
        assert not client.closed


async def test_websocket_only_cannot_connect(cometd_server: NodeServer) -> None:
    before = asyncio.all_tasks()
    client = Client(cometd_server.url, ConnectionType.WEBSOCKET, connection_timeout=2.0)
    with pytest.raises(CometdException):
        await asyncio.wait_for(client.open(), 10)
    await client.close()
    assert client.closed
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


async def test_publish_and_receive_on_one_client(cometd_server: NodeServer) -> None:
    async with opened(cometd_server.url, LONG_POLLING) as client:
        await client.subscribe("/chat/room")
        reply = await client.publish("/chat/room", {"text": "hello"})
        assert reply["successful"] is True
        assert reply["channel"] == "/chat/room"
        # The event came in the same response as the publish reply.
        message = await receive(client)
        assert message["channel"] == "/chat/room"
        assert message["data"] == {"text": "hello"}

        # And the session is still known: the next round trip works too.
        await client.publish("/chat/room", {"text": "again"})
        assert (await receive(client))["data"] == {"text": "again"}


async def test_publish_from_another_client(cometd_server: NodeServer) -> None:
    async with (
        opened(cometd_server.url, LONG_POLLING) as subscriber,
        opened(cometd_server.url, LONG_POLLING) as publisher,
    ):
        await subscriber.subscribe("/news")
        await subscriber.subscribe("/sport")
        for n in range(4):
            await publisher.publish("/news" if n % 2 else "/sport", {"n": n})

        received = [await receive(subscriber) for _ in range(4)]
        assert [(m["channel"], m["data"]) for m in received] == [
            ("/sport", {"n": 0}),
            ("/news", {"n": 1}),
            ("/sport", {"n": 2}),
            ("/news", {"n": 3}),
        ]
        await assert_nothing_received(publisher)


async def test_unsubscribe_stops_delivery(cometd_server: NodeServer) -> None:
    async with (
        opened(cometd_server.url, LONG_POLLING) as subscriber,
        opened(cometd_server.url, LONG_POLLING) as publisher,
    ):
        await subscriber.subscribe("/keep")
        await subscriber.subscribe("/drop")
        await subscriber.unsubscribe("/drop")
        assert subscriber.subscriptions == {"/keep"}
        await publisher.publish("/drop", {"n": 1})
        await publisher.publish("/keep", {"n": 2})
        message = await receive(subscriber)
        assert (message["channel"], message["data"]) == ("/keep", {"n": 2})
        await assert_nothing_received(subscriber)


@pytest.mark.timeout(90)
async def test_server_restart_is_transparent(cometd_server: NodeServer) -> None:
    recorder = Recorder()
    async with opened(cometd_server.url, LONG_POLLING, extensions=[recorder]) as client:
        await client.subscribe("/restart/a")
        await client.subscribe("/restart/b")
        await client.publish("/restart/a", {"before": True})
        assert (await receive(client))["data"] == {"before": True}
        (first_handshake,) = recorder.received_on("/meta/handshake")
        old_client_id = first_handshake["clientId"]

        waiting = asyncio.create_task(client.receive())
        cometd_server.restart(downtime=0.5)

        async with opened(cometd_server.url, LONG_POLLING) as publisher:
            message = await publish_until_received(publisher, client, "/restart/b", pending=waiting)
        assert message["channel"] == "/restart/b"
        assert client.subscriptions == {"/restart/a", "/restart/b"}

    unknown = [r for r in recorder.received if r.get("error") == "402::session_unknown"]
    assert unknown, recorder.received
    assert any(r.get("advice", {}).get("reconnect") == "handshake" for r in unknown)
    handshakes = [r for r in recorder.received_on("/meta/handshake") if r["successful"]]
    assert len(handshakes) >= 2
    new_client_id = handshakes[-1]["clientId"]
    assert new_client_id != old_client_id
    resubscribed = [
        m for m in recorder.sent_on("/meta/subscribe") if m["clientId"] == new_client_id
    ]
    assert subscriptions_of(resubscribed) == {"/restart/a", "/restart/b"}


async def test_outage_longer_than_connection_timeout_raises(cometd_server: NodeServer) -> None:
    connection_timeout = 2.0
    async with opened(
        cometd_server.url, LONG_POLLING, connection_timeout=connection_timeout
    ) as client:
        await client.subscribe("/outage")
        waiting = asyncio.create_task(client.receive())
        await asyncio.sleep(0.2)
        before_stop = time.monotonic()
        cometd_server.stop()
        server_gone = time.monotonic()

        with pytest.raises(TransportTimeoutError):
            await asyncio.wait_for(waiting, connection_timeout * 3)
        raised = time.monotonic()

    assert raised - before_stop >= connection_timeout - 0.01
    assert raised - server_gone <= connection_timeout * 1.2


async def test_close_is_clean(cometd_server: NodeServer) -> None:
    before = asyncio.all_tasks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = Client(cometd_server.url, LONG_POLLING)
        await client.open()
        await client.subscribe("/bye")
        await client.publish("/bye", {"n": 1})
        assert (await receive(client))["data"] == {"n": 1}

        await asyncio.wait_for(client.close(), 5)
        assert client.closed
        await asyncio.sleep(0.1)
        assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
        with pytest.raises(ClientInvalidOperation):
            await client.receive()
        del client
        gc.collect()
    assert [str(warning.message) for warning in caught] == []


async def test_max_pending_count_bounds_prefetch(cometd_server: NodeServer) -> None:
    await check_prefetch_is_bounded(cometd_server.url, LONG_POLLING, limit=3, total=12)
