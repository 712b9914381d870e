"""The Pub/Sub client given a lease, against the Pub/Sub emulator and a real redis-server.

A standby's open() waits without asking for a token; a lost lease ends receive() with
LeaseLost and stores nothing more; close() gives the lease up so a standby opens at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from aiosfstream import ReplayMarker, ReplayOption
from aiosfstream.exceptions import LeaseLost
from aiosfstream.ha import RedisLease
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import PubSubEmulator
from tests.pubsub.conftest import ORDER_TOPIC, Org, receive_numbers
from tests.stores.conftest import RedisServer

if TYPE_CHECKING:
    import redis.asyncio

#: Long enough for a loaded machine to renew in time.
TTL = 2.0
#: Most seconds any step here may take.
WAIT = 10.0
NAME = "orders"


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    pytest.importorskip("redis", reason="redis-py is not installed")
    return redis_server.url


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    async with SalesforceEmulator() as salesforce, PubSubEmulator(salesforce) as pubsub:
        yield Org(salesforce, pubsub)


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of our own, to look at and take the lease's key."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def until_not_held(lease: RedisLease) -> None:
    deadline = time.monotonic() + WAIT
    while lease.held:
        assert time.monotonic() < deadline, "the lease is still held"
        await asyncio.sleep(0.02)


async def test_open_waits_for_the_lease_without_a_token_request(org: Org, redis_url: str) -> None:
    async with (
        RedisLease(redis_url, NAME, ttl=TTL) as first_lease,
        RedisLease(redis_url, NAME, ttl=TTL) as second_lease,
    ):
        first = org.client(lease=first_lease)
        await asyncio.wait_for(first.open(), WAIT)
        tokens = org.org.stats.token_requests
        second = org.client(lease=second_lease)
        opening = asyncio.ensure_future(second.open())
        try:
            await asyncio.sleep(TTL)  # several renewals by the first replica
            assert not opening.done()
            # The standby asked Salesforce for nothing.
            assert org.org.stats.token_requests == tokens
            await first.close()  # gives the lease up: the standby takes it at its next try
            started = time.monotonic()
            await asyncio.wait_for(opening, WAIT)
            assert time.monotonic() - started < TTL
            assert second_lease.held and not first_lease.held
            assert org.org.stats.token_requests == tokens + 1
            await second.subscribe(ORDER_TOPIC)
            await asyncio.sleep(0.2)  # the stream is open before the event is published
            org.order(1)
            assert await receive_numbers(second, 1, WAIT) == ["1"]
        finally:
            opening.cancel()
            await second.close()


async def test_a_lost_lease_ends_receive_and_stores_nothing_more(
    org: Org, redis_url: str, raw: redis.asyncio.Redis
) -> None:
    replay: dict[str, ReplayMarker] = {}
    # Stored before subscribing, so the stream replays from it.
    ids = [org.order(n) for n in range(3)]
    replay[ORDER_TOPIC] = ReplayMarker("", ids[0])
    async with RedisLease(redis_url, NAME, ttl=TTL) as lease:
        client = org.client(lease=lease, replay=replay, replay_fallback=ReplayOption.ALL_EVENTS)
        try:
            await asyncio.wait_for(client.open(), WAIT)
            await client.subscribe(ORDER_TOPIC)
            assert await receive_numbers(client, 1, WAIT) == ["1"]
            stored = dict(replay)
            # Another replica holds the key now (as after an expiry): the next renewal
            # finds it, and the stream ends.
            await raw.set(lease.key, "another-replica:999", px=60_000)
            await until_not_held(lease)
            with pytest.raises(LeaseLost, match="another"):
                await asyncio.wait_for(client.receive(), WAIT)
            with pytest.raises(LeaseLost):
                await client.receive()
            org.order(3)
        finally:
            await client.close()
        assert replay == stored
        # close() left the other replica's lease alone.
        assert await raw.get(lease.key) == "another-replica:999"


async def test_a_pause_past_the_ttl_hands_out_no_event(org: Org, redis_url: str) -> None:
    # A pause of the whole process (GC, SIGSTOP): when the consumer runs again it may
    # call receive() before the lease's own task ran; it must not get an event.
    replay: dict[str, ReplayMarker] = {}
    async with RedisLease(redis_url, NAME, ttl=TTL) as lease:
        client = org.client(lease=lease, replay=replay)
        try:
            await asyncio.wait_for(client.open(), WAIT)
            await client.subscribe(ORDER_TOPIC)
            await asyncio.sleep(0.2)
            org.order(1)
            org.order(2)
            assert await receive_numbers(client, 1, WAIT) == ["1"]
            deadline = time.monotonic() + WAIT
            while client.pending_count < 1:  # event 2 waits in the client
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            stored = dict(replay)
            time.sleep(TTL + 0.5)  # noqa: ASYNC251 - the pause: nothing of the lease runs
            with pytest.raises(LeaseLost):
                await client.receive()
        finally:
            await client.close()
        assert replay == stored
