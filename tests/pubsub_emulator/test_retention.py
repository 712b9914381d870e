"""Retention follows the org's clock: 72 hours, then events are gone and old ids are corrupted."""

from __future__ import annotations

import grpc
import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing.pubsub import DEFAULT_RETENTION, PubSubEmulator

from .support import PE_TOPIC, PREFIX, call_metadata, open_stub, read_events, refused, subscribe

HOURS = 3600.0


def test_the_default_retention_is_72_hours() -> None:
    assert DEFAULT_RETENTION == 72 * HOURS


async def test_events_older_than_72_hours_are_purged(sf_pubsub_emulator: PubSubEmulator) -> None:
    org = sf_pubsub_emulator.org
    sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "old"})
    org.advance(71 * HOURS)
    young = sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "young"})
    assert len(sf_pubsub_emulator.events(PE_TOPIC)) == 2
    org.advance(1 * HOURS + 1)
    assert [item[0] for item in sf_pubsub_emulator.events(PE_TOPIC)] == [young]
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(org), num_requested=5, preset=pb.EARLIEST)
        (event,) = await read_events(call, 1)
        call.cancel()
    assert event.replay_id == young


async def test_a_replay_id_before_purged_events_is_corrupted(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    first = sf_pubsub_emulator.publish(PE_TOPIC, {})
    sf_pubsub_emulator.publish(PE_TOPIC, {})
    org.advance(73 * HOURS)
    last = sf_pubsub_emulator.publish(PE_TOPIC, {})
    metadata = call_metadata(org)
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, metadata, preset=pb.CUSTOM, replay_id=first)
        refusal = await refused(call.read())
        # The newest purged event's id loses nothing: delivery goes on after it.
        purged_last = (int.from_bytes(last, "big") - 1).to_bytes(8, "big")
        ok = await subscribe(
            stub, metadata, num_requested=5, preset=pb.CUSTOM, replay_id=purged_last
        )
        (event,) = await read_events(ok, 1)
        ok.cancel()
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "subscription.fetch.replayid.corrupted",
    )
    assert event.replay_id == last


async def test_purge_retention_drops_events_before_a_time(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    sf_pubsub_emulator.publish(PE_TOPIC, {})
    cut = org.now() + 1
    org.advance(2)
    kept = sf_pubsub_emulator.publish(PE_TOPIC, {})
    assert sf_pubsub_emulator.purge_retention(cut) == 1
    assert [item[0] for item in sf_pubsub_emulator.events(PE_TOPIC)] == [kept]
    # With no time given, only events past the retention go.
    assert sf_pubsub_emulator.purge_retention() == 0


@pytest.mark.sf_pubsub_emulator(retention=10.0)
async def test_the_retention_is_configurable(sf_pubsub_emulator: PubSubEmulator) -> None:
    sf_pubsub_emulator.publish(PE_TOPIC, {})
    sf_pubsub_emulator.org.advance(11)
    assert sf_pubsub_emulator.events(PE_TOPIC) == []
