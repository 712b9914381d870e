"""Drive the Pub/Sub emulator with the generated stubs and grpc.aio only, as any client would.

Nothing here uses aiosfstream's client code: these tests check the emulator against the
``.proto`` and the protocol reference, not against our client.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import fastavro
import grpc
import pytest
from grpc import aio

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream._pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import PubSubEmulator

PE_TOPIC = "/event/Order_Event__e"
CDC_TOPIC = "/data/AccountChangeEvent"
PREFIX = "sfdc.platform.eventbus.grpc."
#: Seconds any single read may take before a test gives up.
READ_TIMEOUT = 5.0

Metadata = tuple[tuple[str, str], ...]
SubscribeCall = aio.StreamStreamCall[pb.FetchRequest, pb.FetchResponse]


def call_metadata(org: SalesforceEmulator, token: str | None = None) -> Metadata:
    """The three headers Salesforce requires on every RPC."""
    return (
        ("accesstoken", token if token is not None else org.issue_access_token()),
        ("instanceurl", org.instance_url),
        ("tenantid", org.state.org_id),
    )


@asynccontextmanager
async def open_stub(
    pubsub: PubSubEmulator, root_certificates: bytes | None = None
) -> AsyncIterator[pb_grpc.PubSubAsyncStub]:
    """A stub on a fresh channel: TLS trusting *root_certificates* if given."""
    if root_certificates is not None:
        channel = aio.secure_channel(
            pubsub.endpoint, grpc.ssl_channel_credentials(root_certificates)
        )
    else:
        channel = aio.insecure_channel(pubsub.endpoint)
    async with channel:
        yield pb_grpc.PubSubStub(channel)


@dataclass(frozen=True)
class Refusal:
    """A failed RPC as a client sees it."""

    status: grpc.StatusCode
    error_code: str | None
    details: str
    rpc_id: str


def refusal_of(error: aio.AioRpcError) -> Refusal:
    """Read Salesforce's error shape off *error*, checking the parts every error has."""
    trailers = dict(error.trailing_metadata() or ())
    rpc_id = trailers.get("rpc-id")
    assert isinstance(rpc_id, str) and len(rpc_id) == 36, trailers
    details = error.details() or ""
    assert details.endswith(f" rpcId: {rpc_id}"), details
    code = trailers.get("error-code")
    assert code is None or isinstance(code, str)
    return Refusal(error.code(), code, details, rpc_id)


async def refused(call: Any) -> Refusal:
    """Await a unary call (or one read of a stream) that must fail; return the refusal."""
    with pytest.raises(aio.AioRpcError) as info:
        await asyncio.wait_for(call, READ_TIMEOUT)
    return refusal_of(info.value)


async def read(call: SubscribeCall) -> pb.FetchResponse:
    """The stream's next response (a test fails rather than hang)."""
    response = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert isinstance(response, pb.FetchResponse), response
    return response


async def subscribe(
    stub: pb_grpc.PubSubAsyncStub,
    metadata: Metadata,
    topic: str = PE_TOPIC,
    *,
    num_requested: int = 1,
    preset: int = pb.LATEST,
    replay_id: bytes = b"",
) -> SubscribeCall:
    """Open a Subscribe call and send its first request; the request side stays open."""
    call = stub.Subscribe(metadata=metadata)
    await call.write(
        pb.FetchRequest(
            topic_name=topic,
            replay_preset=preset,  # type: ignore[arg-type]
            replay_id=replay_id,
            num_requested=num_requested,
        )
    )
    return call


async def read_events(call: SubscribeCall, count: int) -> list[pb.ConsumerEvent]:
    """Read responses until *count* events arrived (keepalives are skipped)."""
    events: list[pb.ConsumerEvent] = []
    while len(events) < count:
        events.extend((await read(call)).events)
    return events


async def schema_of(
    stub: pb_grpc.PubSubAsyncStub, metadata: Metadata, schema_id: str
) -> dict[str, Any]:
    info = await stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=metadata)
    schema: dict[str, Any] = json.loads(info.schema_json)
    return schema


def avro_decode(schema: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """Decode a bare Avro datum, as the Salesforce samples do."""
    record = fastavro.schemaless_reader(io.BytesIO(payload), fastavro.parse_schema(schema), None)
    assert isinstance(record, dict)
    return record


def avro_encode(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def order_record(pubsub: PubSubEmulator, **fields: Any) -> dict[str, Any]:
    org = pubsub.org
    record: dict[str, Any] = {
        "CreatedDate": int(org.now() * 1000),
        "CreatedById": org.state.users[org.credentials.username].user_id,
        "OrderNumber__c": None,
        "Amount__c": None,
        "Status__c": None,
    }
    record.update(fields)
    return record


def producer_event(pubsub: PubSubEmulator, event_id: str = "", **fields: Any) -> pb.ProducerEvent:
    return pb.ProducerEvent(
        id=event_id,
        schema_id=pubsub.schema_id(PE_TOPIC),
        payload=avro_encode(pubsub.schema(PE_TOPIC), order_record(pubsub, **fields)),
    )


def position(replay_id: bytes) -> int:
    """The replay id as the 8-byte big-endian counter the samples read."""
    assert len(replay_id) == 8, replay_id
    return int.from_bytes(replay_id, "big")


async def until_open_streams(pubsub: PubSubEmulator, count: int = 1) -> None:
    """Wait until the server holds *count* open Subscribe streams.

    A LATEST stream starts at the tip the server sees when it reads the first request, so
    a test publishes only after that.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_TIMEOUT
    while sum(stream.open for stream in pubsub.stats()) < count:
        assert loop.time() < deadline, pubsub.stats()
        await asyncio.sleep(0.01)
