"""The failure-injection controls for recovery tests: headers on HTTP faults (redirects,
``Retry-After``), fault bursts, server disconnects in any reply, silent expiry and the
``instance_url`` override, from Python and through the admin API."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import DISCONNECT_OPERATIONS, SalesforceEmulator

from .conftest import CONNECT_TIMEOUT, ClientFactory
from .raw import RawClient, replay_ids
from .test_admin import admin
from .test_oauth import password_form

UNKNOWN_CLIENT = "403::Unknown client"


async def post_token(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> tuple[int, dict[str, str], str]:
    """POST the default password grant, not following redirects; return status, headers, body."""
    async with http.post(
        emulator.token_url, data=password_form(emulator), allow_redirects=False
    ) as response:
        return response.status, dict(response.headers), await response.text()


# -- HTTP faults with headers ------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
async def test_token_redirect(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, status: int
) -> None:
    target = "http://127.0.0.1:9/services/oauth2/token"
    emulator.fail_next("token", http_status=status, headers={"Location": target})
    code, headers, _ = await post_token(http, emulator)
    assert (code, headers["Location"]) == (status, target)
    assert emulator.stats.tokens_issued == 0
    code, _, _ = await post_token(http, emulator)
    assert code == 200


async def test_token_burst_is_served_in_order(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    emulator.fail_next("token", http_status=503, times=2)
    emulator.fail_next("token", http_status=429, headers={"Retry-After": "1"})
    emulator.fail_next("token", http_status=200, body="<html><title>Portal</title></html>")
    answers = [await post_token(http, emulator) for _ in range(5)]
    assert [code for code, _, _ in answers] == [503, 503, 429, 200, 200]
    assert answers[2][1]["Retry-After"] == "1"
    assert "Retry-After" not in answers[0][1]
    assert answers[3][1]["Content-Type"].startswith("text/html")
    assert answers[4][1]["Content-Type"].startswith("application/json")
    assert emulator.stats.tokens_issued == 1


async def test_bayeux_redirect(client: RawClient, emulator: SalesforceEmulator) -> None:
    target = "http://127.0.0.1:9/cometd/66.0"
    emulator.fail_next("handshake", http_status=307, headers={"Location": target})
    async with client.session.post(
        emulator.cometd_url(),
        json=[client.handshake_message()],
        headers=client.headers,
        allow_redirects=False,
    ) as response:
        assert response.status == 307
        assert response.headers["Location"] == target
    assert (await client.handshake())["successful"] is True


def test_headers_need_an_http_status(emulator: SalesforceEmulator) -> None:
    with pytest.raises(ValueError, match="http_status"):
        emulator.fail_next("token", headers={"Retry-After": "1"})
    with pytest.raises(ValueError, match="str"):
        emulator.fail_next("token", http_status=429, headers={"Retry-After": 1})  # type: ignore[dict-item]


# -- server disconnect in any reply -------------------------------------------------------


def notice(client_id: str | None) -> dict[str, Any]:
    return {"channel": "/meta/disconnect", "clientId": client_id, "successful": True}


async def test_disconnect_in_subscribe_reply(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start()
    emulator.disconnect_next("/meta/subscribe")
    replies = await client.send(client.subscribe_message("/topic/Orders"))
    assert replies[0] == notice(client.client_id)
    assert replies[1]["channel"] == "/meta/subscribe"
    assert replies[1]["successful"] is True
    assert client.client_id not in emulator.client_ids
    [reply] = await client.connect()
    assert reply["error"] == UNKNOWN_CLIENT


async def test_disconnect_in_handshake_reply(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.disconnect_next("handshake")
    replies = await client.send(client.handshake_message())
    assert replies[1]["successful"] is True
    new_id = replies[1]["clientId"]
    assert replies[0] == notice(new_id)
    assert emulator.client_ids == []
    assert (await client.handshake())["successful"] is True
    assert emulator.client_ids == [client.client_id]


async def test_disconnect_in_connect_reply_delivers_its_events(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    emulator.disconnect_next("connect")
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    emulator.publish("/topic/Orders", {"Name": "a"})
    replies = await asyncio.wait_for(task, CONNECT_TIMEOUT)
    assert replies[0] == notice(client.client_id)
    assert replay_ids(replies) == [1]
    assert replies[-1]["channel"] == "/meta/connect"
    assert client.client_id not in emulator.client_ids


async def test_disconnect_in_unsubscribe_reply_answers_the_held_connect(
    make_client: ClientFactory, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    client = await make_client()
    await client.start("/topic/Orders")
    held = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    emulator.disconnect_next("unsubscribe")
    replies = await client.send(
        {
            "channel": "/meta/unsubscribe",
            "clientId": client.client_id,
            "subscription": "/topic/Orders",
            "id": client.next_id(),
        }
    )
    assert replies[0] == notice(client.client_id)
    [reply] = await asyncio.wait_for(held, CONNECT_TIMEOUT / 2)
    assert reply["error"] == UNKNOWN_CLIENT


async def test_disconnect_next_counts_and_validates(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.disconnect_next("handshake", times=2)
    for _ in range(2):
        replies = await client.send(client.handshake_message())
        assert replies[0]["channel"] == "/meta/disconnect"
    assert (await client.send(client.handshake_message()))[0]["channel"] == "/meta/handshake"
    with pytest.raises(ValueError, match="unknown operation"):
        emulator.disconnect_next("token")
    with pytest.raises(ValueError, match="times"):
        emulator.disconnect_next("connect", times=0)
    assert set(DISCONNECT_OPERATIONS) == {"handshake", "connect", "subscribe", "unsubscribe"}


async def test_disconnect_and_failures_share_one_queue(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.fail_next("handshake", "403::Organization concurrent user limit exceeded")
    emulator.disconnect_next("handshake")
    [denied] = await client.send(client.handshake_message())
    assert denied["successful"] is False
    replies = await client.send(client.handshake_message())
    assert [reply["channel"] for reply in replies] == ["/meta/disconnect", "/meta/handshake"]


# -- silent expiry ------------------------------------------------------------------------


async def test_silent_expiry_reaches_the_next_subscribe(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start()
    held = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    assert emulator.expire_client(notify=False) == [client.client_id]
    reply = await client.subscribe("/topic/Orders")
    assert reply["error"] == UNKNOWN_CLIENT
    assert not held.done()
    [answer] = await asyncio.wait_for(held, CONNECT_TIMEOUT * 3)
    assert answer["error"] == UNKNOWN_CLIENT


# -- instance_url -------------------------------------------------------------------------


async def test_instance_url_override(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    assert emulator.instance_url == emulator.url
    emulator.instance_url = "http://127.0.0.1:9/"
    assert emulator.instance_url == "http://127.0.0.1:9"
    async with http.post(emulator.token_url, data=password_form(emulator)) as response:
        body = await response.json()
    assert body["instance_url"] == "http://127.0.0.1:9"
    assert body["id"].startswith(emulator.url + "/id/")
    emulator.instance_url = None
    async with http.post(emulator.token_url, data=password_form(emulator)) as response:
        assert (await response.json())["instance_url"] == emulator.url
    with pytest.raises(ValueError, match="http"):
        emulator.instance_url = "127.0.0.1:9"


async def test_instance_url_from_the_constructor() -> None:
    async with SalesforceEmulator(instance_url="http://127.0.0.1:9") as emulator:
        assert emulator.instance_url == "http://127.0.0.1:9"


# -- the admin API ------------------------------------------------------------------------


async def test_admin_fail_with_headers(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    body = {
        "operation": "token",
        "http_status": 429,
        "headers": {"Retry-After": "2"},
        "times": 2,
    }
    assert await admin(http, emulator, "/fail", body) == (200, {"armed": "token"})
    for _ in range(2):
        code, headers, _ = await post_token(http, emulator)
        assert (code, headers["Retry-After"]) == (429, "2")
    assert (await post_token(http, emulator))[0] == 200
    status, error = await admin(http, emulator, "/fail", {"operation": "token", "headers": []})
    assert status == 400
    assert "headers" in error["error"]


async def test_admin_disconnect_next(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    assert await admin(http, emulator, "/disconnect-next", {"operation": "handshake"}) == (
        200,
        {"armed": "handshake"},
    )
    replies = await client.send(client.handshake_message())
    assert replies[0]["channel"] == "/meta/disconnect"
    status, error = await admin(http, emulator, "/disconnect-next", {"operation": "revoke"})
    assert status == 400
    assert "unknown operation" in error["error"]


async def test_admin_instance_url(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    url = "http://127.0.0.1:9"
    assert await admin(http, emulator, "/instance-url", {"url": url}) == (
        200,
        {"instance_url": url},
    )
    assert (await admin(http, emulator, "", method="GET"))[1]["instance_url"] == url
    assert await admin(http, emulator, "/instance-url", {"url": None}) == (
        200,
        {"instance_url": emulator.url},
    )
    assert (await admin(http, emulator, "/instance-url", {}))[0] == 400
    assert (await admin(http, emulator, "/instance-url", {"url": "ftp://x"}))[0] == 400


async def test_admin_silent_expire(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    await client.start()
    held = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    status, body = await admin(http, emulator, "/expire", {"notify": False})
    assert (status, body) == (200, {"clients": [client.client_id]})
    await asyncio.sleep(CONNECT_TIMEOUT / 4)
    assert not held.done()
    [answer] = await asyncio.wait_for(held, CONNECT_TIMEOUT * 3)
    assert answer["error"] == UNKNOWN_CLIENT
