"""Subscribe: replay presets, replay ids, request validation and what an event carries."""

from __future__ import annotations

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
    avro_decode,
    call_metadata,
    open_stub,
    position,
    read,
    read_events,
    refused,
    schema_of,
    subscribe,
    until_open_streams,
)


def publish_orders(pubsub: PubSubEmulator, *numbers: str) -> list[bytes]:
    return [pubsub.publish(PE_TOPIC, {"OrderNumber__c": number}) for number in numbers]


async def test_latest_delivers_only_events_published_after_the_subscription(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    publish_orders(sf_pubsub_emulator, "before")
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        (after,) = publish_orders(sf_pubsub_emulator, "after")
        (event,) = await read_events(call, 1)
        call.cancel()
    assert event.replay_id == after


async def test_earliest_delivers_every_retained_event_in_order(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    ids = publish_orders(sf_pubsub_emulator, "1", "2", "3")
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=10, preset=pb.EARLIEST
        )
        events = await read_events(call, 3)
        call.cancel()
    assert [event.replay_id for event in events] == ids


async def test_custom_starts_after_the_given_replay_id(sf_pubsub_emulator: PubSubEmulator) -> None:
    ids = publish_orders(sf_pubsub_emulator, "1", "2", "3")
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub,
            call_metadata(sf_pubsub_emulator.org),
            num_requested=10,
            preset=pb.CUSTOM,
            replay_id=ids[0],
        )
        events = await read_events(call, 2)
        call.cancel()
    assert [event.replay_id for event in events] == ids[1:]


async def test_replay_ids_are_increasing_eight_byte_counters_shared_by_topics(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    first = sf_pubsub_emulator.publish(PE_TOPIC, {})
    cdc = sf_pubsub_emulator.publish(CDC_TOPIC, {"Name": "Acme"})
    second = sf_pubsub_emulator.publish(PE_TOPIC, {})
    assert position(first) < position(cdc) < position(second)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=10, preset=pb.EARLIEST
        )
        events = await read_events(call, 2)
        call.cancel()
    # The other topic's event leaves a gap, as foreign events do on Salesforce's bus.
    assert [event.replay_id for event in events] == [first, second]


async def test_an_event_carries_its_id_schema_and_avro_payload(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    metadata = call_metadata(org)
    org.advance(10)
    replay_id = sf_pubsub_emulator.publish(
        PE_TOPIC, {"OrderNumber__c": "42", "Amount__c": 9.5, "Status__c": "Open"}
    )
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, metadata, num_requested=1, preset=pb.EARLIEST)
        response = await read(call)
        (event,) = response.events
        payload = avro_decode(
            await schema_of(stub, metadata, event.event.schema_id), event.event.payload
        )
        call.cancel()
    assert response.latest_replay_id == replay_id
    assert uuid.UUID(event.event.id)
    assert (replay_id, event.event.id, payload) == sf_pubsub_emulator.events(PE_TOPIC)[0]
    assert event.event.schema_id == sf_pubsub_emulator.schema_id(PE_TOPIC)
    assert payload["OrderNumber__c"] == "42"
    assert payload["Amount__c"] == 9.5
    # The platform fills CreatedDate (epoch milliseconds, the org's clock) and CreatedById.
    assert abs(payload["CreatedDate"] - org.now() * 1000) < 5000
    assert payload["CreatedById"] == org.state.users[org.credentials.username].user_id


async def test_custom_without_a_replay_id_fails_validation(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), preset=pb.CUSTOM)
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "subscription.fetch.replayid.validation.failed",
    )


@pytest.mark.parametrize(
    "replay_id",
    [b"\x01\x02\x03", (10**9).to_bytes(8, "big"), b"\x00" * 10],
    ids=["short", "beyond-the-tip", "long"],
)
async def test_an_invalid_replay_id_is_corrupted(
    sf_pubsub_emulator: PubSubEmulator, replay_id: bytes
) -> None:
    publish_orders(sf_pubsub_emulator, "1")
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), preset=pb.CUSTOM, replay_id=replay_id
        )
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "subscription.fetch.replayid.corrupted",
    )


@pytest.mark.parametrize("num_requested", [0, -5])
async def test_a_first_request_for_no_events_is_invalid(
    sf_pubsub_emulator: PubSubEmulator, num_requested: int
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=num_requested
        )
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "subscription.fetch.requested.events.invalid",
    )


async def test_a_later_request_for_no_events_is_invalid(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), num_requested=1)
        await call.write(pb.FetchRequest(num_requested=0))
        refusal = await refused(call.read())
    assert refusal.error_code == PREFIX + "subscription.fetch.requested.events.invalid"


async def test_the_first_request_must_name_a_known_topic(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    async with open_stub(sf_pubsub_emulator) as stub:
        unknown = await refused((await subscribe(stub, metadata, "/event/Nope__e")).read())
        empty = await refused((await subscribe(stub, metadata, "")).read())
    assert (unknown.status, unknown.error_code) == (
        grpc.StatusCode.NOT_FOUND,
        PREFIX + "topic.not.found",
    )
    assert (empty.status, empty.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "topic.validation.empty",
    )


async def test_later_requests_may_omit_the_topic_but_not_change_it(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=1, preset=pb.EARLIEST
        )
        publish_orders(sf_pubsub_emulator, "1", "2")
        await read_events(call, 1)
        await call.write(pb.FetchRequest(num_requested=1))
        await read_events(call, 1)
        await call.write(pb.FetchRequest(topic_name=PE_TOPIC, num_requested=1))
        await call.write(pb.FetchRequest(topic_name=CDC_TOPIC, num_requested=1))
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "subscription.fetch.topic.mismatch",
    )


async def test_replay_options_of_later_requests_are_ignored(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    ids = publish_orders(sf_pubsub_emulator, "1", "2", "3")
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub,
            call_metadata(sf_pubsub_emulator.org),
            num_requested=1,
            preset=pb.CUSTOM,
            replay_id=ids[0],
        )
        (first,) = await read_events(call, 1)
        await call.write(pb.FetchRequest(num_requested=1, replay_preset=pb.EARLIEST))
        (second,) = await read_events(call, 1)
        call.cancel()
    assert [first.replay_id, second.replay_id] == ids[1:]


async def test_a_client_half_close_ends_the_stream(sf_pubsub_emulator: PubSubEmulator) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), num_requested=3)
        await until_open_streams(sf_pubsub_emulator)
        await call.done_writing()
        end = await call.read()
        status = await call.code()
    assert end is aio.EOF
    assert status == grpc.StatusCode.OK
    assert not sf_pubsub_emulator.stats()[0].open


@pytest.mark.sf_pubsub_emulator(idle_timeout=0.2)
async def test_a_client_that_never_sends_its_first_request_is_closed(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = stub.Subscribe(metadata=call_metadata(sf_pubsub_emulator.org))
        refusal = await refused(call.read())
    assert refusal.status == grpc.StatusCode.UNAVAILABLE
