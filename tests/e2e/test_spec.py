"""One test per paragraph of the advanced-usage contract, against the emulator.

Everything goes over real HTTP on 127.0.0.1: OAuth token endpoint, handshake,
long polling, replay extension.
"""

from __future__ import annotations

import asyncio
import shelve
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import (
    Client,
    DefaultMappingStorage,
    PasswordAuthenticator,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from aiosfstream.exceptions import AuthenticationError, ServerError, TransportTimeoutError
from aiosfstream.testing import SalesforceEmulator
from tests.e2e.conftest import CHANNEL, eventually, make_client, name_of, publish

INVALID_REPLAY = (
    "The replayId {{{}}} you provided was invalid.  Please provide a valid ID, -2 to replay "
    "all events, or -1 to replay only new events."
)


async def names(client: Client, count: int, timeout: float = 10.0) -> list[str]:
    """Receive *count* events and return their record names."""
    return [name_of(await asyncio.wait_for(client.receive(), timeout)) for _ in range(count)]


async def assert_nothing_more(client: Client, wait: float = 0.5) -> None:
    """Check that no further event arrives within *wait* seconds."""
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.receive(), wait)


# -- Replay configuration: ReplayOption ---------------------------------------------------


async def test_default_replay_receives_only_new_events(emulator: SalesforceEmulator) -> None:
    publish(emulator, "old")
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "new")
        assert await names(client, 1) == ["new"]
        await assert_nothing_more(client)


async def test_all_events_replays_the_retention_window_first(
    emulator: SalesforceEmulator,
) -> None:
    publish(emulator, "old1", "old2")
    async with make_client(emulator, replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 2) == ["old1", "old2"]
        publish(emulator, "new")
        assert await names(client, 1) == ["new"]


# -- ReplayMarkerStorage: mappings --------------------------------------------------------


async def test_dict_storage_continues_after_a_reconnect(emulator: SalesforceEmulator) -> None:
    replay: dict[str, Any] = {}
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "a", "b")
        assert await names(client, 2) == ["a", "b"]
        # The session is lost; events published meanwhile must still arrive, once.
        emulator.expire_client()
        publish(emulator, "c")
        assert await names(client, 1) == ["c"]
        await assert_nothing_more(client)
    assert isinstance(replay[CHANNEL], ReplayMarker)


async def test_dict_storage_continues_in_a_new_client(emulator: SalesforceEmulator) -> None:
    replay: dict[str, Any] = {}
    publish(emulator, "before")
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "a", "b")
        assert await names(client, 2) == ["a", "b"]
    publish(emulator, "while away 1", "while away 2")
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 2) == ["while away 1", "while away 2"]
        await assert_nothing_more(client)


async def run_consumer(
    emulator: SalesforceEmulator, shelf: Path, count: int, *extra: str
) -> list[str]:
    """Run :mod:`tests.e2e.consumer` in a new Python process; return what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.consumer",
        emulator.url,
        str(shelf),
        str(count),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().split()


async def publish_when_subscribed(emulator: SalesforceEmulator, *names: str) -> None:
    """Publish once a client subscribed to the channel (the consumer runs elsewhere)."""
    for _ in range(200):
        if any(CHANNEL in emulator.subscriptions(cid) for cid in emulator.client_ids):
            publish(emulator, *names)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no client subscribed in time")


async def test_shelve_storage_continues_in_a_new_process(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    shelf = tmp_path / "replay.db"
    publish(emulator, "before")
    first = asyncio.ensure_future(run_consumer(emulator, shelf, 2))
    await publish_when_subscribed(emulator, "a", "b")
    assert await first == ["a", "b"]
    publish(emulator, "c", "d")
    assert await run_consumer(emulator, shelf, 2) == ["c", "d"]
    with shelve.open(str(shelf)) as stored:
        assert (
            stored[CHANNEL].replay_id == emulator.events(CHANNEL)[-1]["data"]["event"]["replayId"]
        )


async def test_default_mapping_storage_replays_all_then_continues(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    shelf = tmp_path / "replay.db"
    publish(emulator, "old1", "old2")
    assert await run_consumer(emulator, shelf, 2, "default") == ["old1", "old2"]
    publish(emulator, "new")
    assert await run_consumer(emulator, shelf, 1, "default") == ["new"]


async def test_default_mapping_storage_in_process(emulator: SalesforceEmulator) -> None:
    replay: dict[str, Any] = {}
    publish(emulator, "old")
    storage = DefaultMappingStorage(replay, ReplayOption.ALL_EVENTS)
    async with make_client(emulator, replay=storage) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 1) == ["old"]
    publish(emulator, "new")
    async with make_client(emulator, replay=storage) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 1) == ["new"]
        await assert_nothing_more(client)


# -- ReplayMarkerStorage: a custom implementation -----------------------------------------


class ListStorage(ReplayMarkerStorage):
    """The spec's custom storage: implements only the two abstract methods."""

    def __init__(self) -> None:
        self.markers: dict[str, ReplayMarker] = {}
        self.calls: list[str] = []

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        self.calls.append(f"set {subscription} {replay_marker.replay_id!r}")
        self.markers[subscription] = replay_marker

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        self.calls.append(f"get {subscription}")
        return self.markers.get(subscription)


