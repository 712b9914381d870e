"""The client against the emulator: subscribe, receive, publish, message shape."""

from __future__ import annotations

import asyncio

from aiosfstream import ReplayOption
from tests.pubsub.conftest import ACCOUNT_TOPIC, ORDER_TOPIC, Org, receive_numbers


async def test_new_events_are_received_in_order(org: Org) -> None:
    org.order("old")
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        assert client.subscriptions == {ORDER_TOPIC}
        ids = [org.order(n) for n in range(3)]
        messages = [await asyncio.wait_for(client.receive(), 10) for _ in range(3)]
    assert [m["payload"]["OrderNumber__c"] for m in messages] == ["0", "1", "2"]
    assert [m["replay_id"] for m in messages] == ids
    assert client.closed


async def test_the_message_shape(org: Org) -> None:
    replay_id = org.order(7)
    (_, event_id, _), *_ = org.pubsub.events(ORDER_TOPIC)
    async with org.client(replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(ORDER_TOPIC)
        message = await asyncio.wait_for(client.receive(), 10)
    assert set(message) == {"topic", "replay_id", "event_id", "schema_id", "payload"}
    assert message["topic"] == ORDER_TOPIC
    assert message["replay_id"] == replay_id
    assert message["event_id"] == event_id
    assert message["schema_id"] == org.pubsub.schema_id(ORDER_TOPIC)
    assert message["payload"]["OrderNumber__c"] == "7"


async def test_all_events_replays_the_retained_ones(org: Org) -> None:
    for n in range(5):
        org.order(n)
    async with org.client(replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(ORDER_TOPIC)
        assert await receive_numbers(client, 5) == ["0", "1", "2", "3", "4"]


async def test_change_events_carry_field_names(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ACCOUNT_TOPIC)
        org.pubsub.publish(
            ACCOUNT_TOPIC,
            {
                "ChangeEventHeader": {
                    "changeType": "UPDATE",
                    "changedFields": ["Name", "Industry"],
                },
                "Name": "Acme",
                "Industry": "Energy",
            },
        )
        message = await asyncio.wait_for(client.receive(), 10)
    header = message["payload"]["ChangeEventHeader"]
    assert sorted(header["changedFields"]) == ["Industry", "Name"]
    assert message["payload"]["Name"] == "Acme"


async def test_publish_returns_per_event_results(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        results = await client.publish(
            ORDER_TOPIC, [{"OrderNumber__c": "a"}, {"OrderNumber__c": "b"}]
        )
        assert await receive_numbers(client, 2) == ["a", "b"]
    assert [r.replay_id for r in results] == [e[0] for e in org.pubsub.events(ORDER_TOPIC)]
    assert all(r.error is None for r in results)


async def test_async_for_stops_when_the_client_closes(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        seen = []
        async for message in client:
            seen.append(message["payload"]["OrderNumber__c"])
            await client.close()
    assert seen == ["1"]
