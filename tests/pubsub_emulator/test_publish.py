"""Publish and PublishStream: per-event results, correlation keys, validation, pipelining."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from grpc import aio

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing.pubsub import PubSubEmulator

from .support import (
    CDC_TOPIC,
    PE_TOPIC,
    PREFIX,
    READ_TIMEOUT,
    avro_decode,
    call_metadata,
    open_stub,
    position,
    producer_event,
    read_events,
    refused,
    schema_of,
    subscribe,
)


async def test_publish_answers_one_result_per_event_in_order(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    events = [
        producer_event(sf_pubsub_emulator, "order-1", OrderNumber__c="1"),
        producer_event(sf_pubsub_emulator, "", OrderNumber__c="2"),
    ]
    async with open_stub(sf_pubsub_emulator) as stub:
        response = await stub.Publish(
            pb.PublishRequest(topic_name=PE_TOPIC, events=events), metadata=metadata
        )
        call = await subscribe(stub, metadata, num_requested=5, preset=pb.EARLIEST)
        delivered = await read_events(call, 2)
        schema = await schema_of(stub, metadata, delivered[0].event.schema_id)
        call.cancel()
    first, second = response.results
    assert response.schema_id == sf_pubsub_emulator.schema_id(PE_TOPIC)
    assert len(response.rpc_id) == 36
    assert not first.HasField("error") and not second.HasField("error")
    assert position(first.replay_id) < position(second.replay_id)
    assert first.correlation_key == "order-1"
    # Without an id, a success gets a system UUID: the delivered event's id.
    assert uuid.UUID(second.correlation_key)
    assert [event.replay_id for event in delivered] == [first.replay_id, second.replay_id]
    assert [event.event.id for event in delivered] == ["order-1", second.correlation_key]
    assert avro_decode(schema, delivered[1].event.payload)["OrderNumber__c"] == "2"


async def test_a_bad_event_fails_alone(sf_pubsub_emulator: PubSubEmulator) -> None:
    good = producer_event(sf_pubsub_emulator, "good")
    no_date = producer_event(sf_pubsub_emulator, "no-date", CreatedDate=0)
    no_user = producer_event(sf_pubsub_emulator, "", CreatedById="")
    wrong_schema = pb.ProducerEvent(id="wrong", schema_id="B" * 22, payload=good.payload)
    long_id = producer_event(sf_pubsub_emulator, "x" * 37)
    huge = pb.ProducerEvent(
        id="huge", schema_id=good.schema_id, payload=b"\x00" * (1024 * 1024 + 1)
    )
    async with open_stub(sf_pubsub_emulator) as stub:
        response = await stub.Publish(
            pb.PublishRequest(
                topic_name=PE_TOPIC, events=[no_date, good, no_user, wrong_schema, long_id, huge]
            ),
            metadata=call_metadata(sf_pubsub_emulator.org),
        )
    results = list(response.results)
    assert [result.HasField("error") for result in results] == [True, False, True, True, True, True]
    assert {result.error.code for result in results if result.HasField("error")} == {pb.PUBLISH}
    assert "CreatedDate" in results[0].error.msg
    assert "CreatedById" in results[2].error.msg
    # A failure echoes the given id, or has an empty key.
    keys = [result.correlation_key for result in results]
    assert keys == ["no-date", "good", "", "wrong", "x" * 37, "huge"]
    assert [result.replay_id for result in results if result.HasField("error")] == [b""] * 5
    assert [item[1] for item in sf_pubsub_emulator.events(PE_TOPIC)] == ["good"]


async def test_a_payload_that_is_not_avro_is_accepted_and_delivered_as_sent(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    garbage = pb.ProducerEvent(schema_id=sf_pubsub_emulator.schema_id(PE_TOPIC), payload=b"\xff")
    async with open_stub(sf_pubsub_emulator) as stub:
        response = await stub.Publish(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[garbage]), metadata=metadata
        )
        call = await subscribe(stub, metadata, num_requested=1, preset=pb.EARLIEST)
        (event,) = await read_events(call, 1)
        call.cancel()
    assert not response.results[0].HasField("error")
    assert event.event.payload == b"\xff"
    assert sf_pubsub_emulator.events(PE_TOPIC)[0][2] is None


async def test_whole_request_refusals(sf_pubsub_emulator: PubSubEmulator) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    event = producer_event(sf_pubsub_emulator)
    async with open_stub(sf_pubsub_emulator) as stub:
        cdc = await refused(
            stub.Publish(pb.PublishRequest(topic_name=CDC_TOPIC, events=[event]), metadata=metadata)
        )
        none = await refused(
            stub.Publish(pb.PublishRequest(topic_name=PE_TOPIC), metadata=metadata)
        )
        empty = await refused(
            stub.Publish(pb.PublishRequest(topic_name="", events=[event]), metadata=metadata)
        )
        unknown = await refused(
            stub.Publish(
                pb.PublishRequest(topic_name="/event/X__e", events=[event]), metadata=metadata
            )
        )
    assert (cdc.status, cdc.error_code) == (
        grpc.StatusCode.PERMISSION_DENIED,
        PREFIX + "topic.meta.permission",
    )
    assert (none.status, none.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "publish.event.count.invalid",
    )
    assert (empty.status, empty.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "publish.topic.validation.empty",
    )
    assert (unknown.status, unknown.error_code) == (
        grpc.StatusCode.NOT_FOUND,
        PREFIX + "topic.not.found",
    )


async def test_publish_stream_answers_pipelined_requests_in_order(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = stub.PublishStream(metadata=call_metadata(sf_pubsub_emulator.org))
        await call.write(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[producer_event(sf_pubsub_emulator, "a")])
        )
        # Later requests may omit the topic, or repeat it.
        await call.write(pb.PublishRequest(events=[producer_event(sf_pubsub_emulator, "b")]))
        await call.write(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[producer_event(sf_pubsub_emulator, "c")])
        )
        responses = [await asyncio.wait_for(call.read(), READ_TIMEOUT) for _ in range(3)]
        await call.done_writing()
        end = await asyncio.wait_for(call.read(), READ_TIMEOUT)
        status = await call.code()
    keys = [
        result.correlation_key
        for response in responses
        if isinstance(response, pb.PublishResponse)
        for result in response.results
    ]
    assert keys == ["a", "b", "c"]
    assert (end, status) == (aio.EOF, grpc.StatusCode.OK)
    assert [item[1] for item in sf_pubsub_emulator.events(PE_TOPIC)] == ["a", "b", "c"]


async def test_publish_stream_refuses_a_topic_change(sf_pubsub_emulator: PubSubEmulator) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = stub.PublishStream(metadata=call_metadata(sf_pubsub_emulator.org))
        await call.write(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[producer_event(sf_pubsub_emulator)])
        )
        await asyncio.wait_for(call.read(), READ_TIMEOUT)
        await call.write(
            pb.PublishRequest(topic_name=CDC_TOPIC, events=[producer_event(sf_pubsub_emulator)])
        )
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "publish.topic.mismatch",
    )


@pytest.mark.sf_pubsub_emulator(publish_idle_timeout=0.3)
async def test_an_idle_publish_stream_is_swept(sf_pubsub_emulator: PubSubEmulator) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = stub.PublishStream(metadata=call_metadata(sf_pubsub_emulator.org))
        await call.write(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[producer_event(sf_pubsub_emulator)])
        )
        await asyncio.wait_for(call.read(), READ_TIMEOUT)
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.UNAVAILABLE,
        PREFIX + "publish.stream.sweeper.timeout",
    )


async def test_publish_stream_ends_when_its_token_dies(sf_pubsub_emulator: PubSubEmulator) -> None:
    org = sf_pubsub_emulator.org
    async with open_stub(sf_pubsub_emulator) as stub:
        call = stub.PublishStream(metadata=call_metadata(org))
        await call.write(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[producer_event(sf_pubsub_emulator)])
        )
        await asyncio.wait_for(call.read(), READ_TIMEOUT)
        org.revoke_tokens()
        await call.write(pb.PublishRequest(events=[producer_event(sf_pubsub_emulator)]))
        refusal = await refused(call.read())
    assert refusal.status == grpc.StatusCode.UNAUTHENTICATED
    assert len(sf_pubsub_emulator.events(PE_TOPIC)) == 1
