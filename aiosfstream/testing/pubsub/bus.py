"""The org's event bus: topics, retained events, replay ids and retention.

Replay ids are positions on one bus shared by every topic of the org, written as 8-byte
big-endian counters (what every sample helper reads). Because topics share the counter,
the ids of one topic have gaps, as on Salesforce, where many streams share a bus. Events
are kept for ``retention`` seconds of the org's clock (72 hours, as for Salesforce platform
and change events); expired events are purged whenever the bus is used.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from ..._pubsub_proto import pubsub_api_pb2 as pb
from .failures import (
    REPLAY_ID_CORRUPTED,
    REPLAY_ID_VALIDATION_FAILED,
    TOPIC_NOT_FOUND,
    TOPIC_VALIDATION_EMPTY,
    RpcFailure,
)
from .schemas import TopicSchema, initial_schemas

__all__ = [
    "DEFAULT_RETENTION",
    "REPLAY_ID_LENGTH",
    "Bus",
    "StoredEvent",
    "Topic",
    "decode_replay_id",
    "encode_replay_id",
]

#: Seconds events are kept (Salesforce: 72 hours for platform and change events).
DEFAULT_RETENTION = 72 * 3600.0
REPLAY_ID_LENGTH = 8


def encode_replay_id(position: int) -> bytes:
    """The replay id of bus *position*."""
    return position.to_bytes(REPLAY_ID_LENGTH, "big")


def decode_replay_id(replay_id: bytes) -> int:
    """The bus position of *replay_id*; ``ValueError`` if it is not one of ours."""
    if len(replay_id) != REPLAY_ID_LENGTH:
        raise ValueError(f"a replay id has {REPLAY_ID_LENGTH} bytes, got {len(replay_id)}")
    return int.from_bytes(replay_id, "big")


@dataclass(frozen=True)
class StoredEvent:
    """One retained event. *fields* is the decoded payload, ``None`` if it did not decode."""

    position: int
    topic: str
    event_id: str
    schema_id: str
    payload: bytes
    fields: dict[str, Any] | None
    created: float

    @property
    def replay_id(self) -> bytes:
        return encode_replay_id(self.position)

    def to_consumer_event(self) -> pb.ConsumerEvent:
        return pb.ConsumerEvent(
            event=pb.ProducerEvent(
                id=self.event_id, schema_id=self.schema_id, payload=self.payload
            ),
            replay_id=self.replay_id,
        )


@dataclass(eq=False)
class Topic:
    """A topic, its schema versions (current last) and its retained events (oldest first)."""

    name: str
    schemas: list[TopicSchema]
    events: list[StoredEvent] = field(default_factory=list)
    #: Position of the newest purged event: a replay id before it lost events.
    purged_through: int = 0

    @property
    def schema(self) -> TopicSchema:
        """The current schema."""
        return self.schemas[-1]

    @property
    def can_publish(self) -> bool:
        # Change events are written by the platform, never by API clients.
        return not self.name.startswith("/data/")

    def known_schema(self, schema_id: str) -> TopicSchema | None:
        return next((item for item in self.schemas if item.schema_id == schema_id), None)


class Bus:
    """Topics and events of one org; *clock* is the org's clock (epoch seconds)."""

    def __init__(self, clock: Callable[[], float], retention: float = DEFAULT_RETENTION) -> None:
        if not retention > 0:
            raise ValueError(f"retention must be positive, got {retention!r}")
        self._clock = clock
        self.retention = retention
        self.topics = {name: Topic(name, [schema]) for name, schema in initial_schemas().items()}
        self._tip = 0
        self._listeners: set[Callable[[], None]] = set()

    @property
    def tip(self) -> int:
        """The newest position handed out (0 before the first event)."""
        return self._tip

    # -- topics and schemas ----------------------------------------------------------------

    def topic(self, name: str) -> Topic:
        """The topic *name* (case-sensitive, as on Salesforce), or a NOT_FOUND failure."""
        if not name:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT, TOPIC_VALIDATION_EMPTY, "The topic name is empty."
            )
        topic = self.topics.get(name)
        if topic is None:
            raise RpcFailure(
                grpc.StatusCode.NOT_FOUND,
                TOPIC_NOT_FOUND,
                f"The topic {name} was not found, or you lack access to it.",
            )
        return topic

    def schema(self, schema_id: str) -> TopicSchema | None:
        """The schema with id *schema_id*, of any topic and any version."""
        for topic in self.topics.values():
            found = topic.known_schema(schema_id)
            if found is not None:
                return found
        return None

    def add_field(self, topic_name: str, name: str, avro_type: Any) -> str:
        """Give *topic_name* a new schema version with field *name*; return its schema id."""
        topic = self.topics[topic_name]
        topic.schemas.append(topic.schema.with_field(name, avro_type))
        return topic.schema.schema_id

    # -- events ----------------------------------------------------------------------------

    def append(
        self,
        topic: Topic,
        payload: bytes,
        *,
        schema_id: str,
        fields: dict[str, Any] | None,
        event_id: str | None = None,
    ) -> StoredEvent:
        """Put an event on the bus at the next position and wake the subscribers."""
        self.purge_expired()
        self._tip += 1
        event = StoredEvent(
            position=self._tip,
            topic=topic.name,
            event_id=event_id or str(uuid.uuid4()),
            schema_id=schema_id,
            payload=payload,
            fields=fields,
            created=self._clock(),
        )
        topic.events.append(event)
        for listener in list(self._listeners):
            listener()
        return event

    def after(self, topic: Topic, position: int, limit: int) -> list[StoredEvent]:
        """Up to *limit* retained events of *topic* after *position*, oldest first."""
        self.purge_expired()
        # Positions only grow, so the events are sorted by them.
        start = bisect.bisect_right(topic.events, position, key=lambda event: event.position)
        return topic.events[start : start + limit]

    def start_position(self, topic: Topic, preset: int, replay_id: bytes) -> int:
        """The position after which a Subscribe with *preset* and *replay_id* delivers."""
        self.purge_expired()
        if preset == pb.EARLIEST:
            return topic.purged_through
        if preset != pb.CUSTOM:
            return self._tip
        if not replay_id:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                REPLAY_ID_VALIDATION_FAILED,
                "The Replay ID validation failed: a CUSTOM replay preset needs a replay ID.",
            )
        try:
            position = decode_replay_id(replay_id)
        except ValueError:
            position = -1
        # Accepted: any position up to the tip that lost nothing to retention (a keepalive's
        # latest_replay_id is such a position even when no event of this topic has it).
        if not topic.purged_through <= position <= self._tip:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                REPLAY_ID_CORRUPTED,
                "The Replay ID validation failed: the replay ID is invalid or outside the "
                "retention window. Subscribe with another replay preset.",
            )
        return position

    def iter_events(self, topic_name: str) -> Iterator[StoredEvent]:
        self.purge_expired()
        return iter(list(self.topics[topic_name].events))

    def purge_expired(self) -> int:
        return self.purge(self._clock() - self.retention)

    def purge(self, before: float) -> int:
        """Drop the events created before *before* (org clock); return how many."""
        count = 0
        for topic in self.topics.values():
            # The org's clock only moves forward, so the events are sorted by creation too.
            expired = bisect.bisect_left(topic.events, before, key=lambda event: event.created)
            if expired:
                topic.purged_through = topic.events[expired - 1].position
                del topic.events[:expired]
                count += expired
        return count

    # -- waking subscribers ----------------------------------------------------------------

    def listen(self, listener: Callable[[], None]) -> None:
        """Call *listener* after each new event."""
        self._listeners.add(listener)

    def unlisten(self, listener: Callable[[], None]) -> None:
        self._listeners.discard(listener)
