"""Failure injection: planned failures per RPC, a stream killed mid-batch, dropped streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import grpc
import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing.pubsub import FAULT_RPCS, PubSubEmulator

from .support import (
    PE_TOPIC,
    PREFIX,
    READ_TIMEOUT,
    call_metadata,
    open_stub,
    producer_event,
    read_events,
    refused,
    subscribe,
    until_open_streams,
)


async def test_a_planned_failure_hits_the_next_calls_then_stops(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    sf_pubsub_emulator.fail_next("GetTopic", "INTERNAL", "service.unavailable", times=2)
    request = pb.TopicRequest(topic_name=PE_TOPIC)
    async with open_stub(sf_pubsub_emulator) as stub:
        first = await refused(stub.GetTopic(request, metadata=metadata))
        second = await refused(stub.GetTopic(request, metadata=metadata))
        info = await stub.GetTopic(request, metadata=metadata)
    for refusal in (first, second):
        assert (refusal.status, refusal.error_code) == (
            grpc.StatusCode.INTERNAL,
            PREFIX + "service.unavailable",
        )
    assert info.topic_name == PE_TOPIC


@pytest.mark.parametrize("rpc", FAULT_RPCS)
async def test_every_rpc_can_be_failed(sf_pubsub_emulator: PubSubEmulator, rpc: str) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    # The code may be given in full, and the status as a StatusCode.
    sf_pubsub_emulator.fail_next(
        rpc, grpc.StatusCode.RESOURCE_EXHAUSTED, PREFIX + "service.protection.triggered"
    )
    call: Awaitable[object]
    async with open_stub(sf_pubsub_emulator) as stub:
        if rpc == "GetTopic":
            call = stub.GetTopic(pb.TopicRequest(topic_name=PE_TOPIC), metadata=metadata)
        elif rpc == "GetSchema":
            call = stub.GetSchema(
                pb.SchemaRequest(schema_id=sf_pubsub_emulator.schema_id(PE_TOPIC)),
                metadata=metadata,
            )
        elif rpc == "Publish":
            call = stub.Publish(pb.PublishRequest(topic_name=PE_TOPIC), metadata=metadata)
        elif rpc == "Subscribe":
            call = (await subscribe(stub, metadata)).read()
        else:
            call = stub.PublishStream(metadata=metadata).read()
        refusal = await refused(call)
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        PREFIX + "service.protection.triggered",
    )


async def test_a_failure_may_carry_no_error_code(sf_pubsub_emulator: PubSubEmulator) -> None:
    sf_pubsub_emulator.fail_next("GetTopic", "UNAVAILABLE", None)
    async with open_stub(sf_pubsub_emulator) as stub:
        refusal = await refused(
            stub.GetTopic(
                pb.TopicRequest(topic_name=PE_TOPIC),
                metadata=call_metadata(sf_pubsub_emulator.org),
            )
        )
    assert (refusal.status, refusal.error_code) == (grpc.StatusCode.UNAVAILABLE, None)


async def test_a_subscribe_can_be_killed_mid_batch(sf_pubsub_emulator: PubSubEmulator) -> None:
    ids = [sf_pubsub_emulator.publish(PE_TOPIC, {}) for _ in range(10)]
    sf_pubsub_emulator.fail_next("Subscribe", "INTERNAL", "service.unavailable", after_events=3)
    metadata = call_metadata(sf_pubsub_emulator.org)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, metadata, num_requested=10, preset=pb.EARLIEST)
        delivered = await read_events(call, 3)
        refusal = await refused(call.read())
        # The next stream is not failed and resumes after the last delivered event.
        again = await subscribe(
            stub, metadata, num_requested=10, preset=pb.CUSTOM, replay_id=delivered[-1].replay_id
        )
        rest = await read_events(again, 7)
        again.cancel()
    assert [event.replay_id for event in delivered] == ids[:3]
    assert refusal.error_code == PREFIX + "service.unavailable"
    assert [event.replay_id for event in rest] == ids[3:]


async def test_drop_streams_resets_open_streams(sf_pubsub_emulator: PubSubEmulator) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    async with open_stub(sf_pubsub_emulator) as stub:
        subscription = await subscribe(stub, metadata, num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        publishing = stub.PublishStream(metadata=metadata)
        await publishing.write(
            pb.PublishRequest(topic_name=PE_TOPIC, events=[producer_event(sf_pubsub_emulator)])
        )
        await asyncio.wait_for(publishing.read(), READ_TIMEOUT)
        assert len(await read_events(subscription, 1)) == 1
        assert sf_pubsub_emulator.drop_streams() == 2
        dropped = [await refused(subscription.read()), await refused(publishing.read())]
    assert {refusal.status for refusal in dropped} == {grpc.StatusCode.UNAVAILABLE}
    assert not sf_pubsub_emulator.stats()[0].open
    assert sf_pubsub_emulator.drop_streams() == 0


async def test_stopping_the_emulator_resets_streams(sf_pubsub_emulator: PubSubEmulator) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        await sf_pubsub_emulator.stop()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"rpc": "ManagedSubscribe"}, ValueError),
        ({"status": "NOT_A_STATUS"}, ValueError),
        ({"status": "OK"}, ValueError),
        ({"status": 14}, TypeError),
        ({"error_code": 5}, TypeError),
        ({"times": 0}, ValueError),
        ({"after_events": -1}, ValueError),
        ({"rpc": "GetTopic", "after_events": 2}, ValueError),
    ],
)
def test_fail_next_refuses_bad_arguments(
    arguments: dict[str, object], error: type[Exception]
) -> None:
    from aiosfstream.testing import SalesforceEmulator

    pubsub = PubSubEmulator(SalesforceEmulator())
    call: dict[str, object] = {"rpc": "Subscribe", "status": "UNAVAILABLE", "error_code": None}
    call.update(arguments)
    rpc, status, code = call.pop("rpc"), call.pop("status"), call.pop("error_code")
    with pytest.raises(error):
        pubsub.fail_next(rpc, status, code, **call)  # type: ignore[arg-type]
