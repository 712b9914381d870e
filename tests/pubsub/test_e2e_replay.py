"""Replay against the emulator: stored positions, refused ids and the fallback, keepalives
that move a quiet topic's position, and restarts with SQLite storage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import (
    DefaultMappingStorage,
    ReplayMarker,
    ReplayMarkerStoragePolicy,
    ReplayOption,
    SQLiteReplayStorage,
)
from aiosfstream.pubsub import PubSubServerError
from tests.pubsub.conftest import ACCOUNT_TOPIC, ORDER_TOPIC, Org, receive_numbers

CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"


async def age_out(org: Org) -> None:
    """Move the org's clock past the 72-hour retention."""
    org.org.advance(73 * 3600)
    org.pubsub.purge_retention()


async def test_a_stored_marker_replays_what_came_after_it(org: Org) -> None:
    ids = [org.order(n) for n in range(5)]
    storage = {ORDER_TOPIC: ReplayMarker("2026-01-01T00:00:00.000Z", ids[1])}
    async with org.client(replay=storage) as client:
        await client.subscribe(ORDER_TOPIC)
        assert await receive_numbers(client, 3) == ["2", "3", "4"]
    assert storage[ORDER_TOPIC].replay_id == ids[4]


async def test_an_aged_out_id_without_fallback_raises_with_salesforces_code(org: Org) -> None:
    replay_id = org.order(1)
    org.order(2)  # purged too: replaying after the first would lose it
    await age_out(org)
    storage = {ORDER_TOPIC: ReplayMarker("2026-01-01T00:00:00.000Z", replay_id)}
    async with org.client(replay=storage) as client:
        with pytest.raises(PubSubServerError) as caught:
            await client.subscribe(ORDER_TOPIC)
        assert client.subscriptions == set()
    assert caught.value.error == CORRUPTED
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "rpcId" in (caught.value.error_message or "")


async def test_an_aged_out_id_with_fallback_subscribes_with_the_fallback(org: Org) -> None:
    replay_id = org.order("old")
    org.order("older than 72 hours")
    await age_out(org)
    org.order("retained")
    storage = {ORDER_TOPIC: ReplayMarker("2026-01-01T00:00:00.000Z", replay_id)}
    client = org.client(replay=storage, replay_fallback=ReplayOption.ALL_EVENTS)
    async with client:
        await client.subscribe(ORDER_TOPIC)
        assert await receive_numbers(client, 1) == ["retained"]
        org.order("new")
        assert await receive_numbers(client, 1) == ["new"]


async def test_a_garbage_id_falls_back_to_new_events(org: Org) -> None:
    org.order("before")
    # A decimal string in the bytes field, as people have tried.
    storage = {ORDER_TOPIC: ReplayMarker("", b"12907414")}
    client = org.client(replay=storage, replay_fallback=ReplayOption.NEW_EVENTS)
    async with client:
        await client.subscribe(ORDER_TOPIC)
        org.order("after")
        assert await receive_numbers(client, 1) == ["after"]


async def test_keepalives_move_a_quiet_topics_stored_position(
    make_org: Callable[..., Any],
) -> None:
    async with make_org(keepalive_interval=0.2) as org:
        storage: dict[str, Any] = {}
        async with org.client(replay=storage) as client:
            await client.subscribe(ORDER_TOPIC)
            # Other events move the bus while this topic stays quiet.
            tip = [org.pubsub.publish(ACCOUNT_TOPIC, {"Name": f"A{n}"}) for n in range(3)][-1]
            for _ in range(50):
                await asyncio.sleep(0.1)
                if ORDER_TOPIC in storage and storage[ORDER_TOPIC].replay_id == tip:
                    break
            assert storage[ORDER_TOPIC].replay_id == tip
            assert any(stream.keepalives_sent for stream in org.pubsub.stats())
        # A restart from that position gets the new events, and is not refused.
        org.order("new")
        async with org.client(replay=storage) as client:
            await client.subscribe(ORDER_TOPIC)
            assert await receive_numbers(client, 1) == ["new"]


async def test_a_keepalive_does_not_move_the_position_past_events_still_queued(
    make_org: Callable[..., Any],
) -> None:
    async with make_org(keepalive_interval=0.1) as org:
        ids = [org.order(n) for n in range(3)]
        storage: dict[str, Any] = {}
        replay = DefaultMappingStorage(storage, ReplayOption.ALL_EVENTS)
        async with org.client(replay=replay) as client:
            await client.subscribe(ORDER_TOPIC)
            await asyncio.sleep(0.5)  # keepalives arrive while 3 events wait
            assert ORDER_TOPIC not in storage
            await receive_numbers(client, 3)
            assert ORDER_TOPIC not in storage  # the third is being processed
            # Asking for more says it is done with: its marker is stored before the wait.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.receive(), 0.3)
            assert storage[ORDER_TOPIC].replay_id == ids[2]


