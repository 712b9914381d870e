"""GetTopic and GetSchema, driven through the generated stubs."""

from __future__ import annotations

import re

import grpc
import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing.pubsub import PubSubEmulator

from .support import (
    CDC_TOPIC,
    PE_TOPIC,
    PREFIX,
    avro_decode,
    call_metadata,
    open_stub,
    read_events,
    refused,
    schema_of,
    subscribe,
)

SCHEMA_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


async def test_get_topic_describes_a_platform_event(sf_pubsub_emulator: PubSubEmulator) -> None:
    org = sf_pubsub_emulator.org
    async with open_stub(sf_pubsub_emulator) as stub:
        info = await stub.GetTopic(
            pb.TopicRequest(topic_name=PE_TOPIC), metadata=call_metadata(org)
        )
    assert info.topic_name == PE_TOPIC
    assert info.tenant_guid == org.state.org_id
    assert (info.can_publish, info.can_subscribe) == (True, True)
    assert info.schema_id == sf_pubsub_emulator.schema_id(PE_TOPIC)
    assert SCHEMA_ID.match(info.schema_id)
    assert len(info.rpc_id) == 36


async def test_change_events_cannot_be_published_by_clients(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    async with open_stub(sf_pubsub_emulator) as stub:
        info = await stub.GetTopic(
            pb.TopicRequest(topic_name=CDC_TOPIC), metadata=call_metadata(sf_pubsub_emulator.org)
        )
    assert (info.can_publish, info.can_subscribe) == (False, True)


async def test_topics_are_case_sensitive_and_unknown_ones_are_not_found(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    async with open_stub(sf_pubsub_emulator) as stub:
        refusal = await refused(
            stub.GetTopic(pb.TopicRequest(topic_name=PE_TOPIC.lower()), metadata=metadata)
        )
        empty = await refused(stub.GetTopic(pb.TopicRequest(topic_name=""), metadata=metadata))
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.NOT_FOUND,
        PREFIX + "topic.not.found",
    )
    assert (empty.status, empty.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "topic.validation.empty",
    )


@pytest.mark.parametrize("topic", [PE_TOPIC, CDC_TOPIC])
async def test_get_schema_returns_the_avro_schema_of_the_id(
    sf_pubsub_emulator: PubSubEmulator, topic: str
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    schema_id = sf_pubsub_emulator.schema_id(topic)
    async with open_stub(sf_pubsub_emulator) as stub:
        info = await stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=metadata)
        schema = await schema_of(stub, metadata, schema_id)
    assert info.schema_id == schema_id
    assert len(info.rpc_id) == 36
    assert schema["type"] == "record"
    assert schema["namespace"] == "com.sforce.eventbus"
    assert schema == sf_pubsub_emulator.schema(topic)


async def test_platform_event_schema_has_the_documented_fields(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    schema = sf_pubsub_emulator.schema(PE_TOPIC)
    fields = {item["name"]: item["type"] for item in schema["fields"]}
    assert schema["name"] == "Order_Event__e"
    assert fields["CreatedDate"] == "long"
    assert fields["CreatedById"] == "string"
    assert fields["OrderNumber__c"] == ["null", "string"]
    assert fields["Amount__c"] == ["null", "double"]
    assert fields["Status__c"] == ["null", "string"]


async def test_cdc_schema_starts_with_the_change_event_header(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    schema = sf_pubsub_emulator.schema(CDC_TOPIC)
    header = schema["fields"][0]
    assert header["name"] == "ChangeEventHeader"
    header_fields = {item["name"] for item in header["type"]["fields"]}
    assert {"changedFields", "nulledFields", "diffFields", "commitTimestamp"} <= header_fields
    assert {"Name", "Industry", "BillingAddress"} <= {item["name"] for item in schema["fields"]}


async def test_get_schema_refuses_blank_and_unknown_ids(sf_pubsub_emulator: PubSubEmulator) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    async with open_stub(sf_pubsub_emulator) as stub:
        blank = await refused(stub.GetSchema(pb.SchemaRequest(schema_id=""), metadata=metadata))
        unknown = await refused(
            stub.GetSchema(pb.SchemaRequest(schema_id="A" * 22), metadata=metadata)
        )
    assert (blank.status, blank.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        PREFIX + "schema.validation.failed",
    )
    assert unknown.status == grpc.StatusCode.NOT_FOUND


async def test_a_schema_change_gives_a_new_id_and_the_old_one_still_decodes(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org)
    old_id = sf_pubsub_emulator.schema_id(PE_TOPIC)
    sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "old"})
    new_id = sf_pubsub_emulator.add_field(PE_TOPIC, "Priority__c", "int")
    sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "new", "Priority__c": 3})
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, metadata, num_requested=2, preset=pb.EARLIEST)
        first, second = await read_events(call, 2)
        assert new_id != old_id and SCHEMA_ID.match(new_id)
        assert (first.event.schema_id, second.event.schema_id) == (old_id, new_id)
        old = avro_decode(await schema_of(stub, metadata, old_id), first.event.payload)
        new = avro_decode(await schema_of(stub, metadata, new_id), second.event.payload)
        call.cancel()
    assert "Priority__c" not in old
    assert (new["OrderNumber__c"], new["Priority__c"]) == ("new", 3)
