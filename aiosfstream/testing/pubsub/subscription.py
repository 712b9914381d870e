"""One Subscribe stream: the client's demand, delivery, keepalives and the idle close.

Flow control as the reference gives it: each ``num_requested`` is clamped to the maximum
(100), the outstanding demand is capped at that maximum too, a request sent while demand is
outstanding adds to it, and every response tells ``pending_num_requested``. While demand is
pending and there is nothing to deliver, an empty response carrying the bus's latest replay
id goes out every ``keepalive_interval``; none goes out while nothing is requested. Once
nothing is requested, the client has ``idle_timeout`` seconds after the last response to ask
again, or the stream ends with ``UNAVAILABLE`` (Salesforce documents no status for this: a
user saw a stream reset, which carries no error code, so none is sent).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc

from ..._pubsub_proto import pubsub_api_pb2 as pb
from .auth import AUTH_MESSAGE
from .bus import Bus, StoredEvent, Topic, encode_replay_id
from .failures import AUTH_ERROR, REQUESTED_EVENTS_INVALID, SUBSCRIBE_TOPIC_MISMATCH, RpcFailure
from .faults import Fault

__all__ = [
    "MAX_RESPONSE_BYTES",
    "TOKEN_POLL_INTERVAL",
    "StreamLimits",
    "SubscribeStream",
    "SubscribeStreamStats",
]

#: Events of one response stop there (gRPC's default inbound limit is 4 MiB).
MAX_RESPONSE_BYTES = 3 * 1024 * 1024
#: How often an idle stream looks whether its token died (revoked or timed out).
TOKEN_POLL_INTERVAL = 0.25


@dataclass
class SubscribeStreamStats:
    """What the server saw of one Subscribe stream."""

    topic: str
    rpc_id: str
    #: The sum of every ``num_requested`` as sent, before any clamping.
    requested_total: int = 0
    delivered_total: int = 0
    #: The largest outstanding demand the stream ever had (after clamping and capping).
    max_outstanding: int = 0
    keepalives_sent: int = 0
    open: bool = True


@dataclass(frozen=True)
class StreamLimits:
    """The server settings a Subscribe stream follows."""

    max_requested: int
    keepalive_interval: float
    idle_timeout: float
    end_on_expired_token: bool


@dataclass(eq=False)
class SubscribeStream:
    """A Subscribe stream on *topic*, delivering after bus *position*."""

    bus: Bus
    topic: Topic
    position: int
    rpc_id: str
    limits: StreamLimits
    token_is_live: Callable[[], bool]
    fault: Fault | None = None
    stats: SubscribeStreamStats = field(init=False)
    #: Events still owed to the client (its ``pending_num_requested``).
    _demand: int = field(init=False, default=0)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _failure: RpcFailure | None = field(init=False, default=None)
    _half_closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.stats = SubscribeStreamStats(topic=self.topic.name, rpc_id=self.rpc_id)
        self._fault_budget = None if self.fault is None else self.fault.after_events

    def request(self, request: pb.FetchRequest) -> None:
        """Take one FetchRequest: check it, then add its demand."""
        if request.topic_name and request.topic_name != self.topic.name:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                SUBSCRIBE_TOPIC_MISMATCH,
                f"The topic name {request.topic_name} differs from the stream's topic "
                f"{self.topic.name}. Start a new Subscribe call for another topic.",
            )
        if request.num_requested <= 0:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                REQUESTED_EVENTS_INVALID,
                f"The number of requested events must be greater than 0, got "
                f"{request.num_requested}.",
            )
        self.stats.requested_total += request.num_requested
        wanted = self._demand + min(request.num_requested, self.limits.max_requested)
        self._demand = min(wanted, self.limits.max_requested)
        self.stats.max_outstanding = max(self.stats.max_outstanding, self._demand)
        self._wake.set()

    async def read_requests(self, requests: AsyncIterator[pb.FetchRequest]) -> None:
        """Take the stream's later requests until the client half-closes."""
        try:
            async for request in requests:
                self.request(request)
        except RpcFailure as failure:
            self.fail(failure)
            return
        self._half_closed = True
        self._wake.set()

    def fail(self, failure: RpcFailure) -> None:
        """End the stream with *failure* at its next step."""
        if self._failure is None:
            self._failure = failure
        self._wake.set()

    def drop(self) -> None:
        """Reset the stream, as a network failure would."""
        self.fail(RpcFailure(grpc.StatusCode.UNAVAILABLE, None, "The stream was reset."))

    async def responses(self) -> AsyncIterator[pb.FetchResponse]:
        """The FetchResponses, until the client half-closes or the stream fails."""
        loop = asyncio.get_running_loop()
        last_response = loop.time()
        self.bus.listen(self._wake.set)
        try:
            while True:
                self._wake.clear()
                self._check()
                if self._half_closed:
                    return
                now = loop.time()
                if self._demand:
                    batch = self._next_batch()
                    deadline = last_response + self.limits.keepalive_interval
                    if batch or now >= deadline:
                        yield self._respond(batch)
                        last_response = loop.time()
                        continue
                else:
                    deadline = last_response + self.limits.idle_timeout
                    if now >= deadline:
                        raise RpcFailure(
                            grpc.StatusCode.UNAVAILABLE,
                            None,
                            f"The stream was closed: no events were requested within "
                            f"{self.limits.idle_timeout:g} seconds of the last response.",
                        )
                timeout = deadline - now
                if self.limits.end_on_expired_token:
                    timeout = min(timeout, TOKEN_POLL_INTERVAL)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            self.bus.unlisten(self._wake.set)
            self.stats.open = False

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self.fault is not None and self._fault_budget == 0:
            raise self.fault.failure
        if self.limits.end_on_expired_token and not self.token_is_live():
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, AUTH_MESSAGE)

    def _next_batch(self) -> list[StoredEvent]:
        limit = (
            self._demand if self._fault_budget is None else min(self._demand, self._fault_budget)
        )
        batch: list[StoredEvent] = []
        size = 0
        for event in self.bus.after(self.topic, self.position, limit):
            if batch and size + len(event.payload) > MAX_RESPONSE_BYTES:
                break
            batch.append(event)
            size += len(event.payload)
        return batch

    def _respond(self, batch: list[StoredEvent]) -> pb.FetchResponse:
        if batch:
            self.position = batch[-1].position
            self._demand -= len(batch)
            self.stats.delivered_total += len(batch)
            if self._fault_budget is not None:
                self._fault_budget -= len(batch)
            latest = batch[-1].replay_id
        else:
            # A keepalive: the bus's newest position, possibly past this topic's events.
            self.stats.keepalives_sent += 1
            latest = encode_replay_id(self.bus.tip)
        return pb.FetchResponse(
            events=[event.to_consumer_event() for event in batch],
            latest_replay_id=latest,
            rpc_id=self.rpc_id,
            pending_num_requested=self._demand,
        )
