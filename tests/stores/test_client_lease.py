"""A client given a lease: it waits for it, stops the moment it is lost, stores nothing after.

A real redis-server holds the lease; the emulator serves the stream over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import pytest

from aiosfstream import LeaseLost, ReplayMarker
from aiosfstream.exceptions import ClientInvalidOperation
from aiosfstream.ha import RedisLease
from aiosfstream.testing import SalesforceEmulator
from tests.e2e.conftest import CHANNEL, make_client, name_of, publish

if TYPE_CHECKING:
    import redis.asyncio

#: Long enough for a loaded machine to renew in time.
TTL = 2.0
#: Most seconds any step here may take.
WAIT = 10.0


@pytest.fixture
async def channel_emulator(emulator: SalesforceEmulator) -> SalesforceEmulator:
    emulator.create_channel(CHANNEL)
    return emulator


async def steal(raw: redis.asyncio.Redis, lease: RedisLease) -> None:
    """Another replica takes the lease (as after its expiry)."""
    await raw.set(lease.key, "another-replica:999", px=60_000)


async def test_open_waits_for_the_lease_without_logging_in(
    channel_emulator: SalesforceEmulator, redis_url: str
) -> None:
    async with (
        RedisLease(redis_url, "orders", ttl=TTL) as first_lease,
        RedisLease(redis_url, "orders", ttl=TTL) as second_lease,
    ):
        first = make_client(channel_emulator, lease=first_lease)
        await asyncio.wait_for(first.open(), WAIT)
        tokens = channel_emulator.stats.token_requests
        handshakes = channel_emulator.stats.handshakes
        second = make_client(channel_emulator, lease=second_lease)
        opening = asyncio.ensure_future(second.open())
        await asyncio.sleep(3 * TTL / 3)  # several renewals of the first replica
        assert not opening.done()
        # The standby has not logged in or made a session.
        assert channel_emulator.stats.token_requests == tokens
        assert channel_emulator.stats.handshakes == handshakes
        await first.close()  # gives the lease up: the standby takes over at once
        started = time.monotonic()
        await asyncio.wait_for(opening, WAIT)
        assert time.monotonic() - started < TTL
        assert second_lease.held and not first_lease.held
        await second.subscribe(CHANNEL)
        publish(channel_emulator, "a")
        assert name_of(await asyncio.wait_for(second.receive(), WAIT)) == "a"
        await second.close()


async def test_a_lost_lease_ends_the_stream_at_once_and_stores_nothing_more(
    channel_emulator: SalesforceEmulator, redis_url: str, raw: redis.asyncio.Redis
) -> None:
    replay: dict[str, ReplayMarker] = {}
    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        client = make_client(channel_emulator, lease=lease, replay=replay, max_pending_count=0)
        await asyncio.wait_for(client.open(), WAIT)
        await client.subscribe(CHANNEL)
        publish(channel_emulator, "a", "b", "c")
        assert name_of(await asyncio.wait_for(client.receive(), WAIT)) == "a"
        for _ in range(200):
            if client.pending_count == 2:
                break
            await asyncio.sleep(0.02)
        assert client.pending_count == 2  # b and c wait
        stored = dict(replay)
        await steal(raw, lease)
        # The next renewal finds another holder: the stream ends, the waiting events
        # are dropped rather than handed over, and no marker is stored any more.
        for _ in range(int(WAIT / 0.02)):
            if not lease.held:
                break
            await asyncio.sleep(0.02)
        assert not lease.held
        with pytest.raises(LeaseLost, match="another"):
            await asyncio.wait_for(client.receive(), WAIT)
        with pytest.raises(LeaseLost):
            await client.receive()
        publish(channel_emulator, "d")
        await client.close()
        assert replay == stored
        assert not lease.held
        # The session was ended: the emulator knows no client any more.
        assert channel_emulator.client_ids == []
        # close() did not take the other replica's lease away.
        assert await raw.get(lease.key) == "another-replica:999"


async def test_a_pause_longer_than_the_ttl_hands_nothing_over(
    channel_emulator: SalesforceEmulator, redis_url: str
) -> None:
    # A whole-process pause (GC, SIGSTOP, a frozen VM): when the consumer runs again,
    # it may do so before the lease's own task notices; it must not get an event.
    replay: dict[str, ReplayMarker] = {}
    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        client = make_client(channel_emulator, lease=lease, replay=replay, max_pending_count=0)
        await asyncio.wait_for(client.open(), WAIT)
        await client.subscribe(CHANNEL)
        publish(channel_emulator, "a", "b")
        assert name_of(await asyncio.wait_for(client.receive(), WAIT)) == "a"
        for _ in range(200):
            if client.pending_count == 1:
                break
            await asyncio.sleep(0.02)
        stored = dict(replay)
        time.sleep(TTL + 0.5)  # noqa: ASYNC251 - the pause: nothing of the lease runs
        with pytest.raises(LeaseLost):
            await client.receive()
        await client.close()
        assert replay == stored


async def test_the_fenced_store_refuses_a_former_holder(
    channel_emulator: SalesforceEmulator, redis_url: str, raw: redis.asyncio.Redis
) -> None:
    from aiosfstream.stores import RedisReplayStorage

    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        storage = RedisReplayStorage(redis_url, lease=lease)
        client = make_client(channel_emulator, lease=lease, replay=storage)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(storage.close)
            stack.push_async_callback(client.close)
            await asyncio.wait_for(client.open(), WAIT)
            await client.subscribe(CHANNEL)
            (first,) = publish(channel_emulator, "a")
            await asyncio.wait_for(client.receive(), WAIT)
            # Asking for more stores the marker of "a", through the fenced store.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.receive(), 0.3)
            marker = await storage.get_replay_marker(CHANNEL)
            assert marker is not None and marker.replay_id == first
            await steal(raw, lease)
            with pytest.raises(LeaseLost):
                await storage.store_marker(CHANNEL, ReplayMarker("", first + 100))
            assert await storage.get_replay_marker(CHANNEL) == marker


async def test_a_client_closed_while_it_waits_gives_the_lease_up_once_it_comes(
    channel_emulator: SalesforceEmulator, redis_url: str
) -> None:
    async with (
        RedisLease(redis_url, "orders", ttl=TTL) as first_lease,
        RedisLease(redis_url, "orders", ttl=TTL) as second_lease,
        RedisLease(redis_url, "orders", ttl=TTL) as third_lease,
    ):
        first = make_client(channel_emulator, lease=first_lease)
        await asyncio.wait_for(first.open(), WAIT)
        second = make_client(channel_emulator, lease=second_lease)
        opening = asyncio.ensure_future(second.open())
        await asyncio.sleep(0.2)
        await second.close()  # given up while standing by
        await first.close()
        with pytest.raises(ClientInvalidOperation):
            await asyncio.wait_for(opening, WAIT)
        # The lease it got meanwhile went back at once: a third replica takes it.
        await asyncio.wait_for(third_lease.acquire(), TTL)
        assert not second_lease.held


async def test_a_write_refused_by_the_fenced_store_ends_the_stream(
    channel_emulator: SalesforceEmulator, redis_url: str, raw: redis.asyncio.Redis
) -> None:
    from aiosfstream.stores import RedisReplayStorage

    # A long ttl: the lease's own renewal does not notice the theft during the test,
    # only the store does.
    async with RedisLease(redis_url, "orders", ttl=60.0) as lease:
        storage = RedisReplayStorage(redis_url, lease=lease)
        client = make_client(channel_emulator, lease=lease, replay=storage, max_pending_count=0)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(storage.close)
            stack.push_async_callback(client.close)
            await asyncio.wait_for(client.open(), WAIT)
            await client.subscribe(CHANNEL)
            publish(channel_emulator, "a")
            await asyncio.wait_for(client.receive(), WAIT)
            await steal(raw, lease)
            publish(channel_emulator, "b", "c")
            for _ in range(200):
                if client.pending_count == 2:
                    break
                await asyncio.sleep(0.02)
            assert name_of(await asyncio.wait_for(client.receive(), WAIT)) == "b"
            assert lease.held  # by its own clock
            # b is taken while c waits: nothing is due. Then c; asking for more stores,
            # which the fence refuses.
            assert name_of(await asyncio.wait_for(client.receive(), WAIT)) == "c"
            with pytest.raises(LeaseLost):
                await asyncio.wait_for(client.receive(), WAIT)
            # The stream ended there: events published since are not handed over.
            publish(channel_emulator, "d", "e")
            await asyncio.sleep(0.5)
            with pytest.raises(LeaseLost):
                await asyncio.wait_for(client.receive(), WAIT)