async def test_custom_replay_marker_storage(emulator: SalesforceEmulator) -> None:
    storage = ListStorage()
    async with make_client(emulator, replay=storage) as client:
        await client.subscribe(CHANNEL)
        (first,) = publish(emulator, "a")
        assert await names(client, 1) == ["a"]
    assert storage.markers[CHANNEL].replay_id == first
    publish(emulator, "b")
    async with make_client(emulator, replay=storage) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 1) == ["b"]
    assert storage.calls[0] == f"get {CHANNEL}"
    assert f"set {CHANNEL} {first}" in storage.calls


# -- Subscription errors -------------------------------------------------------------------


async def expired_marker(emulator: SalesforceEmulator) -> dict[str, Any]:
    """A mapping whose marker points at an event that left the retention window."""
    (old_id,) = publish(emulator, "expired")
    emulator.advance(25 * 3600)
    assert emulator.purge_retention() == 1
    return {CHANNEL: ReplayMarker(date="2026-01-01T00:00:00+00:00", replay_id=old_id)}


async def test_expired_replay_id_raises_server_error_with_salesforce_text(
    emulator: SalesforceEmulator,
) -> None:
    replay = await expired_marker(emulator)
    old_id = replay[CHANNEL].replay_id
    async with make_client(emulator, replay=replay) as client:
        with pytest.raises(ServerError) as caught:
            await client.subscribe(CHANNEL)
        assert caught.value.error_code == 400
        assert caught.value.error_message == INVALID_REPLAY.format(old_id)
        assert CHANNEL not in client.subscriptions


async def test_recovery_by_discarding_the_marker(emulator: SalesforceEmulator) -> None:
    replay = await expired_marker(emulator)
    async with make_client(emulator, replay=replay) as client:
        try:
            await client.subscribe(CHANNEL)
        except ServerError:
            del replay[CHANNEL]
            await client.subscribe(CHANNEL)
        assert CHANNEL in client.subscriptions
        publish(emulator, "fresh")
        assert await names(client, 1) == ["fresh"]


async def test_replay_fallback_resubscribes_with_the_option(
    emulator: SalesforceEmulator,
) -> None:
    replay = await expired_marker(emulator)
    publish(emulator, "retained")
    async with make_client(
        emulator, replay=replay, replay_fallback=ReplayOption.ALL_EVENTS
    ) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 1) == ["retained"]
        assert CHANNEL in client.subscriptions


# -- Network failures ----------------------------------------------------------------------