async def test_manual_policy_keepalives_wait_for_the_users_store(
    make_org: Callable[..., Any],
) -> None:
    async with make_org(keepalive_interval=0.1) as org:
        storage: dict[str, Any] = {}
        manual = ReplayMarkerStoragePolicy.MANUAL
        async with org.client(replay=storage, replay_storage_policy=manual) as client:
            await client.subscribe(ORDER_TOPIC)
            replay_id = org.order(1)
            message = await asyncio.wait_for(client.receive(), 10)
            assert message["replay_id"] == replay_id
            tip = org.pubsub.publish(ACCOUNT_TOPIC, {"Name": "elsewhere"})
            await asyncio.sleep(0.4)  # keepalives come; the event is not processed yet
            assert storage.get(ORDER_TOPIC, ReplayMarker("", b"-")).replay_id != tip
            await client.replay_storage.store_marker(
                ORDER_TOPIC, ReplayMarker("2026-01-01T00:00:00.000Z", replay_id)
            )
            for _ in range(40):
                await asyncio.sleep(0.05)
                if storage[ORDER_TOPIC].replay_id == tip:
                    break
            assert storage[ORDER_TOPIC].replay_id == tip  # a keepalive's, further on


async def test_restarts_with_sqlite_storage_lose_and_repeat_nothing(
    org: Org, tmp_path: Path
) -> None:
    path = tmp_path / "markers.db"
    received: list[str] = []
    published = 0
    for _restart in range(3):
        storage = SQLiteReplayStorage(path, default_id=ReplayOption.ALL_EVENTS)
        try:
            async with org.client(replay=storage) as client:
                await client.subscribe(ORDER_TOPIC)
                for _ in range(4):
                    org.order(published)
                    published += 1
                received += await receive_numbers(client, 3)  # one left unread
        finally:
            await storage.close()
    storage = SQLiteReplayStorage(path)
    try:
        marker = await storage.get_replay_marker(ORDER_TOPIC)
        assert marker is not None
        assert isinstance(marker.replay_id, bytes)
        async with org.client(replay=storage) as client:
            await client.subscribe(ORDER_TOPIC)
            received += await receive_numbers(client, 3)
    finally:
        await storage.close()
    assert received == [str(n) for n in range(12)]


async def test_a_position_refused_on_resubscription_falls_back_too(org: Org) -> None:
    client = org.client(replay_fallback=ReplayOption.NEW_EVENTS)
    async with client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        assert await receive_numbers(client, 1) == ["1"]
        org.pubsub.fail_next("Subscribe", "INVALID_ARGUMENT", CORRUPTED)
        org.pubsub.drop_streams()
        await asyncio.sleep(1.5)
        org.order(2)
        assert await receive_numbers(client, 1) == ["2"]
        assert client.subscriptions == {ORDER_TOPIC}


async def test_a_position_refused_on_resubscription_without_fallback_ends_it(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.pubsub.fail_next("Subscribe", "INVALID_ARGUMENT", CORRUPTED)
        org.pubsub.drop_streams()
        with pytest.raises(PubSubServerError) as caught:
            await asyncio.wait_for(client.receive(), 10)
        assert caught.value.error == CORRUPTED
        assert client.subscriptions == set()


async def test_a_topic_subscribed_again_counts_the_events_still_queued_from_before(
    make_org: Callable[..., Any],
) -> None:
    async with make_org(keepalive_interval=0.1) as org:
        storage: dict[str, Any] = {}
        async with org.client(replay=storage) as client:
            await client.subscribe(ORDER_TOPIC)
            for n in range(3):
                org.order(n)
            await asyncio.wait_for(client.receive(), 10)
            for _ in range(200):
                if client.pending_count == 2:
                    break
                await asyncio.sleep(0.02)
            assert client.pending_count == 2
            await client.unsubscribe(ORDER_TOPIC)
            await client.subscribe(ORDER_TOPIC)
            # The events queued before, and any the new subscription delivers again.
            for _ in range(10):
                try:
                    await asyncio.wait_for(client.receive(), 1.0)
                except asyncio.TimeoutError:
                    break
            tip = org.pubsub.publish(ACCOUNT_TOPIC, {"Name": "elsewhere"})
            # Nothing of the topic waits any more, so keepalives move its position on
            # (with a count gone negative they never would).
            for _ in range(40):
                await asyncio.sleep(0.05)
                if storage[ORDER_TOPIC].replay_id == tip:
                    break
            assert storage[ORDER_TOPIC].replay_id == tip
