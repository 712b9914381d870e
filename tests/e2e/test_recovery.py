"""Recovery against hostile servers: the client's promises when the network or Salesforce
misbehaves, one test (or a small parametrized group) per promise.

Everything runs on 127.0.0.1: the emulator, a :class:`~tests.hostile.CuttingProxy` in
front of its Bayeux endpoint (``emulator.instance_url = proxy.url``) or its token
endpoint (``login_url=proxy.url``), and :class:`~tests.hostile.RecordingServer` as the
target of redirects, which must never be reached.

Two channels recur: ``BUSY`` has a replay position and events flowing; ``QUIET`` is
subscribed with NEW_EVENTS and has delivered nothing, so the client knows no replay id for
it. Time bounds are behavioural ("gives up within connection_timeout + 2 s"), with margins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiosfstream import Client, ReplayMarker, SalesforceStreamingClient
from aiosfstream.cometd import Backoff
from aiosfstream.exceptions import (
    AiosfstreamException,
    AuthenticationError,
    HTTPRedirectError,
    ResponseTooLargeError,
    ServerError,
    TransportTimeoutError,
)
from aiosfstream.replay import marker_from_message
from aiosfstream.testing import SalesforceEmulator
from tests.e2e.conftest import eventually, name_of
from tests.helpers import emulator_client
from tests.hostile import CuttingProxy, RecordingServer, always, on_channel, reply_carries

BUSY = "/topic/busy"
QUIET = "/topic/quiet"
LATE = "/topic/late"
FAST = Backoff(initial=0.05, cap=0.5)
UNKNOWN_CLIENT = "403::Unknown client"
CONCURRENT_LIMIT = "403::Organization concurrent user limit exceeded"
PUBLISH_DENIED = "Publishing over CometD is not supported"
#: Slack added to every behavioural time bound.
MARGIN = 2.0

Item = tuple[str, str]


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    """Connects held for 2 s, sessions expire 5 s after their last request."""
    async with SalesforceEmulator(connect_timeout=2.0, client_expiry=5.0) as server:
        for channel in (BUSY, QUIET, LATE):
            server.create_channel(channel)
        yield server


@pytest.fixture
async def proxy(emulator: SalesforceEmulator) -> AsyncIterator[CuttingProxy]:
    """A cutting proxy in front of the Bayeux endpoint: token answers name it."""
    async with CuttingProxy(emulator.url) as running:
        emulator.instance_url = running.url
        yield running


def sf_client(
    emulator: SalesforceEmulator, *, login_url: str | None = None, **options: Any
) -> SalesforceStreamingClient:
    """A client of the emulator's default user (logging in at *login_url* if given)."""
    return emulator_client(login_url or emulator.url, **options)


def publish(emulator: SalesforceEmulator, channel: str, *names: str) -> list[dict[str, Any]]:
    """Publish one PushTopic event per name on *channel*; return the messages."""
    return [emulator.publish(channel, {"Name": name}) for name in names]


def busy(*names: str) -> list[Item]:
    return [(BUSY, name) for name in names]


async def collect(client: Client, count: int, timeout: float = 10.0) -> list[Item]:
    """Receive up to *count* events within *timeout*; return ``(channel, name)`` pairs.

    Stops early at the timeout, so that an assertion shows what did arrive.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: list[Item] = []
    while len(got) < count:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            message = await asyncio.wait_for(client.receive(), remaining)
        except asyncio.TimeoutError:
            break
        got.append((message["channel"], name_of(message)))
    return got


async def assert_nothing_more(client: Client, wait: float = 0.5) -> None:
    """No further event arrives within *wait* seconds (no duplicate, no stray event)."""
    try:
        message = await asyncio.wait_for(client.receive(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected event {message['channel']} {name_of(message)}")


def chain(error: BaseException) -> list[BaseException]:
    """*error* and its causes and contexts, outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def assert_names_cause(error: BaseException, *fragments: str) -> None:
    """A timeout message that says why: no dangling ``": "``, the cause's text, *fragments*."""
    text = str(error)
    assert text.strip(), f"{type(error).__name__} without a message"
    assert not text.rstrip().endswith(":"), f"the message names no cause: {text!r}"
    cause = error.__cause__
    if cause is not None and str(cause):
        assert str(cause) in text, f"the cause {str(cause)!r} is not in {text!r}"
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} is not in {text!r}"


