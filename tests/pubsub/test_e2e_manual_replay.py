"""The MANUAL policy over Pub/Sub with the storage calls the CometD client's users make:
``async with client.replay_storage(message)`` and ``extract_replay_id``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import (
    Client,
    DefaultMappingStorage,
    ReplayMarker,
    ReplayMarkerStoragePolicy,
    ReplayOption,
    SQLiteReplayStorage,
)
from aiosfstream.pubsub import PubSubClient
from aiosfstream.typing import Message
from tests.pubsub.conftest import ACCOUNT_TOPIC, ORDER_TOPIC, Org, authenticator

MANUAL = ReplayMarkerStoragePolicy.MANUAL


class ProcessingFailed(Exception):
    """The user's processing of one event failed."""


async def process_until_failure(client: PubSubClient, fail_on: str) -> list[str]:
    """Process orders as a MANUAL user does, storing each marker once it is processed,
    until the order *fail_on*, whose processing fails; return the orders processed."""
    processed: list[str] = []
    while True:
        message = await asyncio.wait_for(client.receive(), 10)
        number = message["payload"]["OrderNumber__c"]
        try:
            async with client.replay_storage(message):
                if number == fail_on:
                    raise ProcessingFailed(number)
                processed.append(number)
        except ProcessingFailed:
            return processed


async def test_restarts_with_sqlite_resume_after_the_last_processed_event(
    org: Org, tmp_path: Path
) -> None:
    path = tmp_path / "markers.db"
    ids = {str(n): org.order(n) for n in range(6)}
    storage = SQLiteReplayStorage(path, default_id=ReplayOption.ALL_EVENTS)
    try:
        async with org.client(replay=storage, replay_storage_policy=MANUAL) as client:
            await client.subscribe(ORDER_TOPIC)
            assert await process_until_failure(client, fail_on="3") == ["0", "1", "2"]
            marker = await storage.get_replay_marker(ORDER_TOPIC)
            # The failed event stored nothing, and the client stored nothing by itself.
            assert marker is not None
            assert marker.replay_id == ids["2"]
    finally:
        await storage.close()
    storage = SQLiteReplayStorage(path, default_id=ReplayOption.ALL_EVENTS)
    try:
        async with org.client(replay=storage, replay_storage_policy=MANUAL) as client:
            await client.subscribe(ORDER_TOPIC)
            assert await process_until_failure(client, fail_on="5") == ["3", "4"]
        marker = await storage.get_replay_marker(ORDER_TOPIC)
        assert marker is not None
        assert marker.replay_id == ids["4"]
    finally:
        await storage.close()


async def test_the_stored_marker_is_the_messages_id_and_payload_date(org: Org) -> None:
    mapping: dict[str, Any] = {}
    storage = DefaultMappingStorage(mapping, ReplayOption.ALL_EVENTS)
    org.order(1)
    org.pubsub.publish(ACCOUNT_TOPIC, {"Name": "Acme"})
    received: dict[str, Message] = {}
    async with org.client(replay=storage, replay_storage_policy=MANUAL) as client:
        await client.subscribe(ORDER_TOPIC)
        await client.subscribe(ACCOUNT_TOPIC)
        while len(received) < 2:
            message = await asyncio.wait_for(client.receive(), 10)
            await client.replay_storage.extract_replay_id(message)
            received[message["topic"]] = message
    order, change = received[ORDER_TOPIC], received[ACCOUNT_TOPIC]
    assert mapping == {
        ORDER_TOPIC: ReplayMarker(str(order["payload"]["CreatedDate"]), order["replay_id"]),
        ACCOUNT_TOPIC: ReplayMarker(
            str(change["payload"]["ChangeEventHeader"]["commitTimestamp"]), change["replay_id"]
        ),
    }


async def test_a_marker_stored_by_hand_is_where_the_next_client_starts(org: Org) -> None:
    mapping: dict[str, Any] = {}
    storage = DefaultMappingStorage(mapping, ReplayOption.ALL_EVENTS)
    for n in range(4):
        org.order(n)
    async with org.client(replay=storage, replay_storage_policy=MANUAL) as client:
        await client.subscribe(ORDER_TOPIC)
        messages = [await asyncio.wait_for(client.receive(), 10) for _ in range(4)]
        # Processed out of order: the storage keeps the last one stored (arrival order).
        await client.replay_storage.extract_replay_id(messages[2])
        await client.replay_storage.extract_replay_id(messages[0])
    assert mapping[ORDER_TOPIC].replay_id == messages[0]["replay_id"]
    async with org.client(replay=storage, replay_storage_policy=MANUAL) as client:
        await client.subscribe(ORDER_TOPIC)
        first = await asyncio.wait_for(client.receive(), 10)
    assert first["payload"]["OrderNumber__c"] == "1"  # again, never skipped


async def test_a_message_of_neither_client_is_refused_by_the_clients_storage(org: Org) -> None:
    async with org.client(replay={}, replay_storage_policy=MANUAL) as client:
        with pytest.raises(TypeError, match="message must be a dict, got list"):
            async with client.replay_storage([ORDER_TOPIC]):  # type: ignore[arg-type]
                pass


async def test_one_sqlite_storage_serves_a_cometd_and_a_pubsub_client(
    org: Org, tmp_path: Path
) -> None:
    # The same user code stores both clients' markers: only the client class differs.
    channel = "/event/Low_Ink__e"
    org.org.publish(channel, {"Printer_Model__c": "XZO-5"})
    pubsub_id = org.order(1)

    async def process_one(client: Client | PubSubClient, subscription: str) -> Message:
        async with client:
            await client.subscribe(subscription)
            message = await asyncio.wait_for(client.receive(), 10)
            async with client.replay_storage(message):
                pass
        return message

    storage = SQLiteReplayStorage(tmp_path / "markers.db", default_id=ReplayOption.ALL_EVENTS)
    try:
        cometd = Client(authenticator(org.org), replay=storage, replay_storage_policy=MANUAL)
        event = await process_one(cometd, channel)
        pubsub = org.client(replay=storage, replay_storage_policy=MANUAL)
        await process_one(pubsub, ORDER_TOPIC)
        cometd_marker = await storage.get_replay_marker(channel)
        pubsub_marker = await storage.get_replay_marker(ORDER_TOPIC)
    finally:
        await storage.close()
    assert cometd_marker is not None
    assert cometd_marker.replay_id == event["data"]["event"]["replayId"]
    assert pubsub_marker is not None
    assert pubsub_marker.replay_id == pubsub_id
