"""The ``/__admin__/`` HTTP control API."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator

from .conftest import ClientFactory
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


async def request(
    http: aiohttp.ClientSession,
    emulator: SalesforceEmulator,
    method: str,
    path: str,
    data: bytes | io.BytesIO | None = None,
) -> tuple[aiohttp.ClientResponse, Any]:
    """Send raw bytes; check that the answer is JSON and return it decoded."""
    url = f"{emulator.url}/__admin__{path}"
    headers = {"Content-Type": "application/json"}
    async with http.request(method, url, data=data, headers=headers) as response:
        assert response.content_type == "application/json", await response.text()
        return response, await response.json()


async def test_unknown_path_is_a_json_404(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    for method in ("GET", "POST"):
        response, body = await request(http, emulator, method, "/nope")
        assert response.status == 404
        assert body == {"error": "no endpoint /__admin__/nope; GET /__admin__ lists the endpoints"}


async def test_wrong_method_is_a_json_405(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    response, body = await request(http, emulator, "GET", "/publish")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert body == {"error": "GET is not allowed on /__admin__/publish; use POST"}
    response, body = await request(http, emulator, "DELETE", "/settings")
    assert response.status == 405
    assert body == {"error": "DELETE is not allowed on /__admin__/settings; use GET, POST"}


async def test_bad_json_is_a_json_400(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    response, body = await request(http, emulator, "POST", "/publish", b'{"channel": ')
    assert response.status == 400
    assert body == {
        "error": "the body is not valid JSON: Expecting value: line 1 column 13 (char 12)"
    }
    response, body = await request(http, emulator, "POST", "/publish", b"\xff\xfe{")
    assert (response.status, body) == (400, {"error": "the body is not valid UTF-8 text"})
    response, body = await request(http, emulator, "POST", "/publish", b"[1]")
    assert (response.status, body) == (400, {"error": "the body must be a JSON object"})


async def test_missing_and_mistyped_fields_are_named(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    cases = [
        ("/publish", {}, "field 'channel' is required"),
        ("/users", {"username": "a@b.c"}, "field 'password' is required"),
        ("/advance", {"seconds": "1"}, "field 'seconds' must be a number"),
        ("/fail", {"operation": "connect", "times": 1.5}, "field 'times' must be an integer"),
        ("/fail", {"operation": "connect", "advice": []}, "field 'advice' must be an object"),
        ("/publish", {"channel": "/u/X", "raw": "yes"}, "field 'raw' must be true or false"),
        ("/channels", {"name": "/topic/X", "fields": "Id"}, "field 'fields' must be an array"),
        ("/expire", {"client_id": 3}, "field 'client_id' must be a string"),
    ]
    for path, payload, error in cases:
        assert await admin(http, emulator, path, payload) == (400, {"error": error}), path


async def test_refusals_speak_http_not_python(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    assert await admin(http, emulator, "/publish", {"channel": "/topic/Nope"}) == (
        404,
        {"error": "channel /topic/Nope does not exist; create it with POST /__admin__/channels"},
    )
    assert await admin(http, emulator, "/events?channel=/u/Nope", method="GET") == (
        404,
        {"error": "channel /u/Nope does not exist; create it with POST /__admin__/channels"},
    )
    assert await admin(http, emulator, "/fail", {"operation": "nope"}) == (
        400,
        {
            "error": "unknown operation 'nope'; expected one of handshake, connect, subscribe, "
            "unsubscribe, disconnect, token"
        },
    )
    await admin(http, emulator, "/channels", {"name": "/topic/Orders"})
    assert await admin(
        http, emulator, "/publish", {"channel": "/topic/Orders", "payload": [1]}
    ) == (
        400,
        {"error": "payload must map field names to values (a JSON object)"},
    )
    status, body = await admin(http, emulator, "/channels", {"name": "/meta/x"})
    assert status == 400
    assert body["error"].startswith("not a streaming channel name: '/meta/x'")
    assert await admin(http, emulator, "/advance", {"seconds": -1}) == (
        400,
        {"error": "the clock only moves forward"},
    )
    assert await admin(http, emulator, "/events", method="GET") == (
        400,
        {"error": "query parameter 'channel' is required"},
    )
    assert await admin(http, emulator, "/settings", {"max_client": 1}) == (
        400,
        {
            "error": "unknown setting 'max_client'; known: max_clients, max_connections_per_user, "
            "daily_delivery_limit, max_batch_size, dynamic_channels, max_generic_channels, "
            "my_domain, password_flow_enabled"
        },
    )


async def test_too_large_a_body_is_a_json_413(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    response, body = await request(
        http, emulator, "POST", "/publish", io.BytesIO(b" " * 2 * 1024**2)
    )
    assert response.status == 413
    assert "exceeded" in body["error"]


class BrokenEmulator(SalesforceEmulator):
    """An emulator with a bug in one control, to see how the admin API reports bugs."""

    def purge_retention(self, before: float | None = None) -> int:
        raise RuntimeError("bug in purge_retention")


async def test_a_bug_is_a_json_500_without_traceback(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with BrokenEmulator() as emulator:
        assert await admin(http, emulator, "/purge", {}) == (
            500,
            {"error": "the emulator failed to serve this request; see its log"},
        )
    [record] = [r for r in caplog.records if r.name == "aiosfstream.testing.admin"]
    assert record.getMessage() == "admin request POST /__admin__/purge failed"
    assert record.exc_info is not None


async def test_overview_lists_the_endpoints(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    _, body = await admin(http, emulator, "", method="GET")
    assert "POST /__admin__/publish" in body["endpoints"]
    assert "GET /__admin__/settings" in body["endpoints"]
    assert body["settings"] == emulator.settings.as_dict()


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


# -- org permissions and limits, driven over HTTP ------------------------------------------


async def test_settings(http: aiohttp.ClientSession, emulator: SalesforceEmulator) -> None:
    status, settings = await admin(http, emulator, "/settings", method="GET")
    assert (status, settings["max_clients"], settings["my_domain"]) == (200, None, True)
    status, settings = await admin(
        http, emulator, "/settings", {"max_clients": 2, "dynamic_channels": True}
    )
    assert (status, settings["max_clients"], settings["dynamic_channels"]) == (200, 2, True)
    assert emulator.settings.max_clients == 2
    assert await admin(http, emulator, "/settings", {"max_clients": "2"}) == (
        400,
        {"error": "setting 'max_clients' must be an integer or null"},
    )


async def test_channel_options_reach_the_subscribe(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, make_client: ClientFactory
) -> None:
    body = {"name": "/topic/Foo", "fields": ["Id", "Name"], "max_subscribers": 1}
    assert await admin(http, emulator, "/channels", body) == (201, {"name": "/topic/Foo"})
    await admin(http, emulator, "/channels", {"name": "/u/Private", "users": ["x@example.com"]})
    client, other = await make_client(), await make_client()
    await client.handshake()
    reply = await client.subscribe("/topic/Foo?Bar=1")
    assert reply["error"] == "400::Query fields {Bar} do not exist on the topic entity"
    assert (await client.subscribe("/u/Private"))["error"] == "403::No access on channel"
    assert (await client.subscribe("/topic/Foo?Name=A"))["successful"] is True
    await other.handshake()
    reply = await other.subscribe("/topic/Foo")
    assert reply["error"] == "403::Subscription limit exceeded for this topic"
    status, body = await admin(http, emulator, "/channels", {"name": "/event/E__e", "fields": []})
    assert status == 400


@pytest.mark.parametrize(
    ("permissions", "channel", "error"),
    [
        ({"streaming_enabled": False}, "/topic/Deals", "403::User not enabled for streaming"),
        (
            {"view_all_data": False},
            "/data/ChangeEvents",
            "403::User not allowed to subscribe CDC without View All Data permissions",
        ),
        (
            {"hidden_fields": ["Secret__c"]},
            "/topic/Deals",
            "403::Subscriber does not have access to all fields referenced in the where "
            "clause of the PushTopic",
        ),
        ({"can_create_channels": False}, "/u/New", "403::Cannot create channel {/u/New}"),
    ],
)
async def test_user_permissions_reach_the_subscribe(
    http: aiohttp.ClientSession,
    emulator: SalesforceEmulator,
    client: RawClient,
    permissions: dict[str, Any],
    channel: str,
    error: str,
) -> None:
    await admin(
        http, emulator, "/channels", {"name": "/topic/Deals", "where_fields": ["Secret__c"]}
    )
    await admin(http, emulator, "/channels", {"name": "/data/ChangeEvents"})
    await admin(http, emulator, "/settings", {"dynamic_channels": True})
    status, user = await admin(http, emulator, "/user-permissions", permissions)
    assert status == 200
    assert user["username"] == emulator.credentials.username
    for name, value in permissions.items():
        assert user[name] == value
    await client.handshake()
    assert (await client.subscribe(channel))["error"] == error


async def test_user_permissions_errors(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    assert await admin(http, emulator, "/user-permissions", {"username": "nobody"}) == (
        400,
        {"error": "unknown user 'nobody'"},
    )
    assert await admin(http, emulator, "/user-permissions", {"hidden_fields": [1]}) == (
        400,
        {"error": "hidden_fields must contain non-empty strings only"},
    )


async def test_connection_and_delivery_limits(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator, make_client: ClientFactory
) -> None:
    await admin(http, emulator, "/settings", {"max_connections_per_user": 1})
    first, second = await make_client(), await make_client()
    await first.start()
    reply = await second.handshake()
    assert "simultaneous connections per server" in reply["ext"]["sfdc"]["failureReason"]
    await admin(http, emulator, "/settings", {"daily_delivery_limit": 0})
    [reply] = await first.connect()
    assert reply["error"] == "403::Organization total events daily limit exceeded"


async def test_my_domain_setting(http: aiohttp.ClientSession, emulator: SalesforceEmulator) -> None:
    await admin(http, emulator, "/settings", {"my_domain": False})
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.credentials.consumer_key,
        "client_secret": emulator.credentials.consumer_secret,
    }
    async with http.post(emulator.token_url, data=form) as response:
        assert response.status == 400
        assert await response.json() == {
            "error": "invalid_grant",
            "error_description": "request not supported on this domain",
        }


async def test_the_clock_refuses_what_is_not_a_finite_number(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    # Python's json reads NaN and 1e400 (infinity); a clock set to either breaks publish.
    for seconds in (b"NaN", b"Infinity", b"1e400"):
        response, body = await request(
            http, emulator, "POST", "/advance", b'{"seconds": ' + seconds + b"}"
        )
        assert (response.status, body) == (
            400,
            {"error": "the clock moves forward by a finite number of seconds"},
        ), seconds
    with pytest.raises(ValueError, match="finite"):
        emulator.advance(float("nan"))
    before = emulator.now()
    emulator.advance(1.5)
    assert emulator.now() >= before + 1.5


async def test_a_raw_payload_must_be_an_object(
    http: aiohttp.ClientSession, emulator: SalesforceEmulator
) -> None:
    await admin(http, emulator, "/channels", {"name": "/topic/Orders"})
    for payload in (5, [1], "text"):
        body = {"channel": "/topic/Orders", "raw": True, "payload": payload}
        assert await admin(http, emulator, "/publish", body) == (
            400,
            {"error": "a raw payload is the whole data object (a JSON object)"},
        ), payload
