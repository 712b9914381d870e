"""Publishing, and what subscribers get from what others publish: refused events, payloads
that are not Avro of their schema, schema changes."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aiosfstream import ReplayOption
from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream._pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from aiosfstream.pubsub import InvalidEventPayload, PublishError, PubSubServerError
from aiosfstream.pubsub.client import org_id_of
from tests.pubsub.conftest import ACCOUNT_TOPIC, ORDER_TOPIC, Org, authenticator, receive_numbers


async def test_a_refused_event_raises_with_every_result(org: Org) -> None:
    async with org.client() as client:
        with pytest.raises(PublishError) as caught:
            await client.publish(
                ORDER_TOPIC,
                [{"OrderNumber__c": "ok"}, {"OrderNumber__c": "bad", "CreatedById": ""}],
            )
    accepted, refused = caught.value.results
    assert accepted.replay_id == org.pubsub.events(ORDER_TOPIC)[0][0]
    assert accepted.error is None
    assert refused.replay_id is None
    assert refused.error is not None
    assert "CreatedById" in refused.error
    assert "1 of 2 events failed" in str(caught.value)
    assert len(org.pubsub.events(ORDER_TOPIC)) == 1


async def test_publishing_a_change_event_is_refused(org: Org) -> None:
    async with org.client() as client:
        with pytest.raises(PubSubServerError):
            await client.publish(ACCOUNT_TOPIC, {"Name": "Acme"})


async def test_a_payload_that_does_not_fit_is_a_value_error(org: Org) -> None:
    async with org.client() as client:
        with pytest.raises(ValueError, match="OrderNumber__c"):
            await client.publish(ORDER_TOPIC, {"OrderNumber__c": 42})


@pytest.mark.parametrize("payload", [[], "text", [{"a": 1}, 2]])
async def test_publish_needs_mappings(org: Org, payload: object) -> None:
    async with org.client() as client:
        with pytest.raises(TypeError, match="payload"):
            await client.publish(ORDER_TOPIC, payload)  # type: ignore[arg-type]


async def test_an_event_that_is_not_avro_of_its_schema_is_reported_and_skipped(org: Org) -> None:
    org.order(1)
    # Someone else's publisher sends bytes that are not Avro (Salesforce accepts them).
    login = authenticator(org.org)
    await login.authenticate()
    assert login.access_token is not None and login.instance_url is not None
    metadata = (
        ("accesstoken", login.access_token),
        ("instanceurl", login.instance_url),
        ("tenantid", org_id_of(login)),
    )
    async with grpc.aio.insecure_channel(org.pubsub.endpoint) as channel:
        stub = pb_grpc.PubSubStub(channel)
        event = pb.ProducerEvent(
            id="garbage", schema_id=org.pubsub.schema_id(ORDER_TOPIC), payload=b"\xff" * 3
        )
        await stub.Publish(
            pb.PublishRequest(topic_name=ORDER_TOPIC, events=[event]), metadata=metadata
        )
    org.order(3)
    async with org.client(replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(ORDER_TOPIC)
        assert await receive_numbers(client, 1) == ["1"]
        with pytest.raises(InvalidEventPayload) as caught:
            await asyncio.wait_for(client.receive(), 10)
        assert await receive_numbers(client, 1) == ["3"]
    assert caught.value.event_id == "garbage"
    assert caught.value.topic == ORDER_TOPIC
    assert caught.value.replay_id == org.pubsub.events(ORDER_TOPIC)[1][0]


async def test_events_of_a_new_schema_are_decoded_with_it(org: Org) -> None:
    async with org.client() as client:
        await client.subscribe(ORDER_TOPIC)
        org.order(1)
        first = await asyncio.wait_for(client.receive(), 10)
        new_schema = org.pubsub.add_field(ORDER_TOPIC, "Note__c", ["null", "string"])
        org.pubsub.publish(ORDER_TOPIC, {"OrderNumber__c": "2", "Note__c": "fragile"})
        second = await asyncio.wait_for(client.receive(), 10)
    assert "Note__c" not in first["payload"]
    assert second["schema_id"] == new_schema != first["schema_id"]
    assert second["payload"]["Note__c"] == "fragile"
