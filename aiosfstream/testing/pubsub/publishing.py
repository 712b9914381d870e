"""Publish and PublishStream requests: one result per event, in request order.

The emulator's choices where the reference leaves a gap: an unknown topic or a topic API
clients cannot write to (change events) fails the whole call; a bad event fails in its own
``PublishResult`` (``ErrorCode.PUBLISH``) and the others still go on the bus. Salesforce does
not validate the Avro of a published event, so a payload that does not decode is accepted
and delivered as sent; one that decodes must carry ``CreatedDate`` and ``CreatedById``
(a zero date or an empty id counts as missing).
"""

from __future__ import annotations

import uuid

import grpc

from ..._pubsub_proto import pubsub_api_pb2 as pb
from .bus import Bus, Topic
from .failures import (
    PUBLISH_EVENT_COUNT_INVALID,
    PUBLISH_TOPIC_EMPTY,
    TOPIC_PERMISSION,
    RpcFailure,
)

__all__ = ["MAX_EVENT_BYTES", "MAX_EVENT_ID_LENGTH", "publish_request", "publish_topic"]

#: Salesforce refuses an event bigger than 1 MB in its own result.
MAX_EVENT_BYTES = 1024 * 1024
MAX_EVENT_ID_LENGTH = 36


def publish_topic(bus: Bus, name: str) -> Topic:
    """The topic a publish request names, if API clients may publish to it."""
    if not name:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT, PUBLISH_TOPIC_EMPTY, "The topic name is empty."
        )
    topic = bus.topic(name)
    if not topic.can_publish:
        raise RpcFailure(
            grpc.StatusCode.PERMISSION_DENIED,
            TOPIC_PERMISSION,
            f"You can't publish to the topic {name}.",
        )
    return topic


def publish_request(
    bus: Bus, topic: Topic, request: pb.PublishRequest, rpc_id: str
) -> pb.PublishResponse:
    """Put the request's valid events on *topic*; answer one result per event."""
    if not request.events:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            PUBLISH_EVENT_COUNT_INVALID,
            "A publish request needs at least one event.",
        )
    results = [_publish_one(bus, topic, event) for event in request.events]
    return pb.PublishResponse(results=results, schema_id=topic.schema.schema_id, rpc_id=rpc_id)


def _refused(event: pb.ProducerEvent, message: str) -> pb.PublishResult:
    return pb.PublishResult(error=pb.Error(code=pb.PUBLISH, msg=message), correlation_key=event.id)


def _publish_one(bus: Bus, topic: Topic, event: pb.ProducerEvent) -> pb.PublishResult:
    if len(event.id) > MAX_EVENT_ID_LENGTH:
        return _refused(event, f"The event id is longer than {MAX_EVENT_ID_LENGTH} characters.")
    schema = topic.known_schema(event.schema_id)
    if schema is None:
        return _refused(
            event, f"The schema id {event.schema_id!r} is not a schema of {topic.name}."
        )
    if len(event.payload) > MAX_EVENT_BYTES:
        return _refused(event, "The event is larger than the maximum event size of 1 MB.")
    try:
        fields = schema.decode(event.payload)
    except ValueError:
        fields = None
    if fields is not None:
        missing = [name for name in ("CreatedDate", "CreatedById") if not fields.get(name)]
        if missing:
            return _refused(event, f"Required fields are missing: {', '.join(missing)}.")
    event_id = event.id or str(uuid.uuid4())
    stored = bus.append(
        topic, event.payload, schema_id=schema.schema_id, fields=fields, event_id=event_id
    )
    return pb.PublishResult(replay_id=stored.replay_id, correlation_key=event_id)
