"""Every RPC checks ``accesstoken``, ``instanceurl`` and ``tenantid`` against the org."""

from __future__ import annotations

import grpc
import pytest

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import PubSubEmulator

from .support import (
    PE_TOPIC,
    PREFIX,
    Metadata,
    call_metadata,
    open_stub,
    read,
    read_events,
    refused,
    subscribe,
    until_open_streams,
)

AUTH_DETAILS = (
    "An authentication exception occurred. Provide valid authentication via metadata headers."
)


async def topic_refusal(
    pubsub: PubSubEmulator, metadata: Metadata
) -> tuple[grpc.StatusCode, str | None, str]:
    async with open_stub(pubsub) as stub:
        refusal = await refused(
            stub.GetTopic(pb.TopicRequest(topic_name=PE_TOPIC), metadata=metadata)
        )
    return refusal.status, refusal.error_code, refusal.details


async def test_an_unknown_token_is_unauthenticated(sf_pubsub_emulator: PubSubEmulator) -> None:
    metadata = call_metadata(sf_pubsub_emulator.org, token="00Dxx!not-a-token")
    status, code, details = await topic_refusal(sf_pubsub_emulator, metadata)
    assert (status, code) == (grpc.StatusCode.UNAUTHENTICATED, PREFIX + "service.auth.error")
    assert details.startswith(AUTH_DETAILS)
    assert "not-a-token" not in details


async def test_a_revoked_token_is_refused_on_every_rpc(sf_pubsub_emulator: PubSubEmulator) -> None:
    org = sf_pubsub_emulator.org
    metadata = call_metadata(org)
    org.revoke_tokens()
    async with open_stub(sf_pubsub_emulator) as stub:
        calls = [
            stub.GetTopic(pb.TopicRequest(topic_name=PE_TOPIC), metadata=metadata),
            stub.GetSchema(
                pb.SchemaRequest(schema_id=sf_pubsub_emulator.schema_id(PE_TOPIC)),
                metadata=metadata,
            ),
            stub.Publish(pb.PublishRequest(topic_name=PE_TOPIC), metadata=metadata),
        ]
        refusals = [await refused(call) for call in calls]
        stream = await subscribe(stub, metadata)
        refusals.append(await refused(stream.read()))
        publish_stream = stub.PublishStream(metadata=metadata)
        refusals.append(await refused(publish_stream.read()))
    assert {(item.status, item.error_code) for item in refusals} == {
        (grpc.StatusCode.UNAUTHENTICATED, PREFIX + "service.auth.error")
    }


@pytest.mark.sf_emulator(session_timeout=3600)
async def test_a_timed_out_session_is_refused(sf_pubsub_emulator: PubSubEmulator) -> None:
    org = sf_pubsub_emulator.org
    metadata = call_metadata(org)
    org.advance(3601)
    status, code, _ = await topic_refusal(sf_pubsub_emulator, metadata)
    assert (status, code) == (grpc.StatusCode.UNAUTHENTICATED, PREFIX + "service.auth.error")


@pytest.mark.parametrize("missing", ["accesstoken", "instanceurl", "tenantid"])
async def test_each_header_is_required(sf_pubsub_emulator: PubSubEmulator, missing: str) -> None:
    metadata = tuple(item for item in call_metadata(sf_pubsub_emulator.org) if item[0] != missing)
    status, code, details = await topic_refusal(sf_pubsub_emulator, metadata)
    assert (status, code) == (
        grpc.StatusCode.UNAUTHENTICATED,
        PREFIX + "service.auth.headers.invalid",
    )
    assert missing in details


async def test_another_orgs_tenant_or_instance_is_refused(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    token = org.issue_access_token()
    wrong_tenant = (
        ("accesstoken", token),
        ("instanceurl", org.instance_url),
        ("tenantid", "00D000000000001AAA"),
    )
    wrong_instance = (
        ("accesstoken", token),
        ("instanceurl", "https://other.my.salesforce.com"),
        ("tenantid", org.state.org_id),
    )
    for metadata in (wrong_tenant, wrong_instance):
        status, code, _ = await topic_refusal(sf_pubsub_emulator, metadata)
        assert (status, code) == (
            grpc.StatusCode.UNAUTHENTICATED,
            PREFIX + "service.auth.headers.invalid",
        )


async def test_the_tenant_id_may_be_short_or_in_full_form(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    org_id = org.state.org_id
    async with open_stub(sf_pubsub_emulator) as stub:
        for tenant in (org_id, org_id[:15], f"core/mydomain/{org_id}"):
            metadata = (
                ("accesstoken", org.issue_access_token()),
                ("instanceurl", org.instance_url + "/"),
                ("tenantid", tenant),
            )
            info = await stub.GetTopic(pb.TopicRequest(topic_name=PE_TOPIC), metadata=metadata)
            assert info.tenant_guid == org_id


async def test_one_org_serves_cometd_and_pubsub(
    sf_emulator: SalesforceEmulator, sf_pubsub_emulator: PubSubEmulator
) -> None:
    assert sf_pubsub_emulator.org is sf_emulator


async def test_a_token_revoked_mid_stream_ends_the_stream(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(org), num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "1"})
        assert len(await read_events(call, 1)) == 1
        org.revoke_tokens()
        sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "2"})
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.UNAUTHENTICATED,
        PREFIX + "service.auth.error",
    )
    assert sf_pubsub_emulator.stats()[0].delivered_total == 1


async def test_a_revoked_token_ends_an_idle_stream_too(sf_pubsub_emulator: PubSubEmulator) -> None:
    org = sf_pubsub_emulator.org
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(org), num_requested=5)
        org.revoke_tokens()
        refusal = await refused(call.read())
    assert refusal.status == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.sf_pubsub_emulator(expired_token_on_stream="keep")
async def test_an_open_stream_can_be_kept_after_its_token_dies(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(org), num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        org.revoke_tokens()
        sf_pubsub_emulator.publish(PE_TOPIC, {"OrderNumber__c": "after"})
        response = await read(call)
        call.cancel()
    assert len(response.events) == 1


@pytest.mark.sf_emulator(session_timeout=60)
async def test_a_session_that_times_out_ends_an_open_stream(
    sf_pubsub_emulator: PubSubEmulator,
) -> None:
    org = sf_pubsub_emulator.org
    async with open_stub(sf_pubsub_emulator) as stub:
        call = await subscribe(stub, call_metadata(org), num_requested=5)
        await until_open_streams(sf_pubsub_emulator)
        org.advance(61)
        refusal = await refused(call.read())
    assert (refusal.status, refusal.error_code) == (
        grpc.StatusCode.UNAUTHENTICATED,
        PREFIX + "service.auth.error",
    )
