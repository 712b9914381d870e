"""Recovery: streams reset mid-batch, servers gone, tokens revoked; no gap, no duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aiosfstream import ReplayOption
from aiosfstream.exceptions import TransportTimeoutError
from aiosfstream.pubsub import PubSubServerError
from tests.pubsub.conftest import ORDER_TOPIC, Org, receive_numbers

PREFIX = "sfdc.platform.eventbus.grpc."


async def test_a_stream_killed_mid_batch_resumes_after_its_last_event(org: Org) -> None:
    for n in range(10):
        org.order(n)
    # The first stream delivers 4 events, then fails.
    org.pubsub.fail_next("Subscribe", "UNAVAILABLE", None, after_events=4)
    async with org.client(replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(ORDER_TOPIC)
        assert await receive_numbers(client, 10) == [str(n) for n in range(10)]
        org.order(10)
        assert await receive_numbers(client, 1) == ["10"]
        assert not client.has_pending_messages
    assert len(org.pubsub.stats()) == 2


async def test_streams_dropped_again_and_again_lose_and_repeat_nothing(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        received: list[str] = []
        for round_number in range(5):
            for n in range(5):
                org.order(f"{round_number}.{n}")
            received += await receive_numbers(client, 2)
            org.pubsub.drop_streams()
            received += await receive_numbers(client, 3)
        await asyncio.sleep(0.2)
        assert not client.has_pending_messages
    assert received == [f"{r}.{n}" for r in range(5) for n in range(5)]


async def test_service_unavailable_is_retried(org: Org) -> None:
    org.pubsub.fail_next("Subscribe", "INTERNAL", PREFIX + "service.unavailable", times=2)
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        assert await receive_numbers(client, 1) == ["1"]


async def test_a_server_that_stays_away_ends_in_a_timeout(org: Org) -> None:
    async with org.client(connection_timeout=1.0) as client:
        await client.subscribe(ORDER_TOPIC)
        await org.pubsub.stop()
        with pytest.raises(TransportTimeoutError, match="within 1 s"):
            await asyncio.wait_for(client.receive(), 10)


async def test_a_server_back_within_the_timeout_loses_nothing(org: Org) -> None:
    async with org.client(connection_timeout=10.0) as client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        assert await receive_numbers(client, 1) == ["1"]
        await org.pubsub.stop()
        org.order(2)
        org.order(3)
        await asyncio.sleep(0.5)
        await org.pubsub.start()
        assert await receive_numbers(client, 2) == ["2", "3"]


async def test_a_token_revoked_mid_stream_is_renewed(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        assert await receive_numbers(client, 1) == ["1"]
        first_token = client.authenticator.access_token
        org.org.revoke_tokens()
        org.order(2)
        org.order(3)
        assert await receive_numbers(client, 2) == ["2", "3"]
        assert client.authenticator.access_token != first_token
        # Publishing uses the fresh token too.
        await client.publish(ORDER_TOPIC, {"OrderNumber__c": "4"})
        assert await receive_numbers(client, 1) == ["4"]


async def test_a_token_refused_again_after_renewal_ends_the_client(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.pubsub.fail_next("Subscribe", "UNAUTHENTICATED", PREFIX + "service.auth.error", times=5)
        org.pubsub.drop_streams()
        with pytest.raises(PubSubServerError) as caught:
            await asyncio.wait_for(client.receive(), 10)
    assert caught.value.status == "UNAUTHENTICATED"
    assert caught.value.error == PREFIX + "service.auth.error"
    assert caught.value.rpc_id
    token = client.authenticator.access_token
    assert token
    assert token not in str(caught.value)


async def test_an_unknown_topic_is_refused_by_subscribe(org: Org) -> None:
    async with org.client() as client:
        with pytest.raises(PubSubServerError) as caught:
            await client.subscribe("/event/Nothing__e")
        assert client.subscriptions == set()
    assert caught.value.status in ("NOT_FOUND", "PERMISSION_DENIED")


async def test_a_fatal_refusal_mid_stream_ends_only_that_subscription(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.pubsub.fail_next(
            "Subscribe", "PERMISSION_DENIED", PREFIX + "subscription.topic.cannot.subscribe"
        )
        org.pubsub.drop_streams()
        with pytest.raises(PubSubServerError, match=r"cannot\.subscribe"):
            await asyncio.wait_for(client.receive(), 10)
        assert client.subscriptions == set()
        assert not client.closed


async def test_a_silent_stream_owed_events_is_replaced(org: Org) -> None:
    # The emulator keeps its keepalive for 270 s: to the client, the stream looks dead.
    async with org.client() as client:
        client.silence_timeout = 0.3
        await client.subscribe(ORDER_TOPIC)
        await asyncio.sleep(1.2)
        assert len(org.pubsub.stats()) >= 2
        assert sum(stream.open for stream in org.pubsub.stats()) <= 1
        org.order(1)
        assert await receive_numbers(client, 1) == ["1"]
        await asyncio.sleep(0.2)
        assert not client.has_pending_messages


async def test_a_quiet_stream_with_keepalives_is_kept(make_org: Callable[..., Any]) -> None:
    async with make_org(keepalive_interval=0.1) as quiet_org:
        async with quiet_org.client() as client:
            client.silence_timeout = 0.5
            await client.subscribe(ORDER_TOPIC)
            await asyncio.sleep(1.5)
        (stream,) = quiet_org.pubsub.stats()
        assert stream.keepalives_sent >= 5
