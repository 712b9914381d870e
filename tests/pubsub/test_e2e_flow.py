"""Flow control measured at the server: a slow consumer is never more than
max_pending_count events behind, and no request asks for more than 100."""

from __future__ import annotations

import asyncio

from aiosfstream import ReplayOption
from tests.pubsub.conftest import ACCOUNT_TOPIC, ORDER_TOPIC, Org


def delivered(org: Org) -> int:
    return sum(stream.delivered_total for stream in org.pubsub.stats())


async def test_a_slow_consumer_is_never_more_than_max_pending_count_behind(org: Org) -> None:
    for n in range(60):
        org.order(n)
    async with org.client(replay=ReplayOption.ALL_EVENTS, max_pending_count=7) as client:
        await client.subscribe(ORDER_TOPIC)
        numbers = []
        for _ in range(60):
            message = await asyncio.wait_for(client.receive(), 10)
            numbers.append(int(message["payload"]["OrderNumber__c"]))
            await asyncio.sleep(0.005)  # a consumer slower than the stream
            # Measured at the server: what it sent minus what the consumer took.
            assert delivered(org) - len(numbers) <= 7
            assert client.pending_count <= 7
    assert numbers == list(range(60))
    assert all(stream.max_outstanding <= 7 for stream in org.pubsub.stats())


async def test_a_consumer_that_stops_stops_the_stream(org: Org) -> None:
    for n in range(30):
        org.order(n)
    async with org.client(replay=ReplayOption.ALL_EVENTS, max_pending_count=10) as client:
        await client.subscribe(ORDER_TOPIC)
        await asyncio.wait_for(client.receive(), 10)
        await asyncio.sleep(0.5)  # the consumer takes a break
        assert delivered(org) <= 11
        assert client.pending_count == delivered(org) - 1


async def test_no_request_asks_for_more_than_the_servers_maximum(org: Org) -> None:
    for n in range(250):
        org.order(n)
    async with org.client(replay=ReplayOption.ALL_EVENTS, max_pending_count=1000) as client:
        await client.subscribe(ORDER_TOPIC)
        numbers = [int((await client.receive())["payload"]["OrderNumber__c"]) for _ in range(250)]
    assert numbers == list(range(250))
    (stream,) = org.pubsub.stats()
    assert stream.max_outstanding <= 100


async def test_two_topics_share_the_limit(org: Org) -> None:
    for n in range(20):
        org.order(n)
        org.pubsub.publish(ACCOUNT_TOPIC, {"Name": f"A{n}"})
    async with org.client(replay=ReplayOption.ALL_EVENTS, max_pending_count=10) as client:
        await client.subscribe(ORDER_TOPIC)
        await client.subscribe(ACCOUNT_TOPIC)
        await asyncio.sleep(0.3)
        # The second topic asks for one event even though the first holds the room.
        assert delivered(org) <= 10 + 1
        assert all(stream.max_outstanding >= 1 for stream in org.pubsub.stats())
        topics = [(await client.receive())["topic"] for _ in range(40)]
    assert topics.count(ORDER_TOPIC) == topics.count(ACCOUNT_TOPIC) == 20


async def test_a_quiet_first_topic_does_not_starve_a_second_one(org: Org) -> None:
    # The default limit of 100 is the server's maximum for one stream: the first topic
    # asks for all of it, and the second must still be asked for events.
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)  # stays quiet
        await client.subscribe(ACCOUNT_TOPIC)
        for n in range(20):
            org.pubsub.publish(ACCOUNT_TOPIC, {"Name": f"A{n}"})
        names = [
            (await asyncio.wait_for(client.receive(), 5))["payload"]["Name"] for _ in range(20)
        ]
    assert names == [f"A{n}" for n in range(20)]