async def timed_failure(awaitable: Awaitable[Any], guard: float) -> tuple[BaseException, float]:
    """Await *awaitable*, which must fail within *guard* seconds; return the error and time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(awaitable, guard)
    except asyncio.TimeoutError as error:
        # A guard timeout is the test's own: the client took too long.
        if loop.time() - started >= guard - 0.05:
            raise AssertionError(f"still waiting after {guard} s") from error
        return error, loop.time() - started
    except Exception as error:
        return error, loop.time() - started
    raise AssertionError("expected a failure, but it succeeded")


async def streaming(client: Client, emulator: SalesforceEmulator, *channels: str) -> None:
    """Subscribe to *channels* and prove events flow on the first one."""
    for channel in channels:
        await client.subscribe(channel)
    publish(emulator, channels[0], "first")
    assert await collect(client, 1) == [(channels[0], "first")]


# -- 1. redirects never carry credentials -------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
async def test_token_redirect_is_refused_and_sends_nothing(
    emulator: SalesforceEmulator, status: int
) -> None:
    async with RecordingServer() as target:
        location = f"{target.url}/services/oauth2/token"
        emulator.fail_next("token", http_status=status, headers={"Location": location})
        client = sf_client(emulator, connection_timeout=3, backoff=FAST)
        error, _ = await timed_failure(client.open(), 10)
        assert target.requests == [], "the credentials followed the redirect"
    assert isinstance(error, AuthenticationError), repr(error)
    assert error.status == status
    assert str(status) in str(error) and location in str(error)
    assert emulator.stats.token_requests == 1  # a redirect is definitive: not retried
    assert client.closed


async def test_bayeux_redirect_is_refused_and_sends_nothing(
    emulator: SalesforceEmulator,
) -> None:
    async with RecordingServer() as target:
        location = f"{target.url}/cometd/66.0"
        emulator.fail_next("handshake", http_status=307, headers={"Location": location})
        client = sf_client(emulator, connection_timeout=3, backoff=FAST)
        error, _ = await timed_failure(client.open(), 10)
        assert target.requests == [], "the session followed the redirect"
    assert isinstance(error, HTTPRedirectError), repr(error)
    assert (error.status, error.location) == (307, location)
    assert client.closed


# -- 2. a lost or malformed /meta/connect reply never skips events -------------------------


def spoil(garbage: Callable[[dict[str, Any]], Any]) -> Callable[[list[Any]], list[Any]]:
    """Replace the middle busy-channel event of a reply array by ``garbage(event)``."""

    def rewrite(replies: list[Any]) -> list[Any]:
        events = [
            index
            for index, message in enumerate(replies)
            if isinstance(message, dict) and message.get("channel") == BUSY
        ]
        middle = events[len(events) // 2]
        replies[middle] = garbage(replies[middle])
        return replies

    return rewrite


def without_channel(event: dict[str, Any]) -> Any:
    return {key: value for key, value in event.items() if key != "channel"}


def not_an_object(event: dict[str, Any]) -> Any:
    return 42


@pytest.mark.parametrize("damage", ["lost", "message without channel", "non-object message"])
async def test_lost_or_spoiled_connect_reply_skips_no_event(
    emulator: SalesforceEmulator, proxy: CuttingProxy, damage: str
) -> None:
    # BUSY resumes from a stored marker (replaying b1); QUIET starts with NEW_EVENTS.
    b0, _ = publish(emulator, BUSY, "b0", "b1")
    replay: dict[str, ReplayMarker] = {BUSY: marker_from_message(b0)}
    async with sf_client(emulator, replay=replay, connection_timeout=5, backoff=FAST) as client:
        await client.subscribe(BUSY)
        await client.subscribe(QUIET)
        publish(emulator, BUSY, "b2", "b3")
        assert await collect(client, 3) == busy("b1", "b2", "b3")
        if damage == "lost":
            rule = proxy.drop_reply(reply_carries(BUSY))
        else:
            garbage = without_channel if damage == "message without channel" else not_an_object
            rule = proxy.rewrite_reply(reply_carries(BUSY), spoil(garbage))
        batch = [f"b{index}" for index in range(4, 9)]
        publish(emulator, BUSY, *batch)  # one batch: the reply the proxy damages
        await rule.fired()
        publish(emulator, BUSY, "b9", "b10")
        assert await collect(client, 7) == busy(*batch, "b9", "b10")
        await assert_nothing_more(client)
        publish(emulator, QUIET, "q1")
        assert await collect(client, 1) == [(QUIET, "q1")]
        assert client.subscriptions == {BUSY, QUIET}


# -- 3. a transient token-endpoint failure is retried -------------------------------------


@pytest.mark.parametrize("failure", ["503", "502", "html page", "connection refused"])
async def test_open_survives_a_short_token_endpoint_failure(
    emulator: SalesforceEmulator, failure: str
) -> None:
    async with CuttingProxy(emulator.url) as login:
        if failure == "connection refused":
            await login.stop()
        elif failure == "html page":
            emulator.fail_next(
                "token",
                http_status=200,
                body="<html><head><title>Down for maintenance</title></head></html>",
                times=3,
            )
        else:
            emulator.fail_next("token", http_status=int(failure), times=3)
        client = sf_client(emulator, login_url=login.url, connection_timeout=5, backoff=FAST)
        opening = asyncio.ensure_future(client.open())
        try:
            if failure == "connection refused":
                await asyncio.sleep(1.0)
                assert not opening.done(), "open() gave up on a refused connection at once"
                await login.start()
            await asyncio.wait_for(opening, 5 + MARGIN)
            await streaming(client, emulator, BUSY)
        finally:
            opening.cancel()
            await client.close()
    if failure != "connection refused":
        assert emulator.stats.token_requests == 4


async def test_retry_after_is_honoured(emulator: SalesforceEmulator) -> None:
    emulator.fail_next("token", http_status=429, headers={"Retry-After": "1"})
    async with sf_client(emulator, connection_timeout=5, backoff=FAST) as client:
        await streaming(client, emulator, BUSY)
    times = [record.time for record in emulator.log.records if record.kind == "oauth"]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.9, "the token request came back before Retry-After"


async def test_reauthentication_mid_stream_survives_token_endpoint_failures(
    emulator: SalesforceEmulator,
) -> None:
    async with sf_client(emulator, connection_timeout=5, backoff=FAST) as client:
        await streaming(client, emulator, BUSY)
        before = emulator.stats.token_requests
        emulator.fail_next("token", http_status=503, times=2)
        emulator.fail_next("token", http_status=502)
        emulator.revoke_tokens()
        publish(emulator, BUSY, "a", "b")
        assert await collect(client, 2) == busy("a", "b")
        publish(emulator, BUSY, "c")
        assert await collect(client, 1) == busy("c")
        await assert_nothing_more(client)
    assert emulator.stats.token_requests - before == 4


async def test_definitive_token_refusal_at_open_is_not_retried(
    emulator: SalesforceEmulator,
) -> None:
    emulator.fail_next("token", "authentication failure", error="invalid_grant")
    client = sf_client(emulator, connection_timeout=10, backoff=FAST)
    error, elapsed = await timed_failure(client.open(), 10)
    assert isinstance(error, AuthenticationError), repr(error)
    assert (error.status, error.error, error.retryable) == (400, "invalid_grant", False)
    assert emulator.stats.token_requests == 1
    assert elapsed < MARGIN


async def test_definitive_token_refusal_mid_stream_reaches_receive(
    emulator: SalesforceEmulator,
) -> None:
    async with sf_client(emulator, connection_timeout=30, backoff=FAST) as client:
        await streaming(client, emulator, BUSY)
        emulator.fail_next("token", "authentication failure", error="invalid_grant", times=50)
        emulator.revoke_tokens()
        error, _ = await timed_failure(client.receive(), 5)  # well before connection_timeout
        assert isinstance(error, AuthenticationError), repr(error)
        assert error.error == "invalid_grant"


async def test_token_endpoint_failure_longer_than_connection_timeout(
    emulator: SalesforceEmulator,
) -> None:
    emulator.fail_next("token", http_status=503, times=1000)
    client = sf_client(emulator, connection_timeout=2, backoff=FAST)
    error, elapsed = await timed_failure(client.open(), 2 + MARGIN + 1)
    assert isinstance(error, TransportTimeoutError), repr(error)
    assert_names_cause(error, "503")
    assert 1.5 <= elapsed <= 2 + MARGIN
    assert emulator.stats.token_requests > 1


# -- 4. "403::Unknown client" always means a new session ----------------------------------


async def test_unknown_client_with_reconnect_none_starts_a_new_session(
    emulator: SalesforceEmulator,
) -> None:
    async with sf_client(emulator, connection_timeout=5, backoff=FAST) as client:
        await streaming(client, emulator, BUSY)
        handshakes = emulator.stats.successful_handshakes
        subscribes = len(emulator.log.messages("/meta/subscribe"))
        # faye#492: the reply carries the clientId and advice {"reconnect": "none"}.
        emulator.fail_next(
            "connect",
            UNKNOWN_CLIENT,
            error=UNKNOWN_CLIENT,
            advice={"reconnect": "none", "interval": 0},
        )
        sent = publish(emulator, BUSY, "a", "b")
        assert await collect(client, 2) == busy("a", "b")
        await eventually(
            lambda: emulator.stats.successful_handshakes > handshakes, 5, "no new handshake"
        )
        publish(emulator, BUSY, "c")
        assert await collect(client, 1) == busy("c")
        await assert_nothing_more(client)
    resubscriptions = emulator.log.messages("/meta/subscribe")[subscribes:]
    assert resubscriptions, "no resubscription after the new handshake"
    replay_id = resubscriptions[0]["ext"]["replay"][BUSY]
    first_id = sent[0]["data"]["event"]["replayId"]
    # From the last replay id received: the one before "a", "a" or "b"; never -1 or -2.
    assert first_id - 1 <= replay_id <= first_id + 1


# -- 5. an outage shorter than connection_timeout always recovers --------------------------


@pytest.mark.parametrize("outage", ["connections refused", "everything cut"])
async def test_eight_second_outage_recovers_with_the_defaults(
    emulator: SalesforceEmulator, proxy: CuttingProxy, outage: str
) -> None:
    async with sf_client(emulator) as client:  # connection_timeout=10, default backoff
        await streaming(client, emulator, BUSY)
        if outage == "connections refused":
            await proxy.stop()
        else:
            proxy.cut_everything = True
            proxy.cut()
        publish(emulator, BUSY, "during 1")
        await asyncio.sleep(4.0)
        publish(emulator, BUSY, "during 2")
        await asyncio.sleep(4.0)
        if outage == "connections refused":
            await proxy.start()
        else:
            proxy.cut_everything = False
        publish(emulator, BUSY, "after")
        assert await collect(client, 3, timeout=10) == busy("during 1", "during 2", "after")
        await assert_nothing_more(client)


# -- 6. calls during session loss wait for the new session --------------------------------


@pytest.mark.parametrize("loss", ["outage", "slow new handshake"])
async def test_calls_during_session_loss_wait_for_the_new_session(
    emulator: SalesforceEmulator, proxy: CuttingProxy, loss: str
) -> None:
    async with sf_client(emulator, connection_timeout=5, backoff=FAST) as client:
        await streaming(client, emulator, BUSY, QUIET)
        [old_session] = emulator.client_ids
        if loss == "outage":
            await proxy.stop()
            emulator.expire_client()  # the session is lost, not merely unreachable
        else:
            proxy.delay(on_channel("/meta/handshake"), 1.5)
            emulator.expire_client()
        await asyncio.sleep(0.3)
        calls = [
            asyncio.ensure_future(client.subscribe(LATE)),
            asyncio.ensure_future(client.unsubscribe(QUIET)),
            asyncio.ensure_future(client.publish(BUSY, {"Name": "from the client"})),
        ]
        try:
            await asyncio.sleep(0.8)
            early = [call for call in calls if call.done()]
            assert not early, f"calls did not wait: {[repr(call.exception()) for call in early]}"
            if loss == "outage":
                await proxy.start()
            await asyncio.wait_for(asyncio.gather(*calls[:2]), 5)
            with pytest.raises(ServerError, match=PUBLISH_DENIED):
                await asyncio.wait_for(calls[2], 5)
        finally:
            for call in calls:
                call.cancel()
        assert client.subscriptions == {BUSY, LATE}
        [session] = emulator.client_ids
        assert session != old_session
        assert sorted(emulator.subscriptions(session)) == [BUSY, LATE]
        [published] = emulator.log.messages(BUSY)  # the publish reached the new session
        assert published["clientId"] == session
        publish(emulator, LATE, "l1")
        publish(emulator, QUIET, "q1")
        publish(emulator, BUSY, "b1")
        assert sorted(await collect(client, 2)) == sorted([(LATE, "l1"), (BUSY, "b1")])
        await assert_nothing_more(client)


async def test_subscribe_answered_unknown_client_is_retried_in_a_new_session(
    emulator: SalesforceEmulator,
) -> None:
    async with sf_client(emulator, connection_timeout=5, backoff=FAST) as client:
        await streaming(client, emulator, BUSY)
        [old_session] = emulator.client_ids
        # The session expires just now: the subscribe is the first request to learn it.
        emulator.expire_client(notify=False)
        await asyncio.wait_for(client.subscribe(LATE), 5 + MARGIN)
        assert client.subscriptions == {BUSY, LATE}
        await eventually(lambda: bool(emulator.client_ids), 5, "no new session")
        [session] = emulator.client_ids
        assert session != old_session
        assert sorted(emulator.subscriptions(session)) == [BUSY, LATE]
        publish(emulator, LATE, "l1")
        publish(emulator, BUSY, "b1")
        assert sorted(await collect(client, 2)) == sorted([(LATE, "l1"), (BUSY, "b1")])
        await assert_nothing_more(client, wait=2.5)  # past the old session's held connect


# -- 7. open() and subscribe() honour connection_timeout -----------------------------------


async def test_open_gives_up_on_a_silent_handshake_within_connection_timeout(
    emulator: SalesforceEmulator, proxy: CuttingProxy
) -> None:
    proxy.hang(on_channel("/meta/handshake"), times=None)
    client = sf_client(emulator, connection_timeout=3, backoff=FAST)
    error, elapsed = await timed_failure(client.open(), 3 + MARGIN + 0.5)
    assert isinstance(error, TransportTimeoutError), repr(error)
    assert 2.5 <= elapsed <= 3 + MARGIN
    assert_names_cause(error)
    assert client.closed


async def test_subscribe_gives_up_on_a_silent_reply_within_connection_timeout(
    emulator: SalesforceEmulator, proxy: CuttingProxy
) -> None:
    async with sf_client(emulator, connection_timeout=3, backoff=FAST) as client:
        await streaming(client, emulator, BUSY)
        proxy.hang(on_channel("/meta/subscribe"), times=None)
        error, elapsed = await timed_failure(client.subscribe(QUIET), 3 + MARGIN + 0.5)
        assert isinstance(error, TransportTimeoutError), repr(error)
        assert 2.5 <= elapsed <= 3 + MARGIN
        assert_names_cause(error)
        assert QUIET not in client.subscriptions


@pytest.mark.parametrize("down", ["token endpoint", "bayeux endpoint"])
async def test_open_without_connection_timeout_waits_for_the_start_up(
    emulator: SalesforceEmulator, down: str
) -> None:
    async with CuttingProxy(emulator.url) as gate:
        login_url = gate.url if down == "token endpoint" else emulator.url
        if down == "bayeux endpoint":
            emulator.instance_url = gate.url
        await gate.stop()
        client = sf_client(emulator, login_url=login_url, connection_timeout=None, backoff=FAST)
        opening = asyncio.ensure_future(client.open())
        try:
            await asyncio.sleep(2.5)
            if opening.done():
                raise AssertionError(f"open() gave up: {opening.exception()!r}")
            await gate.start()
            await asyncio.wait_for(opening, 5)
            await streaming(client, emulator, BUSY)
        finally:
            opening.cancel()
            await client.close()


# -- 8. a server /meta/disconnect on any reply starts a new session -----------------------


@pytest.mark.parametrize("reply", ["connect", "handshake", "resubscribe"])
async def test_server_disconnect_in_any_reply_starts_a_new_session(
    emulator: SalesforceEmulator, reply: str
) -> None:
    async with sf_client(emulator, connection_timeout=5, backoff=FAST) as client:
        await streaming(client, emulator, BUSY, QUIET)
        handshakes = emulator.stats.successful_handshakes
        if reply == "connect":
            emulator.disconnect_next("connect")
        else:
            # A new session is needed, and its handshake reply (or the reply to its first
            # resubscription) ends it again.
            emulator.disconnect_next("handshake" if reply == "handshake" else "subscribe")
            emulator.expire_client()
        publish(emulator, BUSY, "a", "b")
        assert await collect(client, 2) == busy("a", "b")
        publish(emulator, BUSY, "c")
        assert await collect(client, 1) == busy("c")
        wanted = handshakes + (1 if reply == "connect" else 2)
        await eventually(
            lambda: emulator.stats.successful_handshakes >= wanted,
            5,
            f"fewer than {wanted - handshakes} new sessions",
        )
        publish(emulator, BUSY, "d")
        publish(emulator, QUIET, "q")
        assert sorted(await collect(client, 2)) == sorted([(BUSY, "d"), (QUIET, "q")])
        await assert_nothing_more(client)
        assert client.subscriptions == {BUSY, QUIET}
        [session] = emulator.client_ids
        assert sorted(emulator.subscriptions(session)) == [BUSY, QUIET]


# -- 9. max_response_bytes ----------------------------------------------------------------

LIMIT = 256 * 1024


@pytest.mark.parametrize("length", ["chunked", "announced"])
async def test_oversized_connect_reply_is_not_buffered_and_is_replayed(
    emulator: SalesforceEmulator, proxy: CuttingProxy, length: str
) -> None:
    size = 64 * 1024**2
    client = sf_client(emulator, max_response_bytes=LIMIT, connection_timeout=5, backoff=FAST)
    async with client:
        await streaming(client, emulator, BUSY)
        rule = proxy.oversize_reply(reply_carries(BUSY), size, chunked=length == "chunked")
        publish(emulator, BUSY, "a", "b", "c")
        await rule.fired()
        publish(emulator, BUSY, "d")
        assert await collect(client, 4) == busy("a", "b", "c", "d")
        await assert_nothing_more(client)
    assert rule.bytes_sent < size / 2, f"the client read {rule.bytes_sent} bytes of {size}"


async def test_events_decoded_before_the_limit_are_handed_over(
    emulator: SalesforceEmulator, proxy: CuttingProxy
) -> None:
    # The events of an oversized reply that come before the limit are decoded as they
    # arrive: they are handed over, and the stream resumes after the last of them.
    client = sf_client(emulator, max_response_bytes=LIMIT, connection_timeout=5, backoff=FAST)
    async with client:
        await streaming(client, emulator, BUSY)
        rule = proxy.oversize_reply(reply_carries(BUSY), 64 * 1024**2, times=None)
        publish(emulator, BUSY, "a", "b", "c")
        assert await collect(client, 3) == busy("a", "b", "c")
        rule.cancel()
        publish(emulator, BUSY, "d")
        assert await collect(client, 1) == busy("d")
        await assert_nothing_more(client)


@pytest.mark.parametrize("fraction", [0.3, 0.7])
async def test_a_connect_reply_cut_midway_while_decoded_loses_and_repeats_nothing(
    emulator: SalesforceEmulator, proxy: CuttingProxy, fraction: float
) -> None:
    # A backlog answered in one reply, read by a slow consumer, and cut by the proxy
    # part-way: the events decoded before the cut are handed over, the rest come again
    # by replay from the last of them.
    names = [f"e{index:03}" for index in range(300)]
    client = sf_client(emulator, max_pending_count=10, connection_timeout=5, backoff=FAST)
    async with client:
        await streaming(client, emulator, BUSY)
        rule = proxy.cut_reply(reply_carries(BUSY), fraction)
        publish(emulator, BUSY, *names)
        await rule.fired()
        got = []
        for _ in range(len(names)):
            got.extend(await collect(client, 1))
            await asyncio.sleep(0.001)
        assert got == busy(*names)
        await assert_nothing_more(client)
    assert rule.bytes_sent > 0


async def test_every_reply_too_large_raises_response_too_large() -> None:
    # Connects held only 0.3 s and events published all along: every poll is answered
    # soon, and every answer is too large, until connection_timeout runs out.
    async with (
        SalesforceEmulator(connect_timeout=0.3, client_expiry=5.0) as emulator,
        CuttingProxy(emulator.url) as proxy,
    ):
        emulator.create_channel(BUSY)
        emulator.instance_url = proxy.url
        size = 64 * 1024**2
        client = sf_client(emulator, max_response_bytes=LIMIT, connection_timeout=2, backoff=FAST)
        async with client:
            await client.subscribe(BUSY)
            # Padded in front: the events of a reply decoded before the limit would be
            # handed over, so that the stream would go on.
            rule = proxy.oversize_reply(always, size, times=None, pad_first=True)

            async def keep_publishing() -> None:
                for index in range(1000):
                    publish(emulator, BUSY, f"e{index}")
                    await asyncio.sleep(0.05)

            publisher = asyncio.ensure_future(keep_publishing())
            try:
                error, _ = await timed_failure(client.receive(), 2 + MARGIN + 1)
            finally:
                publisher.cancel()
            assert rule.hits >= 2
    too_large = [e for e in chain(error) if isinstance(e, ResponseTooLargeError)]
    assert too_large, f"no ResponseTooLargeError in {chain(error)!r}"
    assert too_large[0].limit == LIMIT
    if isinstance(error, TransportTimeoutError):
        assert_names_cause(error)
    # Socket buffers may take a few MiB of each answer before the client hangs up.
    per_answer = rule.bytes_sent / rule.hits
    assert per_answer < size / 4, f"the client read {per_answer:.0f} bytes of each {size}"


# -- 12. pending_count counts the overflow backlog -----------------------------------------


async def test_pending_count_includes_the_backlog(emulator: SalesforceEmulator) -> None:
    async with sf_client(emulator, max_pending_count=10) as client:
        await client.subscribe(BUSY)
        names = [f"e{index}" for index in range(50)]
        publish(emulator, BUSY, *names)
        await eventually(lambda: emulator.stats.events_delivered >= 50, 5, "the batch was not sent")
        for _ in range(150):  # the batch may still be on its way into the queue
            if client.pending_count >= 50:
                break
            await asyncio.sleep(0.02)
        assert client.pending_count == 50
        assert client.has_pending_messages
        assert await collect(client, 50) == busy(*names)
        assert client.pending_count == 0


# -- 13. error texts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cause", ["refused at open", "refused mid-stream", "cut mid-stream", "503 pages at open"]
)
async def test_transport_timeout_error_names_its_cause(
    emulator: SalesforceEmulator, proxy: CuttingProxy, cause: str
) -> None:
    client = sf_client(emulator, connection_timeout=2, backoff=FAST)
    try:
        if cause == "refused at open":
            await proxy.stop()
        elif cause == "503 pages at open":
            emulator.fail_next("handshake", http_status=503, times=1000)
        else:
            await client.open()
            await streaming(client, emulator, BUSY)
            if cause == "refused mid-stream":
                await proxy.stop()
            else:
                proxy.cut_everything = True
                proxy.cut()
        if client.closed:
            error, _ = await timed_failure(client.open(), 2 + MARGIN + 1)
        else:
            error, _ = await timed_failure(client.receive(), 2 + MARGIN + 1)
    finally:
        await client.close()
    assert isinstance(error, TransportTimeoutError), repr(error)
    fragments = {"refused at open": str(proxy.port), "refused mid-stream": str(proxy.port)}
    assert_names_cause(error, *([fragments[cause]] if cause in fragments else []))
    if cause == "503 pages at open":
        assert_names_cause(error, "503")


async def test_concurrent_user_limit_is_named(emulator: SalesforceEmulator) -> None:
    emulator.fail_next("handshake", CONCURRENT_LIMIT, times=1000)
    client = sf_client(emulator, connection_timeout=2, backoff=FAST)
    error, _ = await timed_failure(client.open(), 10)
    assert isinstance(error, AiosfstreamException), repr(error)
    assert "Organization concurrent user limit exceeded" in str(error)
    if isinstance(error, TransportTimeoutError):
        assert_names_cause(error)


# -- a full prefetch queue does not keep a request from its new session --------------------


async def test_request_after_expiry_does_not_wait_for_the_consumer(
    emulator: SalesforceEmulator,
) -> None:
    # The consumer is behind: the queue is full, so no poll is in flight. The session
    # expires; a subscribe learns of it. The new session must be made at once, not once
    # the consumer makes room (it may be the very task waiting for the subscribe).
    async with sf_client(
        emulator, max_pending_count=2, connection_timeout=10, backoff=FAST
    ) as client:
        await client.subscribe(BUSY)
        publish(emulator, BUSY, "a", "b", "c")
        for _ in range(100):
            if client.pending_count == 3:
                break
            await asyncio.sleep(0.02)
        assert client.pending_count == 3
        (old_session,) = emulator.expire_client(notify=False)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(client.subscribe(LATE), 10 + MARGIN)
        assert asyncio.get_running_loop().time() - started < 3
        assert client.subscriptions == {BUSY, LATE}
        (new_session,) = emulator.client_ids
        assert new_session != old_session
        publish(emulator, LATE, "late")
        got = [(await client.receive())["data"]["sobject"]["Name"] for _ in range(4)]
        assert got == ["a", "b", "c", "late"]


async def test_a_request_during_a_slow_reauthentication_waits_for_it(
    emulator: SalesforceEmulator,
) -> None:
    # The token is revoked: the poll learns it and the client asks for a new token,
    # which takes a while (the token endpoint fails twice first). A subscribe issued
    # meanwhile waits for the new session and succeeds there; the stream goes on.
    async with sf_client(emulator, connection_timeout=10, backoff=FAST) as client:
        await client.subscribe(BUSY)
        await asyncio.sleep(0.2)
        emulator.fail_next("token", http_status=503, times=2, headers={"Retry-After": "1"})
        emulator.revoke_tokens()
        await asyncio.sleep(0.1)  # the poll has seen the 401; the token request waits
        await asyncio.wait_for(client.subscribe(LATE), 10 + MARGIN)
        assert client.subscriptions == {BUSY, LATE}
        publish(emulator, BUSY, "after")
        publish(emulator, LATE, "late")
        got = {
            (await asyncio.wait_for(client.receive(), 5))["data"]["sobject"]["Name"]
            for _ in range(2)
        }
        assert got == {"after", "late"}
