"""The servers themselves, spoken to with raw Bayeux requests rather than with our client.

These pin down the behaviour of the third-party servers that the client tests rely on, so that a
failure there can be told apart from a change in Faye or cometd-nodejs-server (or a broken
fixture).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

if TYPE_CHECKING:
    from tests.interop.conftest import NodeServer

pytestmark = pytest.mark.timeout(30)


class RawBayeux:
    """Posts Bayeux messages and returns the decoded reply list."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def post(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.session.post(self.url, json=list(messages)) as response:
            assert response.status == 200
            replies: list[dict[str, Any]] = await response.json(content_type=None)
            return replies

    async def handshake(self, connection_types: list[str]) -> str:
        (reply,) = await self.post(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": connection_types,
            }
        )
        assert reply["successful"] is True, reply
        client_id: str = reply["clientId"]
        return client_id


def _session() -> aiohttp.ClientSession:
    # cometd-nodejs-server ties sessions to a cookie; the default jar drops cookies of IP hosts.
    # force_close: a kept-alive connection would outlive a server restart and fail the next
    # request with ServerDisconnectedError.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(force_close=True),
    )


async def test_faye_handshake_and_delivery(faye_server: NodeServer) -> None:
    async with _session() as session:
        bayeux = RawBayeux(session, faye_server.url)
        (reply,) = await bayeux.post(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        )
        assert reply["successful"] is True
        assert {"long-polling", "websocket"} <= set(reply["supportedConnectionTypes"])
        assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 2000}
        client_id = reply["clientId"]

        (reply,) = await bayeux.post(
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/raw"}
        )
        assert reply["successful"] is True
        (reply,) = await bayeux.post(
            {"channel": "/raw", "clientId": client_id, "data": {"n": 1}, "id": "p1"}
        )
        assert reply == {"id": "p1", "clientId": client_id, "channel": "/raw", "successful": True}
        connect, event = await bayeux.post(
            {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
        )
        assert connect["successful"] is True
        assert event == {"channel": "/raw", "data": {"n": 1}, "id": "p1"}


async def test_faye_holds_connect_for_its_timeout(faye_server: NodeServer) -> None:
    async with _session() as session:
        bayeux = RawBayeux(session, faye_server.url)
        client_id = await bayeux.handshake(["long-polling"])
        connect = {
            "channel": "/meta/connect",
            "clientId": client_id,
            "connectionType": "long-polling",
        }
        await bayeux.post(connect)
        started = time.monotonic()
        (reply,) = await bayeux.post(connect)
        assert reply["successful"] is True
        assert 1.5 < time.monotonic() - started < 3.5


async def test_faye_error_strings(faye_server: NodeServer) -> None:
    async with _session() as session:
        bayeux = RawBayeux(session, faye_server.url)
        client_id = await bayeux.handshake(["long-polling"])

        (reply,) = await bayeux.post(
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/a/**/b"}
        )
        assert reply["successful"] is False
        assert reply["error"] == "405:/a/**/b:Invalid channel"

        (reply,) = await bayeux.post(
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/meta/x"}
        )
        assert reply["error"] == "403:/meta/x:Forbidden channel"

        (reply,) = await bayeux.post({"channel": "/a/*", "clientId": client_id, "data": {}})
        assert reply["successful"] is False
        assert reply["error"] == "405:/a/*:Invalid channel"


async def test_faye_forgets_clients_on_restart(faye_server: NodeServer) -> None:
    async with _session() as session:
        bayeux = RawBayeux(session, faye_server.url)
        client_id = await bayeux.handshake(["long-polling"])
        port = faye_server.port
        faye_server.restart(downtime=0.2)
        assert faye_server.port == port

        (reply,) = await bayeux.post(
            {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
        )
        assert reply == {
            "channel": "/meta/connect",
            "successful": False,
            "error": f"401:{client_id}:Unknown client",
            "advice": {"reconnect": "handshake"},
        }
        (reply,) = await bayeux.post(
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/raw"}
        )
        assert reply["error"] == f"401:{client_id}:Unknown client"
        assert "advice" not in reply


async def test_faye_stopped_refuses_connections(faye_server: NodeServer) -> None:
    url = faye_server.url
    faye_server.stop()
    assert not faye_server.running
    async with _session() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await RawBayeux(session, url).handshake(["long-polling"])


async def test_faye_websocket(faye_server: NodeServer) -> None:
    ws_url = "ws" + faye_server.url.removeprefix("http")
    async with _session() as session, session.ws_connect(ws_url) as ws:
        await ws.send_json(
            [
                {
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["websocket"],
                }
            ]
        )
        (reply,) = await ws.receive_json(timeout=5)
        assert reply["successful"] is True
        client_id = reply["clientId"]
        await ws.send_json(
            [{"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/ws"}]
        )
        (reply,) = await ws.receive_json(timeout=5)
        assert reply["successful"] is True
        # Once a /meta/connect came over the socket, Faye pushes each event in a frame of its
        # own as soon as it is published, while that connect is still held.
        await ws.send_json(
            [{"channel": "/meta/connect", "clientId": client_id, "connectionType": "websocket"}]
        )
        await ws.send_json([{"channel": "/ws", "clientId": client_id, "data": 1, "id": "w"}])
        frames = [await ws.receive_json(timeout=5) for _ in range(2)]
        assert [{"channel": "/ws", "data": 1, "id": "w"}] in frames
        assert all(message["channel"] != "/meta/connect" for frame in frames for message in frame)
        (reply,) = await ws.receive_json(timeout=5)
        assert reply["channel"] == "/meta/connect"
        assert reply["successful"] is True


async def test_cometd_handshake_and_delivery(cometd_server: NodeServer) -> None:
    async with _session() as session:
        bayeux = RawBayeux(session, cometd_server.url)
        (reply,) = await bayeux.post(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling", "websocket"],
            }
        )
        assert reply["successful"] is True
        assert reply["supportedConnectionTypes"] == ["long-polling"]
        assert reply["advice"] == {"reconnect": "retry", "timeout": 2000, "interval": 0}
        client_id = reply["clientId"]

        (reply,) = await bayeux.post(
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/raw"}
        )
        assert reply == {"channel": "/meta/subscribe", "subscription": "/raw", "successful": True}
        # The server delivers the event in the publish response itself, before the reply.
        replies = await bayeux.post(
            {"channel": "/raw", "clientId": client_id, "data": {"n": 1}, "id": "p1"}
        )
        assert replies == [
            {"channel": "/raw", "data": {"n": 1}},
            {"id": "p1", "channel": "/raw", "successful": True},
        ]


async def test_cometd_needs_its_cookie(cometd_server: NodeServer) -> None:
    # The session is found through the BAYEUX_BROWSER cookie: a client that does not send it
    # back is unknown, whatever its clientId.
    # The default cookie jar of aiohttp ignores cookies set by an IP address such as 127.0.0.1.
    async with aiohttp.ClientSession() as session:
        bayeux = RawBayeux(session, cometd_server.url)
        client_id = await bayeux.handshake(["long-polling"])
        (reply,) = await bayeux.post(
            {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
        )
        assert reply == {
            "channel": "/meta/connect",
            "successful": False,
            "error": "402::session_unknown",
            "advice": {"reconnect": "handshake", "interval": 0},
        }


async def test_cometd_forgets_clients_on_restart(cometd_server: NodeServer) -> None:
    async with _session() as session:
        bayeux = RawBayeux(session, cometd_server.url)
        client_id = await bayeux.handshake(["long-polling"])
        cometd_server.restart(downtime=0.2)
        (reply,) = await bayeux.post(
            {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
        )
        assert reply["error"] == "402::session_unknown"
        assert reply["advice"] == {"reconnect": "handshake", "interval": 0}
