"""Flow control: never more than requested, the 100 cap, pending counts, keepalives, idle close."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing.pubsub import PubSubEmulator

from .support import (
    CDC_TOPIC,
    PE_TOPIC,
    call_metadata,
    open_stub,
    position,
    read,
    read_events,
    refused,
    subscribe,
    until_open_streams,
)


def publish_many(pubsub: PubSubEmulator, count: int) -> list[bytes]:
    return [pubsub.publish(PE_TOPIC, {"OrderNumber__c": str(n)}) for n in range(count)]


async def test_the_server_never_sends_more_than_requested(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    publish_many(sf_pubsub_emulator, 10)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=3, preset=pb.EARLIEST
        )
        response = await read(call)
        # Nothing more is owed: the next response waits for the next request.
        waiting = asyncio.ensure_future(call.read())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await call.write(pb.FetchRequest(num_requested=2))
        more = await asyncio.wait_for(waiting, 5)
        call.cancel()
    assert (len(response.events), response.pending_num_requested) == (3, 0)
    assert isinstance(more, pb.FetchResponse)
    assert (len(more.events), more.pending_num_requested) == (2, 0)
    (stats,) = sf_pubsub_emulator.stats()
    assert (stats.requested_total, stats.delivered_total, stats.max_outstanding) == (5, 5, 3)


async def test_every_response_tells_the_pending_demand(sf_pubsub_emulator: PubSubEmulator) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        pending = []
        for _ in range(3):
            publish_many(sf_pubsub_emulator, 1)
            pending.append((await read(call)).pending_num_requested)
        call.cancel()
    assert pending == [4, 3, 2]


async def test_one_request_is_clamped_to_the_maximum(sf_pubsub_emulator: PubSubEmulator) -> None:
    publish_many(sf_pubsub_emulator, 150)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=500, preset=pb.EARLIEST
        )
        events = await read_events(call, 100)
        waiting = asyncio.ensure_future(call.read())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        waiting.cancel()
        call.cancel()
    assert len(events) == 100
    (stats,) = sf_pubsub_emulator.stats()
    assert (stats.requested_total, stats.delivered_total, stats.max_outstanding) == (500, 100, 100)


async def test_outstanding_demand_adds_up_to_the_cap(sf_pubsub_emulator: PubSubEmulator) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(sf_pubsub_emulator.org), num_requested=60)
        await call.write(pb.FetchRequest(num_requested=60))
        await until_open_streams(sf_pubsub_emulator)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while sf_pubsub_emulator.stats()[0].requested_total < 120:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        publish_many(sf_pubsub_emulator, 1)
        response = await read(call)
        call.cancel()
    assert response.pending_num_requested == 99
    assert sf_pubsub_emulator.stats()[0].max_outstanding == 100


@pytest.mark.sf_pubsub_emulator(max_requested=5)
async def test_the_maximum_is_configurable(sf_pubsub_emulator: PubSubEmulator) -> None:
    publish_many(sf_pubsub_emulator, 8)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=50, preset=pb.EARLIEST
        )
        response = await read(call)
        call.cancel()
    assert (len(response.events), response.pending_num_requested) == (5, 0)


@pytest.mark.sf_pubsub_emulator(keepalive_interval=0.2)
async def test_keepalives_carry_the_latest_replay_id_while_demand_is_pending(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    (mine,) = publish_many(sf_pubsub_emulator, 1)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, metadata, num_requested=5, preset=pb.EARLIEST)
        (event,) = (await read(call)).events
        # Events of another topic move the bus past this stream's last event.
        foreign = sf_pubsub_emulator.publish(CDC_TOPIC, {"Name": "Acme"})
        keepalive = await read(call)
        second = await read(call)
        call.cancel()
        # Resubscribing from the keepalive's id loses nothing and repeats nothing.
        (after,) = publish_many(sf_pubsub_emulator, 1)
        again = await subscribe(
            stub, metadata, num_requested=5, preset=pb.CUSTOM, replay_id=keepalive.latest_replay_id
        )
        (resumed,) = (await read(again)).events
        again.cancel()
    assert event.replay_id == mine
    assert list(keepalive.events) == []
    assert keepalive.latest_replay_id == foreign
    assert position(keepalive.latest_replay_id) > position(mine)
    assert keepalive.pending_num_requested == 4
    assert list(second.events) == []
    assert resumed.replay_id == after
    assert sf_pubsub_emulator.stats()[0].keepalives_sent >= 2


@pytest.mark.sf_pubsub_emulator(keepalive_interval=0.1, idle_timeout=30)
async def test_no_keepalive_while_nothing_is_requested(sf_pubsub_emulator: PubSubEmulator) -> None:
    publish_many(sf_pubsub_emulator, 1)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=1, preset=pb.EARLIEST
        )
        await read(call)
        waiting = asyncio.ensure_future(call.read())
        await asyncio.sleep(0.5)
        assert not waiting.done()
        waiting.cancel()
        call.cancel()
    assert sf_pubsub_emulator.stats()[0].keepalives_sent == 0


@pytest.mark.sf_pubsub_emulator(idle_timeout=0.3)
async def test_a_stream_with_no_demand_closes_after_the_idle_timeout(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    publish_many(sf_pubsub_emulator, 1)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=1, preset=pb.EARLIEST
        )
        await read(call)
        started = asyncio.get_running_loop().time()
        refusal = await refused(call.read())
        waited = asyncio.get_running_loop().time() - started
    assert refusal.status == grpc.StatusCode.UNAVAILABLE
    assert refusal.error_code is None
    assert 0.2 < waited < 3
    assert not sf_pubsub_emulator.stats()[0].open


@pytest.mark.sf_pubsub_emulator(idle_timeout=0.3)
async def test_asking_again_in_time_keeps_the_stream(sf_pubsub_emulator: PubSubEmulator) -> None:
    publish_many(sf_pubsub_emulator, 4)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=1, preset=pb.EARLIEST
        )
        for _ in range(4):
            assert len((await read(call)).events) == 1
            await asyncio.sleep(0.15)
            await call.write(pb.FetchRequest(num_requested=1))
        call.cancel()
    assert sf_pubsub_emulator.stats()[0].delivered_total == 4