async def test_dropped_connections_are_transparent(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        received: list[str] = []
        for round_number in range(3):
            publish(emulator, f"r{round_number}")
            received += await names(client, 1)
            await emulator.drop_connections()
        publish(emulator, "last")
        received += await names(client, 1)
        assert received == ["r0", "r1", "r2", "last"]
        await assert_nothing_more(client)


async def test_server_restart_is_transparent(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before restart")
        assert await names(client, 1) == ["before restart"]
        await emulator.restart()
        publish(emulator, "after restart")
        assert await names(client, 1) == ["after restart"]
        assert client.subscriptions == {CHANNEL}
        await assert_nothing_more(client)


async def test_connection_timeout_raises_after_the_given_time(
    emulator: SalesforceEmulator,
) -> None:
    async with make_client(emulator, connection_timeout=2) as client:
        await client.subscribe(CHANNEL)
        await asyncio.sleep(0.2)
        await emulator.stop()
        lost_at = time.monotonic()
        with pytest.raises(TransportTimeoutError):
            await asyncio.wait_for(client.receive(), 30)
        elapsed = time.monotonic() - lost_at
        assert 2 * 0.8 <= elapsed <= 2 * 1.2, elapsed


async def test_no_connection_timeout_waits_through_an_outage(
    emulator: SalesforceEmulator,
) -> None:
    async with make_client(emulator, connection_timeout=None) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before outage")
        assert await names(client, 1) == ["before outage"]
        await emulator.stop()
        receiving = asyncio.ensure_future(client.receive())
        await asyncio.sleep(3)
        assert not receiving.done()
        await emulator.start()
        publish(emulator, "after outage")
        # The client may be in a backoff pause of a few seconds when the server returns.
        message = await asyncio.wait_for(receiving, 30)
        assert name_of(message) == "after outage"


# -- Prefetching ------------------------------------------------------------------------


async def test_max_pending_count_limits_prefetch(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator, max_pending_count=5) as client:
        await client.subscribe(CHANNEL)
        assert client.pending_count == 0
        first = [f"e{index}" for index in range(20)]
        publish(emulator, *first)
        for _ in range(100):
            if client.pending_count == 20:
                break
            await asyncio.sleep(0.02)
        # One batch is never cut: every received event counts, the surplus included.
        assert client.pending_count == 20
        assert client.has_pending_messages
        later = [f"l{index}" for index in range(10)]
        publish(emulator, *later)
        await asyncio.sleep(0.3)
        assert client.pending_count == 20  # no poll while more than the limit waits
        received = await names(client, 16)
        for _ in range(100):
            if client.pending_count == 14:
                break
            await asyncio.sleep(0.02)
        assert client.pending_count == 14  # room again: the next batch came
        received += await names(client, 14)
        assert received == first + later


async def test_a_full_queue_has_the_next_batch_asked_for_and_read_as_room_comes(
    emulator: SalesforceEmulator,
) -> None:
    # The next /meta/connect goes out while the queue is full; its answer is read
    # only once the consumer makes room, and then before the queue runs dry (the
    # consumer and the connection share one thread).
    async with make_client(emulator, max_pending_count=10) as client:
        await client.subscribe(CHANNEL)
        first = [f"e{index}" for index in range(20)]
        publish(emulator, *first)
        await eventually(lambda: client.pending_count == 20, 5, "20 events queued")
        later = [f"l{index}" for index in range(20)]
        publish(emulator, *later)
        # Sent only if a /meta/connect is waiting at the server: asked for while full.
        await eventually(lambda: emulator.stats.events_delivered == 40, 5, "the next batch sent")
        await asyncio.sleep(0.2)
        assert client.pending_count == 20  # ... but not read: no room yet
        received = [name_of(await client.receive()) for _ in range(11)]
        # The 11th made room: the next receive() lets the connection read on first.
        received.append(name_of(await client.receive()))
        assert client.pending_count == 28
        received += await names(client, 28)
        assert received == first + later
        await assert_nothing_more(client)


async def test_messages_are_prefetched_before_receive(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "x", "y")
        for _ in range(100):
            if client.pending_count == 2:
                break
            await asyncio.sleep(0.02)
        assert client.pending_count == 2


# -- Storage policies ------------------------------------------------------------------------


async def test_manual_policy_stores_only_what_the_user_confirms(
    emulator: SalesforceEmulator,
) -> None:
    replay: MutableMapping[str, Any] = {}
    async with make_client(
        emulator, replay=replay, replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL
    ) as client:
        await client.subscribe(CHANNEL)
        first, second = publish(emulator, "a", "b")
        message = await asyncio.wait_for(client.receive(), 10)
        assert CHANNEL not in replay
        async with client.replay_storage(message):
            pass
        assert replay[CHANNEL].replay_id == first
        message = await asyncio.wait_for(client.receive(), 10)
        with pytest.raises(RuntimeError):
            async with client.replay_storage(message):
                raise RuntimeError("processing failed")
        assert replay[CHANNEL].replay_id == first  # not stored: it will be replayed
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        assert await names(client, 1) == ["b"]
    assert replay[CHANNEL].replay_id == second


async def test_automatic_policy_stores_once_the_message_is_done_with(
    emulator: SalesforceEmulator,
) -> None:
    replay: dict[str, Any] = {}
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        (replay_id,) = publish(emulator, "a")
        await names(client, 1)
        assert CHANNEL not in replay  # being processed
    assert replay[CHANNEL].replay_id == replay_id  # close() stored it


# -- Authentication -----------------------------------------------------------------------


async def test_revoked_token_leads_to_reauthentication(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before revoke")
        assert await names(client, 1) == ["before revoke"]
        token_requests = emulator.stats.token_requests
        emulator.revoke_tokens()
        publish(emulator, "after revoke")
        assert await names(client, 1) == ["after revoke"]
        assert emulator.stats.token_requests == token_requests + 1


async def test_unknown_client_rehandshakes_without_new_login(
    emulator: SalesforceEmulator,
) -> None:
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        publish(emulator, "before expiry")
        assert await names(client, 1) == ["before expiry"]
        token_requests = emulator.stats.token_requests
        handshakes = emulator.stats.handshakes
        emulator.expire_client()
        publish(emulator, "after expiry")
        assert await names(client, 1) == ["after expiry"]
        assert emulator.stats.token_requests == token_requests
        assert emulator.stats.handshakes == handshakes + 1


async def test_bad_credentials_raise_authentication_error(emulator: SalesforceEmulator) -> None:
    credentials = emulator.credentials
    authenticator = PasswordAuthenticator(
        credentials.consumer_key,
        credentials.consumer_secret,
        credentials.username,
        "wrong password",
        login_url=emulator.url,
        allow_insecure_http=True,
    )
    client = Client(authenticator)
    with pytest.raises(AuthenticationError) as caught:
        await client.open()
    assert caught.value.error == "invalid_grant"
    assert caught.value.error_description == "authentication failure"
    assert "wrong password" not in str(caught.value)
    assert client.closed


async def test_reauthentication_failure_reaches_receive(emulator: SalesforceEmulator) -> None:
    async with make_client(emulator) as client:
        await client.subscribe(CHANNEL)
        emulator.password_flow_enabled = False
        emulator.revoke_tokens()
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(client.receive(), 10)
