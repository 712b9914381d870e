"""Conformance of ``/cometd/<version>`` with the protocol reference, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from aiosfstream.testing import SalesforceEmulator

from .conftest import CLIENT_EXPIRY, CONNECT_TIMEOUT, ClientFactory
from .raw import RawClient, events_of, replay_ids

VERSION_MANDATORY = "400::API version in the URI is mandatory. URI format: '/cometd/66.0'"
VERSION_UNSUPPORTED = (
    "400::Unsupported API version. Only API versions '37.0' and later are supported. "
    "URI format: '/cometd/66.0'"
)
UNKNOWN_CLIENT_ADVICE = {"interval": 0, "reconnect": "handshake"}
NO_RECONNECT = {"reconnect": "none", "interval": 0}


def invalid_replay(value: object) -> str:
    return (
        f"400::The replayId {{{value}}} you provided was invalid.  Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )


# -- HTTP level --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/cometd", "/cometd/"])
async def test_missing_version(client: RawClient, path: str) -> None:
    response, body = await client.request([client.handshake_message()], path=path)
    assert response.status == 400
    assert body == [{"error": VERSION_MANDATORY, "successful": False}]


@pytest.mark.parametrize("path", ["/cometd/36.0", "/cometd/replay/36.0", "/cometd/abc"])
async def test_unsupported_version(client: RawClient, path: str) -> None:
    response, body = await client.request([client.handshake_message()], path=path)
    assert response.status == 400
    assert body[0]["error"] == VERSION_UNSUPPORTED


@pytest.mark.parametrize("path", ["/cometd/37.0", "/cometd/66.0/"])
async def test_supported_version(client: RawClient, path: str) -> None:
    response, body = await client.request([client.handshake_message()], path=path)
    assert response.status == 200
    assert body[0]["successful"] is True


async def test_standalone_object_is_http_400(client: RawClient) -> None:
    response, body = await client.request(client.handshake_message())
    assert response.status == 400
    assert body[0]["successful"] is False


async def test_invalid_json_is_http_400(client: RawClient, emulator: SalesforceEmulator) -> None:
    async with client.session.post(
        emulator.cometd_url(),
        data=b"[{",
        headers={**client.headers, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400


async def test_content_type_is_required(client: RawClient, emulator: SalesforceEmulator) -> None:
    body = json.dumps([client.handshake_message()])
    async with client.session.post(
        emulator.cometd_url(), data=body, headers={**client.headers, "Content-Type": "text/plain"}
    ) as response:
        assert response.status == 400


async def test_form_encoded_message(client: RawClient, emulator: SalesforceEmulator) -> None:
    form = {"message": json.dumps([client.handshake_message()])}
    async with client.session.post(
        emulator.cometd_url(), data=form, headers=client.headers
    ) as response:
        assert response.status == 200
        [reply] = await response.json()
    assert reply["successful"] is True


async def test_request_over_32k_is_413(client: RawClient) -> None:
    await client.handshake()
    padding = "x" * 33_000
    message = client.subscribe_message("/topic/Big")
    message["padding"] = padding
    response, body = await client.request([message])
    assert response.status == 413
    assert response.reason == "Maximum Request Size Exceeded"
    assert body == [{"error": "413::Maximum Request Size Exceeded", "successful": False}]


async def test_request_just_under_the_limit_is_served(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Big")
    await client.handshake()
    message = client.subscribe_message("/topic/Big")
    message["padding"] = ""
    size = len(json.dumps([message]).encode())
    message["padding"] = "x" * (32_768 - size)
    body = json.dumps([message]).encode()
    assert len(body) == 32_768
    async with client.session.post(
        emulator.cometd_url(),
        data=body,
        headers={**client.headers, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 200
        [reply] = await response.json()
    assert reply["successful"] is True


async def test_get_is_refused(client: RawClient, emulator: SalesforceEmulator) -> None:
    async with client.session.get(emulator.cometd_url(), headers=client.headers) as response:
        assert response.status == 405


# -- handshake ---------------------------------------------------------------------------


async def test_handshake_reply_shape(client: RawClient) -> None:
    response, body = await client.request([client.handshake_message()])
    assert response.status == 200
    assert response.content_type == "application/json"
    [reply] = body
    client_id = reply["clientId"]
    assert isinstance(client_id, str)
    assert len(client_id) == 27
    assert reply == {
        "ext": {"replay": True, "payload.format": True},
        "minimumVersion": "1.0",
        "clientId": client_id,
        "supportedConnectionTypes": ["long-polling"],
        "channel": "/meta/handshake",
        "id": "1",
        "version": "1.0",
        "successful": True,
    }
    cookie = response.cookies["BAYEUX_BROWSER"]
    assert cookie.value
    assert cookie["httponly"]
    assert cookie["path"] == "/"


async def test_rehandshake_keeps_browser_cookie(client: RawClient) -> None:
    response, _ = await client.request([client.handshake_message()])
    assert "BAYEUX_BROWSER" in response.cookies
    response, body = await client.request([client.handshake_message()])
    assert body[0]["successful"] is True
    assert "BAYEUX_BROWSER" not in response.cookies


async def test_oauth_scheme_is_accepted(make_client: ClientFactory) -> None:
    client = await make_client(scheme="OAuth")
    reply = await client.handshake()
    assert reply["successful"] is True


async def test_handshake_without_token(client: RawClient) -> None:
    client.token = None
    reply = await client.handshake()
    assert reply == {
        "advice": {"reconnect": "none"},
        "ext": {
            "sfdc": {"failureReason": "401::Request requires authentication."},
            "replay": True,
            "payload.format": True,
        },
        "channel": "/meta/handshake",
        "id": "1",
        "error": "403::Handshake denied",
        "successful": False,
    }


@pytest.mark.parametrize("token", ["not-a-token", ""])
async def test_handshake_with_bad_token(client: RawClient, token: str) -> None:
    client.token = token
    reply = await client.handshake()
    assert reply["error"] == "403::Handshake denied"
    assert reply["ext"]["sfdc"]["failureReason"] == "401::Authentication invalid"
    assert reply["advice"] == {"reconnect": "none"}
    assert "clientId" not in reply


async def test_handshake_with_revoked_token(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    assert emulator.revoke_tokens() >= 1
    reply = await client.handshake()
    assert reply["error"] == "403::Handshake denied"
    assert reply["ext"]["sfdc"]["failureReason"] == "401::Authentication invalid"


async def test_handshake_without_long_polling(client: RawClient) -> None:
    message = client.handshake_message()
    message["supportedConnectionTypes"] = ["websocket"]
    [reply] = await client.send(message)
    assert reply["successful"] is False
    assert reply["error"] == "400::Invalid connection type {websocket}"


async def test_reply_without_request_id_has_no_id(client: RawClient) -> None:
    message = client.handshake_message()
    del message["id"]
    [reply] = await client.send(message)
    assert reply["successful"] is True
    assert "id" not in reply


async def test_numeric_id_is_echoed(client: RawClient) -> None:
    message = client.handshake_message()
    message["id"] = 7
    [reply] = await client.send(message)
    assert reply["id"] == 7


# -- connect -----------------------------------------------------------------------------


async def test_first_connect_returns_at_once_with_advice(client: RawClient) -> None:
    await client.handshake()
    started = time.monotonic()
    replies = await client.connect()
    assert time.monotonic() - started < CONNECT_TIMEOUT / 2
    assert replies == [
        {
            "clientId": client.client_id,
            "advice": {"interval": 0, "timeout": 500, "reconnect": "retry"},
            "channel": "/meta/connect",
            "id": "2",
            "successful": True,
        }
    ]


async def test_default_advice_timeout_is_110_seconds(make_client: ClientFactory) -> None:
    async with SalesforceEmulator() as server:
        client = await make_client(server=server)
        await client.handshake()
        [reply] = await client.connect()
    assert reply["advice"] == {"interval": 0, "timeout": 110000, "reconnect": "retry"}


async def test_idle_connect_is_held_until_timeout(client: RawClient) -> None:
    await client.start()
    started = time.monotonic()
    replies = await client.connect()
    elapsed = time.monotonic() - started
    assert CONNECT_TIMEOUT * 0.8 <= elapsed < CONNECT_TIMEOUT * 3
    assert replies == [
        {"clientId": client.client_id, "channel": "/meta/connect", "id": "3", "successful": True}
    ]


async def test_client_timeout_advice_shortens_the_hold(client: RawClient) -> None:
    await client.start()
    started = time.monotonic()
    replies = await client.connect(advice={"timeout": 0})
    assert time.monotonic() - started < CONNECT_TIMEOUT / 2
    assert replies[-1]["successful"] is True


async def test_held_connect_returns_early_on_publish(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.1)
    assert not task.done()
    started = time.monotonic()
    first = emulator.publish("/topic/Orders", {"Name": "A"})
    replies = await task
    assert time.monotonic() - started < CONNECT_TIMEOUT / 2
    assert replies[0] == first
    assert replies[-1]["channel"] == "/meta/connect"
    assert replies[-1]["successful"] is True
    assert "advice" not in replies[-1]


async def test_pending_events_come_in_one_batch_before_the_connect_reply(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    for name in "ABC":
        emulator.publish("/topic/Orders", {"Name": name})
    replies = await client.connect()
    assert [m["data"]["sobject"]["Name"] for m in events_of(replies)] == ["A", "B", "C"]
    assert replies[-1]["channel"] == "/meta/connect"


async def test_max_batch_size(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(connect_timeout=CONNECT_TIMEOUT, max_batch_size=2) as server:
        server.create_channel("/topic/Orders")
        client = await make_client(server=server)
        await client.start("/topic/Orders")
        for _ in range(3):
            server.publish("/topic/Orders")
        assert replay_ids(await client.connect()) == [1, 2]
        assert replay_ids(await client.connect()) == [3]


async def test_first_connect_does_not_carry_replayed_events(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    emulator.publish("/topic/Orders")
    await client.handshake()
    await client.subscribe("/topic/Orders", -2)
    first = await client.connect()
    assert events_of(first) == []
    assert replay_ids(await client.connect()) == [1]


async def test_subscribe_and_connect_in_one_request(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    emulator.publish("/topic/Orders")
    await client.start()
    replies = await client.send(
        client.subscribe_message("/topic/Orders", -2), client.connect_message()
    )
    assert replies[0]["channel"] == "/meta/subscribe"
    assert replies[0]["successful"] is True
    assert replay_ids(replies) == [1]
    assert replies[-1]["channel"] == "/meta/connect"


async def test_connect_without_cookie(client: RawClient, emulator: SalesforceEmulator) -> None:
    await client.handshake()
    client.session.cookie_jar.clear()
    [reply] = await client.connect()
    assert reply == {
        "clientId": client.client_id,
        "channel": "/meta/connect",
        "id": "2",
        "error": f"400::Client {client.client_id} has established a session, "
        "but no BAYEUX_BROWSER cookie present",
        "successful": False,
    }


async def test_invalid_connection_type(client: RawClient) -> None:
    await client.handshake()
    [reply] = await client.connect(connectionType="websocket")
    assert reply["successful"] is False
    assert reply["error"] == "400::Invalid connection type {websocket}"


async def test_connect_with_unknown_client_id(client: RawClient) -> None:
    await client.handshake()
    client.client_id = "nosuchclient"
    [reply] = await client.connect()
    assert reply == {
        "advice": UNKNOWN_CLIENT_ADVICE,
        "channel": "/meta/connect",
        "id": "2",
        "error": "403::Unknown client",
        "successful": False,
    }


async def test_client_expires_when_it_does_not_reconnect(client: RawClient) -> None:
    await client.start()
    await asyncio.sleep(CLIENT_EXPIRY + 0.1)
    [reply] = await client.connect()
    assert reply == {
        "advice": UNKNOWN_CLIENT_ADVICE,
        "channel": "/meta/connect",
        "id": "3",
        "error": "403::Unknown client",
        "successful": False,
    }


async def test_client_expiry_follows_the_emulator_clock(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    emulator.advance(CLIENT_EXPIRY + 1)
    [reply] = await client.connect()
    assert reply["error"] == "403::Unknown client"


async def test_held_connect_does_not_count_towards_expiry(client: RawClient) -> None:
    # The hold (0.5 s) is longer than the expiry (0.3 s): the client must survive it.
    await client.start()
    held = await client.connect()
    assert held[-1]["successful"] is True
    replies = await client.connect(advice={"timeout": 0})
    assert replies[-1]["successful"] is True


async def test_expired_client_loses_its_queue(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    emulator.publish("/topic/Orders")
    emulator.advance(CLIENT_EXPIRY + 1)
    [reply] = await client.connect()
    assert reply["error"] == "403::Unknown client"
    await client.start("/topic/Orders", replay=1)
    assert events_of(await client.connect(advice={"timeout": 0})) == []


async def test_expire_client_answers_held_connect(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    assert emulator.expire_client(client.client_id) == [client.client_id]
    [reply] = await task
    assert reply["error"] == "403::Unknown client"
    assert reply["advice"] == UNKNOWN_CLIENT_ADVICE
    assert "clientId" not in reply


async def test_revoked_token_on_connect(client: RawClient, emulator: SalesforceEmulator) -> None:
    await client.start()
    emulator.revoke_tokens()
    [reply] = await client.connect()
    assert reply == {
        "clientId": client.client_id,
        "advice": NO_RECONNECT,
        "channel": "/meta/connect",
        "id": "3",
        "error": "401::Authentication invalid",
        "successful": False,
    }


async def test_revoking_answers_held_connect(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    emulator.revoke_tokens()
    [reply] = await asyncio.wait_for(task, CONNECT_TIMEOUT / 2)
    assert reply["error"] == "401::Authentication invalid"
    assert reply["advice"] == NO_RECONNECT


async def test_connect_without_token(client: RawClient) -> None:
    await client.start()
    client.token = None
    [reply] = await client.connect()
    assert reply["error"] == "401::Request requires authentication."
    assert reply["advice"] == NO_RECONNECT


async def test_token_of_another_user(
    client: RawClient, emulator: SalesforceEmulator, http: aiohttp.ClientSession
) -> None:
    await client.start()
    emulator.add_user("other@example.com", "secret")
    client.token = emulator.issue_access_token("other@example.com")
    [reply] = await client.connect()
    assert reply["error"] == "400::Authenticated user id does not match the session's user id"
    assert reply["advice"] == NO_RECONNECT


async def test_session_timeout_kills_idle_token(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(connect_timeout=CONNECT_TIMEOUT, session_timeout=7200) as server:
        client = await make_client(server=server)
        await client.start()
        server.advance(7201)
        [reply] = await client.connect()
        assert reply["error"] == "401::Authentication invalid"
        reply = await client.handshake()
        assert reply["ext"]["sfdc"]["failureReason"] == "401::Authentication invalid"


async def test_new_connect_supersedes_held_one(client: RawClient) -> None:
    await client.start()
    first = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    second = asyncio.create_task(client.connect())
    replies = await asyncio.wait_for(first, CONNECT_TIMEOUT / 2)
    assert replies == [
        {"clientId": client.client_id, "channel": "/meta/connect", "id": "3", "successful": True}
    ]
    # The second connect is held longer than the client expiry: the client must survive.
    await asyncio.sleep(CLIENT_EXPIRY + 0.1)
    assert client.client_id in client.emulator.client_ids
    replies = await second
    assert replies[-1]["successful"] is True
    replies = await client.connect(advice={"timeout": 0})
    assert replies[-1]["successful"] is True


async def test_clients_sharing_a_browser_cookie(
    make_client: ClientFactory, emulator: SalesforceEmulator
) -> None:
    first = await make_client()
    second = await make_client(session=first.session)
    await first.start()
    await second.start()
    held = asyncio.create_task(first.connect())
    await asyncio.sleep(0.05)
    [reply] = await second.connect()
    assert reply["advice"] == {"interval": 2000, "multiple-clients": True, "reconnect": "retry"}
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held


# -- subscribe ---------------------------------------------------------------------------


async def test_subscribe_reply_shape(client: RawClient, emulator: SalesforceEmulator) -> None:
    emulator.create_channel("/topic/InvoiceStatementUpdates")
    await client.handshake()
    reply = await client.subscribe("/topic/InvoiceStatementUpdates")
    assert reply == {
        "clientId": client.client_id,
        "channel": "/meta/subscribe",
        "id": "2",
        "subscription": "/topic/InvoiceStatementUpdates",
        "successful": True,
    }
    assert emulator.subscriptions(client.client_id or "") == ["/topic/InvoiceStatementUpdates"]


async def test_subscribe_to_unknown_topic(client: RawClient) -> None:
    await client.handshake()
    reply = await client.subscribe("/topic/AccountUpdates")
    assert reply == {
        "clientId": client.client_id,
        "channel": "/meta/subscribe",
        "id": "2",
        "subscription": "/topic/AccountUpdates",
        "error": "400::The channel you requested to subscribe to does not exist "
        "{/topic/AccountUpdates}",
        "successful": False,
    }


@pytest.mark.parametrize("channel", ["/event/Low_Ink__e", "/data/AccountChangeEvent"])
async def test_subscribe_to_unknown_event_channel(client: RawClient, channel: str) -> None:
    await client.handshake()
    reply = await client.subscribe(channel)
    assert reply["error"] == (
        f"400::The channel you requested to subscribe to does not exist {{{channel}}}"
    )


async def test_subscribe_to_unknown_generic_channel(client: RawClient) -> None:
    await client.handshake()
    reply = await client.subscribe("/u/Missing")
    assert reply["error"] == "404::Unknown channel"
    assert reply["successful"] is False


@pytest.mark.parametrize(
    ("subscription", "error"),
    [
        (None, "400::Channel name not specified"),
        ("", "400::Channel name not specified"),
        ("topic/X", "400::Channel subscriptions must start with a leading '/'"),
    ],
)
async def test_subscribe_with_bad_channel_name(
    client: RawClient, subscription: str | None, error: str
) -> None:
    await client.handshake()
    message = client.subscribe_message("/topic/X")
    message["subscription"] = subscription
    [reply] = await client.send(message)
    assert reply["error"] == error


async def test_subscribe_before_handshake(client: RawClient, emulator: SalesforceEmulator) -> None:
    emulator.create_channel("/topic/X")
    message = client.subscribe_message("/topic/X")
    del message["clientId"]
    [reply] = await client.send(message)
    assert reply["error"] == "403::Client has not completed handshake"
    assert reply["advice"] == UNKNOWN_CLIENT_ADVICE


async def test_subscribe_with_unknown_client(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/X")
    client.client_id = "nosuchclient"
    reply = await client.subscribe("/topic/X")
    assert reply == {
        "advice": UNKNOWN_CLIENT_ADVICE,
        "channel": "/meta/subscribe",
        "id": "1",
        "subscription": "/topic/X",
        "error": "403::Unknown client",
        "successful": False,
    }


async def _prepare(emulator: SalesforceEmulator, count: int) -> None:
    emulator.create_channel("/topic/Orders")
    for index in range(count):
        emulator.publish("/topic/Orders", {"Name": f"O{index}"}, replay_id=10 * (index + 1))


@pytest.mark.parametrize("replay", [None, -1])
async def test_replay_new_events_only(
    client: RawClient, emulator: SalesforceEmulator, replay: int | None
) -> None:
    await _prepare(emulator, 3)
    await client.start("/topic/Orders", replay=replay)
    emulator.publish("/topic/Orders")
    assert replay_ids(await client.connect()) == [31]


async def test_replay_all_retained_events(client: RawClient, emulator: SalesforceEmulator) -> None:
    await _prepare(emulator, 3)
    await client.start("/topic/Orders", replay=-2)
    assert replay_ids(await client.connect()) == [10, 20, 30]


async def test_replay_after_an_id(client: RawClient, emulator: SalesforceEmulator) -> None:
    await _prepare(emulator, 3)
    await client.start("/topic/Orders", replay=10)
    assert replay_ids(await client.connect()) == [20, 30]


async def test_replay_after_the_last_id(client: RawClient, emulator: SalesforceEmulator) -> None:
    await _prepare(emulator, 3)
    await client.start("/topic/Orders", replay=30)
    emulator.publish("/topic/Orders")
    assert replay_ids(await client.connect()) == [31]


@pytest.mark.parametrize("replay", [15, 31, 0, -3, "10"])
async def test_invalid_replay_id(
    client: RawClient, emulator: SalesforceEmulator, replay: Any
) -> None:
    await _prepare(emulator, 3)
    await client.handshake()
    reply = await client.subscribe("/topic/Orders", replay)
    assert reply == {
        "clientId": client.client_id,
        "channel": "/meta/subscribe",
        "id": "2",
        "subscription": "/topic/Orders",
        "error": invalid_replay(replay),
        "successful": False,
    }
    assert emulator.subscriptions(client.client_id or "") == []


async def test_invalid_replay_error_text_is_verbatim(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/data/ChangeEvents")
    await client.handshake()
    reply = await client.subscribe("/data/ChangeEvents", 1)
    assert reply["error"] == (
        "400::The replayId {1} you provided was invalid.  Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )


async def test_purged_replay_id_is_invalid(client: RawClient, emulator: SalesforceEmulator) -> None:
    await _prepare(emulator, 2)
    emulator.advance(24 * 3600 + 1)
    emulator.publish("/topic/Orders")
    assert emulator.purge_retention() == 2
    await client.handshake()
    reply = await client.subscribe("/topic/Orders", 10)
    assert reply["error"] == invalid_replay(10)
    await client.subscribe("/topic/Orders", -2)
    await client.connect()
    assert replay_ids(await client.connect()) == [21]


async def test_retention_is_applied_on_subscribe(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await _prepare(emulator, 2)
    emulator.advance(24 * 3600 + 1)
    await client.handshake()
    assert (await client.subscribe("/topic/Orders", 20))["error"] == invalid_replay(20)
    assert (await client.subscribe("/topic/Orders", -2))["successful"] is True
    await client.connect()
    assert events_of(await client.connect(advice={"timeout": 0})) == []


async def test_platform_events_are_kept_72_hours(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.publish("/event/Low_Ink__e", {"Printer_Model__c": "XZO-5"})
    emulator.advance(48 * 3600)
    await client.start("/event/Low_Ink__e", replay=-2)
    assert replay_ids(await client.connect()) == [1]


async def test_replay_key_without_filter(client: RawClient, emulator: SalesforceEmulator) -> None:
    await _prepare(emulator, 2)
    await client.handshake()
    message = client.subscribe_message("/topic/Orders?Name=O1")
    message["ext"] = {"replay": {"/topic/Orders": -2}}
    [reply] = await client.send(message)
    assert reply["successful"] is True
    assert reply["subscription"] == "/topic/Orders?Name=O1"
    await client.connect()
    replies = await client.connect()
    assert replay_ids(replies) == [20]
    assert events_of(replies)[0]["channel"] == "/topic/Orders?Name=O1"


async def test_unsubscribe(client: RawClient, emulator: SalesforceEmulator) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    message = {
        "channel": "/meta/unsubscribe",
        "clientId": client.client_id,
        "subscription": "/topic/Orders",
        "id": "u1",
    }
    [reply] = await client.send(message)
    assert reply == {
        "clientId": client.client_id,
        "channel": "/meta/unsubscribe",
        "id": "u1",
        "subscription": "/topic/Orders",
        "successful": True,
    }
    emulator.publish("/topic/Orders")
    assert events_of(await client.connect(advice={"timeout": 0})) == []


async def test_old_api_version_gets_no_event_uuid(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(connect_timeout=CONNECT_TIMEOUT) as server:
        old = await make_client(server=server, version="45.0")
        new = await make_client(server=server, version="66.0")
        server.create_channel("/event/Low_Ink__e")
        await old.start("/event/Low_Ink__e")
        await new.start("/event/Low_Ink__e")
        server.publish("/event/Low_Ink__e")
        [old_event] = events_of(await old.connect())
        [new_event] = events_of(await new.connect())
    assert old_event["data"]["event"] == {"replayId": 1}
    assert set(new_event["data"]["event"]) == {"EventUuid", "replayId"}


async def test_publish_over_cometd_is_refused(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/u/Notes")
    await client.handshake()
    message = {"channel": "/u/Notes", "clientId": client.client_id, "data": "hi", "id": "p"}
    [reply] = await client.send(message)
    assert reply["successful"] is False
    assert reply["error"].startswith("403::")


async def test_message_without_channel(client: RawClient) -> None:
    [reply] = await client.send({"id": "x"})
    assert reply["error"] == "400::Channel name not specified"


# -- disconnects -------------------------------------------------------------------------


async def test_client_disconnect(client: RawClient, emulator: SalesforceEmulator) -> None:
    await client.start()
    message = {"channel": "/meta/disconnect", "clientId": client.client_id, "id": "d"}
    [reply] = await client.send(message)
    assert reply == {
        "clientId": client.client_id,
        "channel": "/meta/disconnect",
        "id": "d",
        "successful": True,
    }
    assert client.client_id not in emulator.client_ids
    [reply] = await client.connect()
    assert reply["error"] == "403::Unknown client"


async def test_client_disconnect_releases_held_connect(client: RawClient) -> None:
    await client.start()
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    other = RawClient(client.emulator, client.session, client.token)
    other.client_id = client.client_id
    await other.send({"channel": "/meta/disconnect", "clientId": client.client_id})
    [reply] = await asyncio.wait_for(task, CONNECT_TIMEOUT / 2)
    assert reply["successful"] is True
    assert reply["advice"] == NO_RECONNECT


async def test_server_disconnect_of_held_connect(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    assert emulator.server_disconnect() == [client.client_id]
    replies = await asyncio.wait_for(task, CONNECT_TIMEOUT / 2)
    assert replies == [
        {"channel": "/meta/disconnect", "clientId": client.client_id, "successful": True},
        {
            "clientId": client.client_id,
            "advice": NO_RECONNECT,
            "channel": "/meta/connect",
            "id": "3",
            "successful": True,
        },
    ]
    [reply] = await client.connect()
    assert reply["error"] == "403::Unknown client"


async def test_server_disconnect_of_idle_client(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    emulator.server_disconnect(client.client_id)
    replies = await client.connect()
    assert replies[0] == {
        "channel": "/meta/disconnect",
        "clientId": client.client_id,
        "successful": True,
    }
    assert client.client_id not in emulator.client_ids


async def test_drop_connections_keeps_session_and_events(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    await emulator.drop_connections()
    with pytest.raises(aiohttp.ClientError):
        await task
    emulator.publish("/topic/Orders")
    replies = await client.connect()
    assert replay_ids(replies) == [1]
    assert replies[-1]["successful"] is True


async def test_events_are_not_lost_on_an_abandoned_connect(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    emulator.publish("/topic/Orders")
    await asyncio.sleep(0.05)
    assert replay_ids(await client.connect()) == [1]


async def test_restart_on_same_port_keeps_org(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Orders")
    await client.start("/topic/Orders")
    emulator.publish("/topic/Orders")
    url = emulator.url
    await emulator.restart()
    assert emulator.url == url
    [reply] = await client.connect()
    assert reply["error"] == "403::Unknown client"
    await client.start("/topic/Orders", replay=-2)
    assert replay_ids(await client.connect()) == [1]


async def test_stop_cuts_held_connect(client: RawClient, emulator: SalesforceEmulator) -> None:
    await client.start()
    task = asyncio.create_task(client.connect())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await emulator.stop()
    assert time.monotonic() - started < CONNECT_TIMEOUT
    with pytest.raises(aiohttp.ClientError):
        await task
    assert not emulator.running
    await emulator.start()
    [reply] = await client.connect()
    assert reply["error"] == "403::Unknown client"


async def test_restart_can_keep_sessions(client: RawClient, emulator: SalesforceEmulator) -> None:
    await client.start()
    await emulator.restart(keep_sessions=True)
    replies = await client.connect(advice={"timeout": 0})
    assert replies[-1]["successful"] is True


# -- injected failures -------------------------------------------------------------------


async def test_fail_next_handshake_with_limit(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.fail_next("handshake", "403::Organization concurrent user limit exceeded")
    reply = await client.handshake()
    assert reply == {
        "advice": {"reconnect": "none"},
        "ext": {
            "sfdc": {"failureReason": "403::Organization concurrent user limit exceeded"},
            "replay": True,
            "payload.format": True,
        },
        "channel": "/meta/handshake",
        "id": "1",
        "error": "403::Handshake denied",
        "successful": False,
    }
    assert (await client.handshake())["successful"] is True


async def test_fail_next_connect_server_too_busy(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    emulator.fail_next("/meta/connect")
    [reply] = await client.connect()
    assert reply == {
        "clientId": client.client_id,
        "advice": NO_RECONNECT,
        "ext": {
            "sfdc": {
                "failureReason": "503::Server is too busy.  Please try your request again later."
            }
        },
        "channel": "/meta/connect",
        "id": "3",
        "error": "401::Authentication invalid",
        "successful": False,
    }


async def test_fail_next_connect_with_daily_limit(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.start()
    emulator.fail_next("connect", "403::Organization total events daily limit exceeded", times=2)
    for _ in range(2):
        [reply] = await client.connect()
        assert reply["error"] == "403::Organization total events daily limit exceeded"
        assert "ext" not in reply
    assert (await client.connect(advice={"timeout": 0}))[-1]["successful"] is True


async def test_fail_next_subscribe(client: RawClient, emulator: SalesforceEmulator) -> None:
    emulator.create_channel("/topic/X")
    await client.handshake()
    emulator.fail_next("subscribe", "403::Subscription limit exceeded for this topic")
    reply = await client.subscribe("/topic/X")
    assert reply["error"] == "403::Subscription limit exceeded for this topic"
    assert reply["subscription"] == "/topic/X"


async def test_fail_next_http_status(client: RawClient, emulator: SalesforceEmulator) -> None:
    emulator.fail_next("handshake", http_status=503)
    async with client.session.post(
        emulator.cometd_url(), json=[client.handshake_message()], headers=client.headers
    ) as response:
        assert response.status == 503
        assert response.content_type == "text/html"
        assert "<html>" in (await response.text()).lower().replace("<html><head>", "<html>")


def test_fail_next_rejects_unknown_operation(emulator: SalesforceEmulator) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        emulator.fail_next("publish")


async def test_concurrent_client_limit(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(client_expiry=CLIENT_EXPIRY, max_clients=1) as server:
        first = await make_client(server=server)
        second = await make_client(server=server)
        assert (await first.handshake())["successful"] is True
        reply = await second.handshake()
        assert reply["error"] == "403::Handshake denied"
        assert reply["ext"]["sfdc"]["failureReason"] == (
            "403::Organization concurrent user limit exceeded"
        )
        # Abandoned clients count until they expire.
        server.advance(CLIENT_EXPIRY + 1)
        assert (await second.handshake())["successful"] is True


async def test_stats_and_log(client: RawClient, emulator: SalesforceEmulator) -> None:
    emulator.create_channel("/topic/X")
    await client.start("/topic/X")
    stats = emulator.stats
    assert stats.token_requests == 1
    assert stats.tokens_issued == 1
    assert stats.grants["password"] == 1
    assert stats.handshakes == stats.successful_handshakes == 1
    assert stats.subscribes == 1
    assert stats.connects == 1
    [subscribe] = emulator.log.messages("/meta/subscribe")
    assert subscribe["subscription"] == "/topic/X"
    kinds = [record.kind for record in emulator.log.records]
    assert kinds == ["oauth", "bayeux", "bayeux", "bayeux"]
    stats.reset()
    assert emulator.stats.handshakes == 0


# -- org permissions and limits (the Streaming API error table) -----------------------------


def subscribe_error(client: RawClient, subscription: str, error: str) -> dict[str, Any]:
    """The exact reply Salesforce sends when it refuses *subscription*."""
    return {
        "clientId": client.client_id,
        "channel": "/meta/subscribe",
        "id": "2",
        "subscription": subscription,
        "error": error,
        "successful": False,
    }


async def test_filter_on_a_field_the_topic_entity_lacks(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Foo", fields=["Id", "Name", "Type"])
    await client.handshake()
    assert await client.subscribe("/topic/Foo?Bar=1") == subscribe_error(
        client, "/topic/Foo?Bar=1", "400::Query fields {Bar} do not exist on the topic entity"
    )
    reply = await client.subscribe("/topic/Foo?Bar=1&Type=Partner&Baz=2")
    assert reply["error"] == "400::Query fields {Bar, Baz} do not exist on the topic entity"
    assert (await client.subscribe("/topic/Foo?Type=Technology Partner"))["successful"] is True


async def test_filter_on_any_field_without_declared_fields(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Foo")
    await client.handshake()
    assert (await client.subscribe("/topic/Foo?Bar=1"))["successful"] is True


async def test_dynamic_generic_channel_needs_create_permission(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.configure(dynamic_channels=True)
    emulator.set_user_permissions(can_create_channels=False)
    await client.handshake()
    assert await client.subscribe("/u/New") == subscribe_error(
        client, "/u/New", "403::Cannot create channel {/u/New}"
    )
    assert "/u/New" not in emulator.channels
    emulator.set_user_permissions(can_create_channels=True)
    assert (await client.subscribe("/u/New"))["successful"] is True
    assert "/u/New" in emulator.channels


async def test_generic_channel_is_not_created_without_dynamic_creation(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    await client.handshake()
    reply = await client.subscribe("/u/New")
    assert reply == subscribe_error(client, "/u/New", "404::Unknown channel")


async def test_dynamic_creation_stops_at_the_channel_limit(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/u/Existing")
    emulator.configure(dynamic_channels=True, max_generic_channels=1)
    await client.handshake()
    assert await client.subscribe("/u/New") == subscribe_error(
        client,
        "/u/New",
        "403::Unable to create channel dynamically, maximum channel limit has been exceeded",
    )
    assert (await client.subscribe("/u/Existing"))["successful"] is True


async def test_generic_channel_names_may_not_vary_only_by_case(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/u/Notes")
    emulator.configure(dynamic_channels=True)
    await client.handshake()
    assert await client.subscribe("/u/notes") == subscribe_error(
        client, "/u/notes", "403::channel names may not vary only by case"
    )
    with pytest.raises(ValueError, match="may not vary only by case: /u/Notes exists"):
        emulator.create_channel("/u/NOTES")


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("/topic/Secret", "403::Subscriber does not have access to the entity in this topic"),
        ("/u/Secret", "403::No access on channel"),
        ("/event/Secret__e", "403::Restricted channel"),
        ("/data/AccountChangeEvent", "403::Restricted channel"),
    ],
)
async def test_channel_restricted_to_other_users(
    client: RawClient, emulator: SalesforceEmulator, channel: str, error: str
) -> None:
    emulator.create_channel(channel, users=["someone.else@example.com"])
    await client.handshake()
    assert await client.subscribe(channel) == subscribe_error(client, channel, error)
    emulator.create_channel(channel, users=[emulator.credentials.username])
    assert (await client.subscribe(channel))["successful"] is True


async def test_pushtopic_where_clause_on_a_hidden_field(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Deals", where_fields=["Amount", "Secret__c"])
    emulator.set_user_permissions(hidden_fields=["Secret__c"])
    await client.handshake()
    assert await client.subscribe("/topic/Deals") == subscribe_error(
        client,
        "/topic/Deals",
        "403::Subscriber does not have access to all fields referenced in the where clause of "
        "the PushTopic",
    )
    emulator.set_user_permissions(hidden_fields=[])
    assert (await client.subscribe("/topic/Deals"))["successful"] is True


async def test_user_not_enabled_for_streaming(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/topic/Foo")
    emulator.set_user_permissions(streaming_enabled=False)
    await client.handshake()
    assert await client.subscribe("/topic/Foo") == subscribe_error(
        client, "/topic/Foo", "403::User not enabled for streaming"
    )


async def test_change_events_need_view_all_data(
    client: RawClient, emulator: SalesforceEmulator
) -> None:
    emulator.create_channel("/data/ChangeEvents")
    emulator.create_channel("/event/Low_Ink__e")
    emulator.set_user_permissions(view_all_data=False)
    await client.handshake()
    assert await client.subscribe("/data/ChangeEvents") == subscribe_error(
        client,
        "/data/ChangeEvents",
        "403::User not allowed to subscribe CDC without View All Data permissions",
    )
    assert (await client.subscribe("/event/Low_Ink__e"))["successful"] is True


@pytest.mark.parametrize("channel", ["/topic/Busy", "/u/Busy"])
async def test_subscription_limit_per_topic(
    make_client: ClientFactory, emulator: SalesforceEmulator, channel: str
) -> None:
    emulator.create_channel(channel, max_subscribers=1)
    first, second = await make_client(), await make_client()
    await first.start(channel)
    await second.handshake()
    assert await second.subscribe(channel) == subscribe_error(
        second, channel, "403::Subscription limit exceeded for this topic"
    )
    # The subscribed client is one client, whatever its filters.
    assert (await first.subscribe(f"{channel}?Name=A"))["successful"] is True
    [reply] = await first.send(
        {"channel": "/meta/unsubscribe", "clientId": first.client_id, "subscription": channel}
    )
    assert reply["successful"] is True
    [reply] = await first.send(
        {
            "channel": "/meta/unsubscribe",
            "clientId": first.client_id,
            "subscription": f"{channel}?Name=A",
        }
    )
    assert reply["successful"] is True
    assert (await second.subscribe(channel))["successful"] is True


def test_subscription_limit_is_for_topics_and_generic_channels(
    emulator: SalesforceEmulator,
) -> None:
    with pytest.raises(ValueError, match="PushTopics and generic channels only"):
        emulator.create_channel("/event/Low_Ink__e", max_subscribers=1)
    with pytest.raises(ValueError, match="PushTopic"):
        emulator.create_channel("/u/Notes", fields=["Id"])


async def test_simultaneous_connections_per_user(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(
        client_expiry=CLIENT_EXPIRY, max_connections_per_user=1
    ) as server:
        first = await make_client(server=server)
        second = await make_client(server=server)
        assert (await first.handshake())["successful"] is True
        assert await second.handshake() == {
            "advice": {"reconnect": "none"},
            "ext": {
                "sfdc": {
                    "failureReason": "403::To protect all customers from excessive use and "
                    "Denial of Service attacks, we limit the number of simultaneous connections "
                    "per server.  Your request has been denied because this limit has been "
                    "exceeded.  Please try your request again later."
                },
                "replay": True,
                "payload.format": True,
            },
            "channel": "/meta/handshake",
            "id": "1",
            "error": "403::Handshake denied",
            "successful": False,
        }
        # Another user of the org still gets in.
        server.add_user("other@example.com", "other-password")
        other = RawClient(server, second.session, server.issue_access_token("other@example.com"))
        assert (await other.handshake())["successful"] is True


async def test_daily_delivery_limit(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(
        connect_timeout=CONNECT_TIMEOUT, client_expiry=48 * 3600, daily_delivery_limit=2
    ) as server:
        server.create_channel("/topic/X")
        for _ in range(3):
            server.publish("/topic/X")
        client = await make_client(server=server)
        await client.start("/topic/X", replay=-2)
        assert replay_ids(await client.connect()) == [1, 2]
        assert await client.connect() == [
            {
                "clientId": client.client_id,
                "advice": {"reconnect": "none", "interval": 0},
                "channel": "/meta/connect",
                "id": "5",
                "error": "403::Organization total events daily limit exceeded",
                "successful": False,
            }
        ]
        # The allowance is a rolling 24 hours; the undelivered event is still queued.
        server.advance(24 * 3600)
        assert replay_ids(await client.connect()) == [3]


async def test_daily_limit_reached_while_connects_are_held(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(
        connect_timeout=5.0, client_expiry=3600, daily_delivery_limit=1
    ) as server:
        server.create_channel("/topic/X")
        first, second = await make_client(server=server), await make_client(server=server)
        for client in (first, second):
            await client.start("/topic/X")
        held = [asyncio.create_task(client.connect()) for client in (first, second)]
        await asyncio.sleep(0.1)
        assert len(server._bayeux.held_client_ids) == 2
        server.publish("/topic/X")
        replies = await asyncio.gather(*held)
        # One client got the event; the allowance was gone when the other one woke.
        assert sorted(len(events_of(reply)) for reply in replies) == [0, 1]
        errors = [reply[-1].get("error") for reply in replies if not events_of(reply)]
        assert errors == ["403::Organization total events daily limit exceeded"]


async def test_daily_limit_refuses_the_first_connect(make_client: ClientFactory) -> None:
    async with SalesforceEmulator(client_expiry=3600, daily_delivery_limit=0) as server:
        client = await make_client(server=server)
        await client.handshake()
        [reply] = await client.connect()
        assert reply["error"] == "403::Organization total events daily limit exceeded"
        assert reply["advice"] == {"reconnect": "none", "interval": 0}
