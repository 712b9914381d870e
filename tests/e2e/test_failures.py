"""Every Salesforce failure mode as a tested behaviour (pitfalls P3-P7, P12, P15)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from aiosfstream import PasswordAuthenticator, ReplayOption
from aiosfstream.cometd import Backoff
from aiosfstream.cometd import Client as CometdClient
from aiosfstream.cometd import ServerError as CometdServerError
from aiosfstream.exceptions import ServerError, TransportTimeoutError
from aiosfstream.testing import SalesforceEmulator
from tests.e2e.conftest import CHANNEL, make_client, name_of, publish
from tests.e2e.test_spec import assert_nothing_more, names

FAST = Backoff(initial=0.05, cap=0.5)


async def test_handshake_denied_for_401_reauthenticates(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator, backoff=FAST) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "first")
        assert await names(client, 1) == ["first"]
        token_requests = emulator.stats.token_requests
        emulator.fail_next("handshake", "401::Authentication invalid")
        emulator.expire_client()
        publish(emulator, "second")
        assert await names(client, 1) == ["second"]
        assert emulator.stats.token_requests == token_requests + 1


async def test_open_reauthenticates_once_when_the_first_handshake_is_denied(
    emulator: SalesforceEmulator,
) -> None:
    emulator.fail_next("handshake", "401::Authentication invalid")
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
    assert emulator.stats.token_requests == 2


async def test_open_gives_up_when_fresh_credentials_are_denied_too(
    emulator: SalesforceEmulator,
) -> None:
    emulator.fail_next("handshake", "401::Authentication invalid", times=2)
    client = make_client(emulator)
    with pytest.raises(ServerError, match="Handshake denied"):
        await client.open()
    assert client.closed
    assert emulator.stats.token_requests == 2


async def purge_everything(emulator: SalesforceEmulator) -> None:
    """Move past the retention window so every stored replay id becomes invalid."""
    emulator.advance(80 * 3600)
    emulator.purge_retention()


async def test_rejected_resubscription_uses_the_fallback(emulator: SalesforceEmulator) -> None:
    async with make_client(
        emulator, replay_fallback=ReplayOption.ALL_EVENTS, backoff=FAST
    ) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "a")
        assert await names(client, 1) == ["a"]
        await purge_everything(emulator)
        publish(emulator, "retained")
        emulator.expire_client()
        assert await names(client, 1) == ["retained"]
        assert client.subscriptions == {CHANNEL}
        publish(emulator, "later")
        assert await names(client, 1) == ["later"]


async def test_rejected_resubscription_without_fallback_reaches_receive(
    emulator: SalesforceEmulator,
) -> None:
    async with make_client(emulator, backoff=FAST) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "a")
        assert await names(client, 1) == ["a"]
        await purge_everything(emulator)
        emulator.expire_client()
        with pytest.raises(ServerError) as caught:
            await asyncio.wait_for(client.receive(), 10)
        assert caught.value.error_code == 400
        assert "you provided was invalid" in (caught.value.error_message or "")
        assert client.subscriptions == set()


async def test_slow_consumer_past_the_expiry_gets_each_event_once() -> None:
    # The queue fills, the client stops polling, the server expires the session;
    # the new session resumes from the last *received* event, not the last consumed.
    async with SalesforceEmulator(connect_timeout=1.0, client_expiry=0.3) as emulator:
        emulator.create_channel(CHANNEL)
        async with make_client(emulator, max_pending_count=3, backoff=FAST) as client:
            await client.subscribe(CHANNEL)
            sent = [f"e{index}" for index in range(30)]
            publish(emulator, *sent)
            received = []
            for _ in sent:
                received += await names(client, 1)
                await asyncio.sleep(0.05)
            assert received == sent
            await assert_nothing_more(client)
            assert emulator.stats.handshakes > 1  # the expiry really happened


async def test_server_initiated_disconnect_reconnects(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator, backoff=FAST) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before")
        assert await names(client, 1) == ["before"]
        emulator.server_disconnect()
        publish(emulator, "after")
        assert await names(client, 1) == ["after"]
        assert client.subscriptions == {CHANNEL}
        await assert_nothing_more(client)


async def test_limits_back_off_without_a_handshake_storm(emulator: SalesforceEmulator) -> None:
    backoff = Backoff(initial=0.1, cap=2.0)
    async with make_client(emulator, backoff=backoff) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before")
        assert await names(client, 1) == ["before"]
        emulator.fail_next("handshake", "403::Organization concurrent user limit exceeded", times=2)
        handshakes = emulator.stats.handshakes
        started = time.monotonic()
        emulator.expire_client()
        publish(emulator, "after")
        assert await names(client, 1, timeout=30) == ["after"]
        elapsed = time.monotonic() - started
    # Two refusals, then success: three handshakes, each refusal followed by a pause
    # ten times the normal backoff (0.5-1 s, then 1-2 s).
    assert emulator.stats.handshakes - handshakes == 3
    assert elapsed >= 1.5


async def test_proxy_error_page_is_survived(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator, backoff=FAST) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before")
        assert await names(client, 1) == ["before"]
        emulator.fail_next("connect", http_status=502, times=2)
        publish(emulator, "after")
        assert await names(client, 1) == ["after"]


async def test_persistent_error_page_times_out_naming_the_cause(
    emulator: SalesforceEmulator,
) -> None:
    async with make_client(emulator, connection_timeout=1, backoff=FAST) as client:
        await client.subscribe(CHANNEL)
        emulator.fail_next("connect", http_status=502, times=1000)
        emulator.fail_next("handshake", http_status=502, times=1000)
        await emulator.drop_connections()
        with pytest.raises(TransportTimeoutError, match="502"):
            await asyncio.wait_for(client.receive(), 10)


async def test_no_secret_in_any_log_record(
    emulator: SalesforceEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: set[str] = {emulator.credentials.password, emulator.credentials.consumer_secret}
    client = make_client(emulator, backoff=FAST)
    async with client:
        await client.subscribe(CHANNEL)
        publish(emulator, "a")
        await names(client, 1)
        secrets.add(client.authenticator.access_token or "")
        emulator.revoke_tokens()
        publish(emulator, "b")
        await names(client, 1)
        secrets.add(client.authenticator.access_token or "")
        texts = [repr(client), str(client), repr(client.authenticator), str(client.authenticator)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert len(caplog.records) > 5
    for secret in secrets - {""}:
        assert not any(secret in text for text in texts), "a secret leaked"


async def test_cancelling_the_consumer_then_closing_is_clean(
    emulator: SalesforceEmulator,
) -> None:
    before = asyncio.all_tasks()
    client = make_client(emulator)
    await client.open()
    await client.subscribe(CHANNEL)
    consumer = asyncio.ensure_future(client.receive())
    await asyncio.sleep(0.1)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await client.close()
    assert client.closed
    left = {
        task
        for task in asyncio.all_tasks() - before
        if not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler")
    }
    assert left == set()


async def test_close_ends_async_for(emulator: SalesforceEmulator) -> None:
    client = make_client(emulator)
    await client.open()
    await client.subscribe(CHANNEL)
    seen: list[dict[str, Any]] = []

    async def consume() -> None:
        async for message in client:
            seen.append(message)

    consumer = asyncio.ensure_future(consume())
    publish(emulator, "a")
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.02)
    await client.close()
    await asyncio.wait_for(consumer, 5)
    assert [name_of(message) for message in seen] == ["a"]


async def test_plain_bayeux_client_stops_when_the_server_ends_the_session(
    emulator: SalesforceEmulator,
) -> None:
    # Outside Salesforce, a server's /meta/disconnect means "go away": ServerError.
    credentials = emulator.credentials
    auth = PasswordAuthenticator(
        credentials.consumer_key,
        credentials.consumer_secret,
        credentials.username,
        credentials.password,
        login_url=emulator.url,
        allow_insecure_http=True,
    )
    async with CometdClient(emulator.cometd_url(), auth=auth) as client:
        await client.subscribe(CHANNEL)
        emulator.server_disconnect()
        with pytest.raises(CometdServerError, match="ended the session"):
            await asyncio.wait_for(client.receive(), 10)
