"""The ``/__admin__/`` HTTP control API."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator

from .raw import RawClient, replay_ids


async def admin(
    http: aiohttp.ClientSession,
    emulator: SalesforceEmulator,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
) -> tuple[int, Any]:
    url = f"{emulator.url}/__admin__{path}"
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json()


async def test_overview(http: aiohttp.ClientSession, emulator: SalesforceEmulator) -> None:
    status, body = await admin(http, emulator, "", method="GET")
    assert status == 200
    assert body["url"] == emulator.url
    assert body["token_url"] == emulator.token_url
    assert body["cometd_url"] == emulator.cometd_url()
    assert body["credentials"]["username"] == emulator.credentials.username
    assert body["channels"] == []


async def test_channels_and_publish(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    assert await admin(http, emulator, "/channels", {"name": "/topic/Orders"}) == (
        201,
        {"name": "/topic/Orders"},
    )
    await client.start("/topic/Orders")
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    status, message = await admin(
        http, emulator, "/publish", {"channel": "/topic/Orders", "payload": {"Name": "A"}}
    )
    assert status == 200
    assert message["data"]["sobject"]["Name"] == "A"
    replies = await task
    assert replies[0] == message
    status, channels = await admin(http, emulator, "/channels", method="GET")
    assert channels == [{"name": "/topic/Orders", "events": 1, "last_replay_id": 1}]
    status, events = await admin(http, emulator, "/events?channel=/topic/Orders", method="GET")
    assert events == [message]
    status, clients = await admin(http, emulator, "/clients", method="GET")
    assert clients[0]["client_id"] == client.client_id
    assert clients[0]["subscriptions"] == ["/topic/Orders"]


async def test_errors(http: aiohttp.ClientSession, emulator: SalesforceEmulator) -> None:
    assert await admin(http, emulator, "/publish", {"channel": "/topic/Nope"}) == (
        404,
        {"error": "channel /topic/Nope does not exist; create it with create_channel()"},
    )
    status, body = await admin(http, emulator, "/publish", {})
    assert (status, body) == (400, {"error": "field 'channel' is required"})
    status, body = await admin(http, emulator, "/publish", [1])
    assert status == 400
    status, body = await admin(http, emulator, "/channels", {"name": "/meta/x"})
    assert status == 400
    status, body = await admin(http, emulator, "/advance", {"seconds": "1"})
    assert (status, body) == (400, {"error": "field 'seconds' must be of type float"})
    status, body = await admin(http, emulator, "/advance", {"seconds": -1})
    assert status == 400
    status, body = await admin(http, emulator, "/fail", {"operation": "nope"})
    assert status == 400
    status, body = await admin(http, emulator, "/events", method="GET")
    assert status == 400
    async with http.post(
        f"{emulator.url}/__admin__/publish",
        data=b"{",
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400


async def test_revoke_expire_disconnect(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    await client.start()
    assert await admin(http, emulator, "/expire", {"client_id": client.client_id}) == (
        200,
        {"clients": [client.client_id]},
    )
    await client.start()
    assert await admin(http, emulator, "/disconnect", {}) == (200, {"clients": [client.client_id]})
    replies = await client.connect()
    assert replies[0]["channel"] == "/meta/disconnect"
    assert await admin(http, emulator, "/revoke", {}) == (200, {"revoked": 1})
    reply = await client.handshake()
    assert reply["ext"]["sfdc"]["failureReason"] == "401::Authentication invalid"


async def test_drop_spares_the_admin_request(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    await client.start()
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    assert await admin(http, emulator, "/drop") == (200, {"dropped": True})
    with pytest.raises(aiohttp.ClientError):
        await task


async def test_advance_and_purge(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    emulator.create_channel("/topic/Orders")
    emulator.publish("/topic/Orders")
    before = emulator.now()
    status, body = await admin(http, emulator, "/advance", {"seconds": 86401})
    assert status == 200
    assert body["now"] >= before + 86401
    assert await admin(http, emulator, "/purge", {}) == (200, {"purged": 1})
    emulator.publish("/topic/Orders")
    assert await admin(http, emulator, "/purge", {"before": emulator.now() + 1}) == (
        200,
        {"purged": 1},
    )


async def test_fail(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    status, _ = await admin(
        http,
        emulator,
        "/fail",
        {"operation": "handshake", "reason": "403::Organization concurrent user limit exceeded"},
    )
    assert status == 200
    reply = await client.handshake()
    assert reply["ext"]["sfdc"]["failureReason"] == (
        "403::Organization concurrent user limit exceeded"
    )


async def test_users_refresh_tokens_and_stats(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    status, body = await admin(http, emulator, "/users", {"username": "a@b.c", "password": "p"})
    assert status == 201
    assert body["user_id"].startswith("005")
    status, body = await admin(http, emulator, "/refresh-token", {"username": "a@b.c"})
    assert status == 200
    form = {
        "grant_type": "refresh_token",
        "client_id": emulator.credentials.consumer_key,
        "refresh_token": body["refresh_token"],
    }
    async with http.post(emulator.token_url, data=form) as response:
        assert response.status == 200
    status, _ = await admin(http, emulator, "/refresh-token", {"username": "nobody"})
    assert status == 400
    status, stats = await admin(http, emulator, "/stats", method="GET")
    assert stats["token_requests"] == 1
    assert stats["grants"] == {"refresh_token": 1}
    status, stats = await admin(http, emulator, "/stats/reset")
    assert stats["token_requests"] == 0


async def test_admin_api_can_be_disabled(http: aiohttp.ClientSession) -> None:
    async with SalesforceEmulator(admin_api=False) as emulator:
        url = f"{emulator.url}/__admin__"
        async with http.get(url) as response:
            assert response.status == 404


async def test_published_events_reach_a_replaying_client(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, client: RawClient
) -> None:
    await admin(http, emulator, "/channels", {"name": "/u/Notes"})
    for text in ("one", "two"):
        await admin(http, emulator, "/publish", {"channel": "/u/Notes", "payload": text})
    await client.start("/u/Notes", replay=-2)
    assert replay_ids(await client.connect()) == [1, 2]
