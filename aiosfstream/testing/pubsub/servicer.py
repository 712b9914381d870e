"""The ``eventbus.v1.PubSub`` service: every RPC checks the call's metadata, then serves.

ManagedSubscribe (a beta RPC) is not emulated: it answers ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from ..._pubsub_proto import pubsub_api_pb2 as pb
from ..._pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from .auth import AUTH_MESSAGE, authenticate, token_is_live
from .bus import Bus
from .failures import (
    AUTH_ERROR,
    PUBLISH_SWEEPER_TIMEOUT,
    PUBLISH_TOPIC_MISMATCH,
    SCHEMA_VALIDATION_FAILED,
    RpcFailure,
    answering_failures,
)
from .faults import Fault, FaultPlan
from .publishing import publish_request, publish_topic
from .subscription import StreamLimits, SubscribeStream

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..server import SalesforceEmulator

    Context: TypeAlias = aio.ServicerContext[Any, Any]

__all__ = ["PubSubService"]

_RESET = RpcFailure(grpc.StatusCode.UNAVAILABLE, None, "The stream was reset.")


class PubSubService(pb_grpc.PubSubServicer):
    """The RPCs, over one org's *bus*, with *faults* injected and *limits* on streams."""

    def __init__(
        self,
        org: SalesforceEmulator,
        bus: Bus,
        faults: FaultPlan,
        limits: StreamLimits,
        publish_idle_timeout: float,
    ) -> None:
        self._org = org
        self._bus = bus
        self._faults = faults
        self._limits = limits
        self._publish_idle_timeout = publish_idle_timeout
        #: Every Subscribe stream served, open or not, oldest first.
        self.subscribe_streams: list[SubscribeStream] = []
        self._publish_streams: set[asyncio.Queue[pb.PublishRequest | RpcFailure | None]] = set()

    def drop_streams(self) -> int:
        """Reset every open Subscribe and PublishStream call; return how many."""
        count = 0
        for stream in self.subscribe_streams:
            if stream.stats.open:
                stream.drop()
                count += 1
        for queue in self._publish_streams:
            queue.put_nowait(_RESET)
            count += 1
        return count

    def _admit(self, rpc: str, context: Context) -> tuple[str, Fault | None]:
        """Authenticate the call and fire a planned fault; return its token and a later fault."""
        token = authenticate(self._org, context.invocation_metadata())
        fault = self._faults.take(rpc)
        if fault is not None and not fault.after_events:
            raise fault.failure
        return token, fault

    def _live(self, token: str) -> bool:
        return not self._limits.end_on_expired_token or token_is_live(self._org, token)

    # -- unary RPCs ------------------------------------------------------------------------

    async def GetTopic(self, request: pb.TopicRequest, context: Context) -> pb.TopicInfo:
        rpc_id = _new_rpc_id()
        async with answering_failures(context, rpc_id):
            self._admit("GetTopic", context)
            topic = self._bus.topic(request.topic_name)
            return pb.TopicInfo(
                topic_name=topic.name,
                tenant_guid=self._org.state.org_id,
                can_publish=topic.can_publish,
                can_subscribe=True,
                schema_id=topic.schema.schema_id,
                rpc_id=rpc_id,
            )

    async def GetSchema(self, request: pb.SchemaRequest, context: Context) -> pb.SchemaInfo:
        rpc_id = _new_rpc_id()
        async with answering_failures(context, rpc_id):
            self._admit("GetSchema", context)
            if not request.schema_id:
                raise RpcFailure(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    SCHEMA_VALIDATION_FAILED,
                    "The schema ID is blank.",
                )
            schema = self._bus.schema(request.schema_id)
            if schema is None:
                raise RpcFailure(
                    grpc.StatusCode.NOT_FOUND,
                    SCHEMA_VALIDATION_FAILED,
                    f"The schema ID {request.schema_id} was not found.",
                )
            return pb.SchemaInfo(schema_json=schema.json, schema_id=schema.schema_id, rpc_id=rpc_id)

    async def Publish(self, request: pb.PublishRequest, context: Context) -> pb.PublishResponse:
        rpc_id = _new_rpc_id()
        async with answering_failures(context, rpc_id):
            self._admit("Publish", context)
            topic = publish_topic(self._bus, request.topic_name)
            return publish_request(self._bus, topic, request, rpc_id)

    # -- streams ---------------------------------------------------------------------------

    async def Subscribe(
        self, request_iterator: AsyncIterator[pb.FetchRequest], context: Context
    ) -> AsyncIterator[pb.FetchResponse]:
        rpc_id = _new_rpc_id()
        async with answering_failures(context, rpc_id):
            token, fault = self._admit("Subscribe", context)
            try:
                first = await asyncio.wait_for(anext(request_iterator), self._limits.idle_timeout)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise RpcFailure(
                    grpc.StatusCode.UNAVAILABLE,
                    None,
                    f"The stream was closed: no FetchRequest within "
                    f"{self._limits.idle_timeout:g} seconds.",
                ) from None
            topic = self._bus.topic(first.topic_name)
            stream = SubscribeStream(
                bus=self._bus,
                topic=topic,
                position=self._bus.start_position(topic, first.replay_preset, first.replay_id),
                rpc_id=rpc_id,
                limits=self._limits,
                token_is_live=lambda: token_is_live(self._org, token),
                fault=fault,
            )
            stream.request(first)
            self.subscribe_streams.append(stream)
            reader = asyncio.create_task(stream.read_requests(request_iterator))
            try:
                async for response in stream.responses():
                    yield response
            finally:
                stream.stats.open = False
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def PublishStream(
        self, request_iterator: AsyncIterator[pb.PublishRequest], context: Context
    ) -> AsyncIterator[pb.PublishResponse]:
        rpc_id = _new_rpc_id()
        async with answering_failures(context, rpc_id):
            token, _ = self._admit("PublishStream", context)
            queue: asyncio.Queue[pb.PublishRequest | RpcFailure | None] = asyncio.Queue()
            reader = asyncio.create_task(_forward(request_iterator, queue))
            self._publish_streams.add(queue)
            try:
                async for response in self._publish_responses(queue, token, rpc_id):
                    yield response
            finally:
                self._publish_streams.discard(queue)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def ManagedSubscribe(
        self, request_iterator: AsyncIterator[pb.ManagedFetchRequest], context: Context
    ) -> AsyncIterator[pb.ManagedFetchResponse]:
        rpc_id = _new_rpc_id()
        async with answering_failures(context, rpc_id):
            authenticate(self._org, context.invocation_metadata())
            raise RpcFailure(
                grpc.StatusCode.UNIMPLEMENTED, None, "ManagedSubscribe (beta) is not emulated."
            )
        yield pb.ManagedFetchResponse()  # never reached: it makes this a streaming handler

    async def _publish_responses(
        self,
        queue: asyncio.Queue[pb.PublishRequest | RpcFailure | None],
        token: str,
        rpc_id: str,
    ) -> AsyncIterator[pb.PublishResponse]:
        """One response per request, in order; the stream closes after an idle window."""
        topic = None
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), self._publish_idle_timeout)
            except asyncio.TimeoutError:
                raise RpcFailure(
                    grpc.StatusCode.UNAVAILABLE,
                    PUBLISH_SWEEPER_TIMEOUT,
                    f"No publish request with events arrived within "
                    f"{self._publish_idle_timeout:g} seconds. Open a new PublishStream.",
                ) from None
            if item is None:
                return
            if isinstance(item, RpcFailure):
                raise item
            if not self._live(token):
                raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, AUTH_MESSAGE)
            if topic is None:
                topic = publish_topic(self._bus, item.topic_name)
            elif item.topic_name and item.topic_name != topic.name:
                raise RpcFailure(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    PUBLISH_TOPIC_MISMATCH,
                    f"The topic name {item.topic_name} differs from the stream's topic "
                    f"{topic.name}.",
                )
            yield publish_request(self._bus, topic, item, rpc_id)


async def _forward(
    requests: AsyncIterator[pb.PublishRequest],
    queue: asyncio.Queue[pb.PublishRequest | RpcFailure | None],
) -> None:
    """Queue the client's requests, then ``None`` when it half-closes."""
    async for request in requests:
        queue.put_nowait(request)
    queue.put_nowait(None)


def _new_rpc_id() -> str:
    return str(uuid.uuid4())
