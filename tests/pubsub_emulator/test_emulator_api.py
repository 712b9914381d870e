"""The emulator object itself: options, lifecycle, topics, server-side publishing, stats."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import (
    CDC_TOPIC,
    PLATFORM_EVENT_TOPIC,
    PubSubEmulator,
    decode_replay_id,
    encode_replay_id,
)

from .support import PE_TOPIC, call_metadata, open_stub, read_events, subscribe


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"keepalive_interval": 0}, ValueError),
        ({"idle_timeout": float("nan")}, ValueError),
        ({"publish_idle_timeout": -1}, ValueError),
        ({"retention": float("inf")}, ValueError),
        ({"keepalive_interval": "1"}, TypeError),
        ({"max_requested": 0}, ValueError),
        ({"max_requested": 2.5}, TypeError),
        ({"expired_token_on_stream": "ignore"}, ValueError),
    ],
)
def test_bad_options_are_refused_with_their_name(
    options: dict[str, Any], error: type[Exception]
) -> None:
    (name,) = options
    with pytest.raises(error, match=name):
        PubSubEmulator(SalesforceEmulator(), **options)


def test_the_org_must_be_an_emulator() -> None:
    with pytest.raises(TypeError, match="org"):
        PubSubEmulator("https://example.my.salesforce.com")  # type: ignore[arg-type]


async def test_lifecycle(sf_emulator: SalesforceEmulator) -> None:
    pubsub = PubSubEmulator(sf_emulator)
    with pytest.raises(RuntimeError):
        _ = pubsub.endpoint
    assert "not started" in repr(pubsub)
    async with pubsub:
        assert pubsub.running
        endpoint = pubsub.endpoint
        assert re.match(r"^127\.0\.0\.1:\d+$", endpoint)
        with pytest.raises(RuntimeError):
            await pubsub.start()
    assert not pubsub.running
    await pubsub.stop()  # stopping twice is harmless
    # Restarting keeps the port and the events.
    pubsub.publish(PE_TOPIC, {})
    async with pubsub:
        assert pubsub.endpoint == endpoint
        assert len(pubsub.events(PE_TOPIC)) == 1


def test_two_topics_exist_from_the_start() -> None:
    pubsub = PubSubEmulator(SalesforceEmulator())
    assert pubsub.topics() == [PLATFORM_EVENT_TOPIC, CDC_TOPIC]
    assert (PLATFORM_EVENT_TOPIC, CDC_TOPIC) == (
        "/event/Order_Event__e",
        "/data/AccountChangeEvent",
    )
    ids = {pubsub.schema_id(topic) for topic in pubsub.topics()}
    assert len(ids) == 2
    assert all(re.match(r"^[A-Za-z0-9_-]{22}$", schema_id) for schema_id in ids)
    # Schema ids are a digest of the schema: a new emulator gives the same ones.
    assert ids == {PubSubEmulator(SalesforceEmulator()).schema_id(t) for t in pubsub.topics()}


def test_unknown_topics_and_payload_fields_are_refused() -> None:
    pubsub = PubSubEmulator(SalesforceEmulator())
    for call in (
        lambda: pubsub.schema_id("/event/Nope__e"),
        lambda: pubsub.publish("/event/Nope__e", {}),
        lambda: pubsub.events("/event/Nope__e"),
    ):
        with pytest.raises(ValueError, match="topic"):
            call()
    with pytest.raises(ValueError, match="payload"):
        pubsub.publish(PE_TOPIC, {"Colour__c": "red"})
    with pytest.raises(ValueError, match="payload"):
        pubsub.publish(PE_TOPIC, {"Amount__c": "not a number"})
    with pytest.raises(TypeError, match="payload"):
        pubsub.publish(PE_TOPIC, ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        pubsub.add_field(PE_TOPIC, "OrderNumber__c")


def test_replay_ids_round_trip() -> None:
    assert encode_replay_id(18098167) == b"\x00\x00\x00\x00\x01\x14\x27\xf7"
    assert decode_replay_id(encode_replay_id(18098167)) == 18098167
    with pytest.raises(ValueError, match="8 bytes"):
        decode_replay_id(b"\x01")


def test_events_are_copies() -> None:
    pubsub = PubSubEmulator(SalesforceEmulator())
    pubsub.publish(PE_TOPIC, {"OrderNumber__c": "1"})
    ((_, _, payload),) = pubsub.events(PE_TOPIC)
    assert payload is not None
    payload["OrderNumber__c"] = "changed"
    assert pubsub.events(PE_TOPIC)[0][2] == {**payload, "OrderNumber__c": "1"}


async def test_stats_describe_each_stream(sf_pubsub_emulator: PubSubEmulator) -> None:
    sf_pubsub_emulator.publish(PE_TOPIC, {})
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(
            stub, call_metadata(sf_pubsub_emulator.org), num_requested=7, preset=pb.EARLIEST
        )
        await read_events(call, 1)
        (stats,) = sf_pubsub_emulator.stats()
        call.cancel()
    assert stats.topic == PE_TOPIC
    assert len(stats.rpc_id) == 36
    assert (stats.requested_total, stats.delivered_total, stats.max_outstanding) == (7, 1, 7)
    assert stats.keepalives_sent == 0
    assert stats.open
    # stats() hands out copies: the server's own record moves on without them.
    stats.delivered_total = 99
    assert sf_pubsub_emulator.stats()[0].delivered_total == 1


def test_no_token_in_any_repr(sf_emulator: SalesforceEmulator) -> None:
    token = sf_emulator.issue_access_token()
    pubsub = PubSubEmulator(sf_emulator)
    assert token not in repr(pubsub)
