"""The asyncio client of the Salesforce Pub/Sub API (gRPC), with :class:`~aiosfstream.Client`'s
names and promises.

Each subscribed topic has its own ``Subscribe`` stream, run by a background task that
fills the shared prefetch queue.  The task asks for events only as the queue has room
(:mod:`aiosfstream.pubsub.flow`), resumes after the last event it received when the
stream fails, and reads every failure through :mod:`aiosfstream.pubsub.policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl as ssl_module
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream._pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from aiosfstream.auth import AuthenticatorBase
from aiosfstream.client import AUTOMATIC_STORE_INTERVAL, ReplayParameter
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.client import Lifecycle
from aiosfstream.cometd.constants import DEFAULT_CONNECTION_TIMEOUT, DEFAULT_MAX_PENDING_COUNT
from aiosfstream.cometd.prefetch import PrefetchQueue
from aiosfstream.exceptions import (
    AuthenticationError,
    ClientInvalidOperation,
    LeaseLost,
    TransportTimeoutError,
)
from aiosfstream.ha.guard import LeaseGuard
from aiosfstream.ha.lease import Lease
from aiosfstream.pubsub.avro import SchemaCache, decode_payload, encode_payload
from aiosfstream.pubsub.errors import (
    InvalidEventPayload,
    PublishError,
    PublishResult,
    PubSubServerError,
    from_rpc_error,
)
from aiosfstream.pubsub.flow import DemandBudget
from aiosfstream.pubsub.messages import make_message, marker_of, millis_text
from aiosfstream.pubsub.policy import Decision, Reaction, Situation, Step, decide, reaction_to
from aiosfstream.replay import (
    HandedOver,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
    storage_from,
)
from aiosfstream.typing import Message

__all__ = ["DEFAULT_ENDPOINT", "PubSubClient", "SSLParameter"]

logger = logging.getLogger(__name__)

#: Salesforce's global Pub/Sub endpoint.
DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"
#: Seconds a unary call (GetTopic, GetSchema, Publish) may take.
REQUEST_TIMEOUT = 30.0
#: Seconds a new stream must stay open without an error to count as subscribed, when
#: no event or keepalive came sooner: refusals (a bad replay id) come at once.
SETTLE_SECONDS = 1.0
#: The largest response accepted: 100 events of up to 1 MB each, and framing (gRPC's
#: default of 4 MiB would refuse a full batch of big events).
MAX_RECEIVE_BYTES = 128 * 1024 * 1024
#: The first and the longest pause of gRPC between two attempts to connect, in ms.
RECONNECT_BACKOFF_MS = (100, 2000)
#: Seconds a stream that is owed events may stay silent before it counts as dead: the
#: server sends a keepalive at least every 270 s, and a half-open connection sends nothing.
SILENCE_TIMEOUT = 300.0

#: What the client's ``ssl`` argument may be.
SSLParameter = bool | bytes | str | os.PathLike[str] | None

_T = TypeVar("_T")
_PRESETS = {ReplayOption.NEW_EVENTS: pb.LATEST, ReplayOption.ALL_EVENTS: pb.EARLIEST}


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"connection_timeout must be a number of seconds or None, not {type(value).__name__}"
        )
    if not value > 0:
        raise ValueError(f"connection_timeout must be positive, got {value!r}")
    return float(value)


def _check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a 'host:port' str, not {type(endpoint).__name__}")
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or "/" in endpoint:
        raise ValueError(f"endpoint must look like 'host:port', got {endpoint!r}")
    return endpoint


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, not {type(topic).__name__}")
    if not topic.startswith("/") or len(topic) < 2:
        raise ValueError(f"topic must look like '/event/Name__e' or '/data/...', got {topic!r}")
    return topic


def _system_roots() -> bytes | None:
    """The system's CA bundle, or ``None`` to let gRPC use the roots it ships with."""
    cafile = ssl_module.get_default_verify_paths().cafile
    if cafile is None:
        return None
    try:
        return Path(cafile).read_bytes()
    except OSError:
        return None


def channel_credentials(ssl: object) -> grpc.ChannelCredentials | None:
    """The TLS setting of the channel: ``None`` is plaintext.

    :param ssl: ``None`` or ``True``: verify against the system's CA bundle; PEM
        ``bytes`` or the path of a CA bundle: verify against those; ``False``: plaintext,
        for local emulators only
    :raises TypeError: an :class:`ssl.SSLContext` (gRPC cannot use one) or another type
    :raises ValueError: the CA bundle cannot be read
    """
    if ssl is False:
        return None
    if ssl is None or ssl is True:
        return grpc.ssl_channel_credentials(_system_roots())
    if isinstance(ssl, bytes):
        return grpc.ssl_channel_credentials(ssl)
    if isinstance(ssl, str | os.PathLike):
        try:
            return grpc.ssl_channel_credentials(Path(ssl).read_bytes())
        except OSError as error:
            raise ValueError(f"ssl: cannot read the CA bundle {str(ssl)!r}: {error}") from None
    if isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(
            "ssl: gRPC cannot use an ssl.SSLContext; pass the CA bundle as a path or as "
            "PEM bytes, None for the system's CAs, or False for a local plaintext emulator"
        )
    raise TypeError(
        f"ssl must be None, a bool, PEM bytes or a CA bundle path, not {type(ssl).__name__}"
    )


def org_id_of(authenticator: AuthenticatorBase) -> str:
    """The org id the ``tenantid`` header needs, from what the authenticator learned.

    The token response's ``id`` is ``https://login.salesforce.com/id/<OrgId>/<UserId>``;
    without one (a session token), a session id starts with the org id and ``!``.

    :raises AuthenticationError: neither tells the org id
    """
    identity = authenticator.id
    if identity:
        parts = identity.rstrip("/").split("/")
        if len(parts) >= 3 and parts[-3] == "id" and parts[-2].startswith("00D"):
            return parts[-2]
    token = authenticator.access_token or ""
    prefix, bang, _ = token.partition("!")
    if bang and prefix.startswith("00D") and prefix.isalnum():
        return prefix
    raise AuthenticationError(
        "cannot tell the org id for the Pub/Sub API: the token response has no id URL "
        "and the access token does not start with one"
    )


def _user_id_of(authenticator: AuthenticatorBase) -> str | None:
    identity = (authenticator.id or "").rstrip("/").split("/")
    return identity[-1] if len(identity) >= 3 and identity[-3] == "id" else None


class _Requests:
    """The request side of a ``Subscribe`` call, fed without waiting.

    It never ends by itself: a finished request iterator would half-close the call, and
    the server would end the stream.
    """

    def __init__(self, first: pb.FetchRequest) -> None:
        self._queue: asyncio.Queue[pb.FetchRequest | None] = asyncio.Queue()
        self._queue.put_nowait(first)

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> pb.FetchRequest:
        request = await self._queue.get()
        if request is None:
            raise StopAsyncIteration
        return request

    def ask(self, num_requested: int) -> None:
        """Ask for *num_requested* more events."""
        self._queue.put_nowait(pb.FetchRequest(num_requested=num_requested))

    def end(self) -> None:
        """End the requests once the call is over, so that gRPC's task reading them ends."""
        self._queue.put_nowait(None)


class _Stream:
    """One topic's subscription: its current ``Subscribe`` call and its position."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        #: The replay id to resume after within this client's lifetime: the last event
        #: received, or the bus position of the last keepalive.
        self.position: bytes | None = None
        #: ``replay_fallback``, once the start position was refused.
        self.fallback: ReplayOption | None = None
        #: The current call started from a replay id (``CUSTOM``), which may be refused.
        self.from_replay_id = False
        #: Seconds the last call start waited for room in the queue (no outage time).
        self.waited = 0.0
        #: Events of this topic in the prefetch queue.
        self.queued = 0
        #: The requests of the current call, while one runs.
        self.requests: _Requests | None = None
        #: Events granted to the next call while it waited for room in the queue.
        self.granted = 0
        self.room = asyncio.Event()
        self.settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    def settle(self, error: BaseException | None = None) -> None:
        """Tell :meth:`PubSubClient.subscribe` how the subscription went."""
        if self.settled.done():
            return
        if error is None:
            self.settled.set_result(None)
        else:
            self.settled.set_exception(error)


class PubSubClient:
    """Receives platform events and Change Data Capture events over the Pub/Sub API.

    The names and meanings are those of :class:`aiosfstream.Client`: ``async with``,
    :meth:`subscribe`, :meth:`receive` or ``async for``, :meth:`publish`; replay ids are
    ``bytes`` here, and each message is a dict with the keys ``topic``, ``replay_id``,
    ``event_id``, ``schema_id`` and ``payload`` (the decoded Avro record).

    :param authenticator: how to obtain an access token; any of aiosfstream's
    :param replay: where subscriptions start: a :class:`~aiosfstream.ReplayOption`
        (``NEW_EVENTS`` is the ``LATEST`` preset, ``ALL_EVENTS`` ``EARLIEST``), a mutable
        mapping, or a :class:`~aiosfstream.ReplayMarkerStorage` keyed by topic name, whose
        stored ids are replayed with the ``CUSTOM`` preset
    :param replay_fallback: the :class:`~aiosfstream.ReplayOption` to subscribe with when
        Salesforce refuses a stored replay id (corrupted, or older than 72 hours); ``None``
        raises :class:`~aiosfstream.pubsub.PubSubServerError` instead
    :param replay_storage_policy: when a message's replay marker is stored
    :param connection_timeout: seconds to wait for a lost stream to come back before
        raising :class:`~aiosfstream.exceptions.TransportTimeoutError`; ``None`` waits forever
    :param max_pending_count: the most events received and not yet returned by
        :meth:`receive`, counting those asked for, plus one per topic (so that a topic
        is asked for events even while a quiet one holds the room; the events of a
        topic unsubscribed meanwhile count on top until received); ``0`` or less: 100
        per topic
    :param endpoint: the Pub/Sub endpoint, ``host:port``
    :param ssl: ``None`` verifies TLS with the system's CAs; a CA bundle (path or PEM
        ``bytes``) verifies with it; ``False`` is plaintext, for local emulators only
    :param backoff: the delays between reconnection attempts
    :param lease: for a replica among several (see :doc:`/replicas`): an
        :class:`aiosfstream.ha.Lease`; :meth:`open` waits until it is held, losing it
        ends the stream with :class:`~aiosfstream.exceptions.LeaseLost`, and
        :meth:`close` gives it up
    """

    def __init__(
        self,
        authenticator: AuthenticatorBase,
        *,
        replay: ReplayParameter = ReplayOption.NEW_EVENTS,
        replay_fallback: ReplayOption | None = None,
        replay_storage_policy: ReplayMarkerStoragePolicy = ReplayMarkerStoragePolicy.AUTOMATIC,
        connection_timeout: float | None = DEFAULT_CONNECTION_TIMEOUT,
        max_pending_count: int = DEFAULT_MAX_PENDING_COUNT,
        endpoint: str = DEFAULT_ENDPOINT,
        ssl: SSLParameter = None,
        backoff: Backoff | None = None,
        lease: Lease | None = None,
    ) -> None:
        if not isinstance(authenticator, AuthenticatorBase):
            raise TypeError(
                f"authenticator must be an AuthenticatorBase, not {type(authenticator).__name__}"
            )
        if replay_fallback is not None and not isinstance(replay_fallback, ReplayOption):
            raise TypeError("replay_fallback must be a ReplayOption or None")
        if not isinstance(replay_storage_policy, ReplayMarkerStoragePolicy):
            raise TypeError("replay_storage_policy must be a ReplayMarkerStoragePolicy")
        if isinstance(max_pending_count, bool) or not isinstance(max_pending_count, int):
            raise TypeError(
                f"max_pending_count must be an int, not {type(max_pending_count).__name__}"
            )
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff, not {type(backoff).__name__}")
        self._guard = LeaseGuard(lease)
        #: The lease of a replica, or ``None``.
        self.lease = lease
        self.authenticator = authenticator
        #: The :class:`~aiosfstream.ReplayMarkerStorage` that keeps the replay markers,
        #: by topic; call it to store a message's marker with the MANUAL policy.
        self.replay_storage: ReplayMarkerStorage = storage_from(replay)
        self.replay_fallback = replay_fallback
        self.replay_storage_policy = replay_storage_policy
        self.connection_timeout = _check_timeout(connection_timeout)
        self.max_pending_count = max_pending_count
        self.endpoint = _check_endpoint(endpoint)
        self._credentials = channel_credentials(ssl)
        self._backoff = backoff or Backoff()
        #: Seconds a stream owed events may stay silent before it is replaced.
        self.silence_timeout = SILENCE_TIMEOUT
        self._lifecycle = Lifecycle.UNOPENED
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.PubSubAsyncStub | None = None
        self._queue: PrefetchQueue | None = None
        self._budget = DemandBudget(max_pending_count)
        self._streams: dict[str, _Stream] = {}
        # Events still queued of topics whose stream ended: a new subscription to the
        # topic counts them as its own, so its count matches what receive() takes.
        self._left_queued: dict[str, int] = {}
        self._schemas = SchemaCache(self._fetch_schema)
        self._topic_schemas: dict[str, str] = {}
        self._auth_lock = asyncio.Lock()
        # AUTOMATIC policy: the messages handed over whose markers are not stored yet.
        self._handed = HandedOver(AUTOMATIC_STORE_INTERVAL)
        # The replay id of the last message handed over per topic (MANUAL policy: a
        # keepalive may move the marker only once the user stored that one).
        self._last_handed: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._lifecycle.value} endpoint={self.endpoint!r}>"

    # -- public properties -------------------------------------------------------
    @property
    def closed(self) -> bool:
        """``True`` unless the client is open."""
        return self._lifecycle is not Lifecycle.OPEN

    @property
    def subscriptions(self) -> set[str]:
        """The topics subscribed to."""
        return set(self._streams)

    @property
    def pending_count(self) -> int:
        """Events received and waiting for :meth:`receive`."""
        return 0 if self._queue is None else len(self._queue) + self._queue.backlog_count

    @property
    def has_pending_messages(self) -> bool:
        """Whether :meth:`receive` would return without waiting."""
        return self.pending_count > 0

    # -- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        """Wait for the lease if there is one; then obtain a token and open the channel.

        The token is retried within ``connection_timeout`` when the token endpoint
        fails in a way that may pass.

        :raises ~aiosfstream.exceptions.LeaseLost: the lease was lost before the
            client was open
        """
        if self._lifecycle is not Lifecycle.UNOPENED:
            raise ClientInvalidOperation(
                f"cannot open a client that is {self._lifecycle.value}; create a new one"
            )
        await self._guard.acquire()
        await self._guard.run(self._open())
        self._guard.watch(self._lose_lease)

    async def _open(self) -> None:
        if self._lifecycle is not Lifecycle.UNOPENED:  # closed while it waited for the lease
            raise ClientInvalidOperation(f"cannot open a client that is {self._lifecycle.value}")
        self._lifecycle = Lifecycle.OPEN
        self._queue = PrefetchQueue(self.max_pending_count)
        try:
            await self._authenticate(None)
        except BaseException:
            await self.close()
            raise
        options = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            # gRPC's own reconnection backoff grows to 2 minutes, during which every call
            # fails at once; the client's backoff already spaces the attempts.
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
        ]
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self.endpoint, options=options)
        else:
            self._channel = grpc.aio.secure_channel(
                self.endpoint, self._credentials, options=options
            )
        self._stub = pb_grpc.PubSubStub(self._channel)

    async def close(self) -> None:
        """Store the markers of the messages handed over, end every stream, close the
        channel, and give the lease up. Safe to call twice."""
        await self._guard.stop()
        try:
            await self._shut()
        finally:
            await self._guard.release()

    async def _shut(self) -> None:
        if self._lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            return
        self._lifecycle = Lifecycle.CLOSING
        try:
            await self._stop_streams(list(self._streams.values()))
            if self._guard.holds:
                await self._store_handed()
        finally:
            if self._channel is not None:
                await self._channel.close()
            if self._queue is not None:
                self._queue.fail(ClientInvalidOperation("the client is closed"))
            self._lifecycle = Lifecycle.CLOSED
            logger.debug("Pub/Sub client closed")

    async def _lose_lease(self, lost: LeaseLost) -> None:
        """Stop at once: the stream ends with *lost*, and nothing is stored any more."""
        logger.warning("%s; stopping", lost)
        if self._queue is not None:
            self._queue.abort(lost)
        await self._shut()

    async def __aenter__(self) -> PubSubClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- operations ----------------------------------------------------------------
    async def subscribe(self, topic: str) -> None:
        """Subscribe to *topic*, from the position :attr:`replay_storage` gives.

        Returns once the stream is running: it delivered something, or stayed open
        a second without a refusal. A refusal raises
        :class:`~aiosfstream.pubsub.PubSubServerError` (an invalid replay id without
        ``replay_fallback``, an unknown topic, no permission); one that comes later is
        raised by :meth:`receive`.
        """
        _check_topic(topic)
        self._check_open()
        if topic in self._streams:
            return
        info = await self._call(
            f"GetTopic {topic}",
            lambda metadata, timeout: self._api.GetTopic(
                pb.TopicRequest(topic_name=topic), metadata=metadata, timeout=timeout
            ),
        )
        if not info.can_subscribe:
            raise PubSubServerError(
                f"Subscribe to {topic} refused",
                {"details": "the user may not subscribe to this topic"},
            )
        stream = _Stream(topic)
        stream.queued = self._left_queued.pop(topic, 0)
        self._streams[topic] = stream
        self._budget.add(stream)
        stream.task = asyncio.create_task(self._follow(stream), name=f"Pub/Sub stream {topic}")
        try:
            await asyncio.shield(stream.settled)
        except BaseException:
            await self._stop_streams([stream])
            raise

    async def unsubscribe(self, topic: str) -> None:
        """End the subscription to *topic*; its events already received stay queued."""
        _check_topic(topic)
        self._check_open()
        stream = self._streams.get(topic)
        if stream is None:
            raise ClientInvalidOperation(f"not subscribed to {topic}")
        await self._stop_streams([stream])

    async def receive(self) -> Message:
        """Return the next event, waiting for one if needed; with the AUTOMATIC policy,
        first store the markers of the events returned before (as
        :meth:`aiosfstream.Client.receive` does).

        Raises :class:`~aiosfstream.exceptions.TransportTimeoutError` when a stream was
        lost for longer than ``connection_timeout``, and
        :class:`~aiosfstream.pubsub.PubSubServerError` when Salesforce ended a
        subscription (the other topics go on).
        """
        if self._queue is None:
            raise ClientInvalidOperation("the client is not open; call open() first")
        if self._handed.due():
            await self._store_handed()
        message = self._queue.get_nowait()
        if message is None:
            if self._handed.last:
                await self._store_handed()
            message = await self._queue.get()
        if self._guard.lease is not None and not self._guard.holds:
            # A pause of the process can outlast the lease before the watch task runs.
            assert self._guard.lost is not None
            await self._lose_lease(self._guard.lost)
            raise self._guard.lost
        topic: str = message["topic"]
        stream = self._streams.get(topic)
        if stream is not None:
            stream.queued -= 1
        elif self._left_queued.get(topic, 0) > 1:
            self._left_queued[topic] -= 1
        else:
            self._left_queued.pop(topic, None)
        # Once per half share of events taken, not on every one: nothing else frees room.
        if self._budget.worth_granting(self._queued()):
            self._top_up()
        elif stream is not None and not stream.queued and not self._budget.outstanding(stream):
            self._ask(stream)  # its last event is taken: it must not be left owing nothing
        self._last_handed[topic] = message["replay_id"]
        if self.replay_storage_policy is ReplayMarkerStoragePolicy.AUTOMATIC:
            self._handed.hand(topic, message)
        return message

    def __aiter__(self) -> PubSubClient:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except ClientInvalidOperation:
            if self._lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
                raise StopAsyncIteration from None
            raise

    async def publish(
        self, topic: str, payload: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[PublishResult]:
        """Publish one event (a mapping) or several (a sequence of them) to *topic*.

        Each payload is encoded with the topic's current schema; a platform event's
        required ``CreatedDate`` and ``CreatedById`` are filled in when missing (now,
        and the authenticated user). Not retried after a network failure, which could
        publish twice; a refused token is renewed once.

        :returns: one :class:`~aiosfstream.pubsub.PublishResult` per event, in order
        :raises PublishError: Salesforce refused some events; its ``results`` has them all
        :raises ValueError: a payload does not fit the topic's schema
        """
        _check_topic(topic)
        payloads = [payload] if isinstance(payload, Mapping) else list(payload)
        if not payloads or not all(isinstance(item, Mapping) for item in payloads):
            raise TypeError("payload must be a mapping or a non-empty sequence of mappings")
        self._check_open()
        schema_id = await self._schema_id_of(topic)
        schema = await self._schemas.get(schema_id)
        names = {field["name"] for field in schema["fields"]}
        events = []
        for item in payloads:
            record = dict(item)
            if "CreatedDate" in names:
                record.setdefault("CreatedDate", int(datetime.now(timezone.utc).timestamp() * 1000))
            user_id = _user_id_of(self.authenticator)
            if "CreatedById" in names and user_id is not None:
                record.setdefault("CreatedById", user_id)
            events.append(
                pb.ProducerEvent(
                    id=str(uuid.uuid4()),
                    schema_id=schema_id,
                    payload=encode_payload(schema, record),
                )
            )
        request = pb.PublishRequest(topic_name=topic, events=events)
        response = await self._call(
            f"Publish to {topic}",
            lambda metadata, timeout: self._api.Publish(
                request, metadata=metadata, timeout=timeout
            ),
            idempotent=False,
        )
        results = []
        for event, result in zip(events, response.results, strict=False):
            failed = result.HasField("error")
            results.append(
                PublishResult(
                    event_id=result.correlation_key or event.id,
                    replay_id=None if failed else result.replay_id,
                    error=f"{pb.ErrorCode.Name(result.error.code)}: {result.error.msg}"
                    if failed
                    else None,
                )
            )
        refused = [result for result in results if result.error is not None]
        if refused or len(results) != len(events):
            first = refused[0].error if refused else "the answer has fewer results than events"
            raise PublishError(
                f"Publish to {topic}: {len(refused) or len(events) - len(results)} of "
                f"{len(events)} events failed",
                {"error": "PUBLISH", "details": first},
                results,
            )
        return results

    # -- calls -----------------------------------------------------------------------
    @property
    def _api(self) -> pb_grpc.PubSubAsyncStub:
        assert self._stub is not None
        return self._stub

    def _check_open(self) -> None:
        if self._lifecycle is not Lifecycle.OPEN:
            raise ClientInvalidOperation(f"the client is {self._lifecycle.value}")

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """The headers every call carries; gRPC wants the keys lowercase."""
        token = self.authenticator.access_token or ""
        instance_url = (self.authenticator.instance_url or "").rstrip("/")
        return (
            ("accesstoken", token),
            ("instanceurl", instance_url),
            ("tenantid", org_id_of(self.authenticator)),
        )

    async def _authenticate(self, refused_token: str | None) -> None:
        """Obtain a token, retrying temporary failures within ``connection_timeout``.

        :param refused_token: the token Salesforce refused; if another task already
            replaced it, nothing is done
        """
        async with self._auth_lock:
            if refused_token is not None and self.authenticator.access_token != refused_token:
                return
            loop = asyncio.get_running_loop()
            started, attempt = loop.time(), 0
            while True:
                try:
                    await self.authenticator.authenticate()
                    org_id_of(self.authenticator)
                    return
                except AuthenticationError as error:
                    if not error.retryable:
                        raise
                    decision = self._decide(Reaction.RETRY, attempt, loop.time() - started)
                    if decision.step is Step.GIVE_UP:
                        raise self._timeout(error) from error
                    attempt += 1
                    logger.info("authentication failed (%s); retrying", error)
                    await asyncio.sleep(decision.delay)

    def _decide(
        self,
        reaction: Reaction,
        attempt: int,
        elapsed: float,
        *,
        reauthenticated: bool = False,
        can_fall_back: bool = False,
    ) -> Decision:
        situation = Situation(
            attempt=attempt,
            elapsed=elapsed,
            timeout=self.connection_timeout,
            reauthenticated=reauthenticated,
            can_fall_back=can_fall_back,
            jitter=self._backoff.random(),
        )
        return decide(reaction, situation, self._backoff)

    def _timeout(self, cause: BaseException) -> TransportTimeoutError:
        return TransportTimeoutError(
            f"Pub/Sub API not reachable within {self.connection_timeout:g} s; last error: {cause}"
        )

    async def _call(
        self,
        what: str,
        invoke: Callable[[tuple[tuple[str, str], ...], float], Awaitable[_T]],
        *,
        idempotent: bool = True,
    ) -> _T:
        """Make a unary call; retry it by the policy (only a refused token, when it is
        not idempotent)."""
        loop = asyncio.get_running_loop()
        started, attempt, reauthenticated = loop.time(), 0, False
        while True:
            token = self.authenticator.access_token
            timeout = REQUEST_TIMEOUT
            if self.connection_timeout is not None:
                timeout = min(timeout, max(self.connection_timeout, 1.0))
            try:
                return await invoke(self._metadata(), timeout)
            except grpc.aio.AioRpcError as rpc_error:
                error = from_rpc_error(rpc_error, what)
            reaction = reaction_to(error.status or "", error.error)
            if not idempotent and reaction is not Reaction.REAUTHENTICATE:
                raise error
            if reaction is not Reaction.REAUTHENTICATE:
                reauthenticated = False
            decision = self._decide(
                reaction, attempt, loop.time() - started, reauthenticated=reauthenticated
            )
            attempt += 1
            if decision.step is Step.GIVE_UP:
                raise self._timeout(error) from error
            if decision.step is Step.FAIL:
                raise error
            logger.info("%s failed (%s); next: %s", what, error, decision.step.value)
            if decision.step is Step.REAUTHENTICATE:
                await self._authenticate(token)
                reauthenticated = True
            await asyncio.sleep(decision.delay)

    async def _fetch_schema(self, schema_id: str) -> str:
        info = await self._call(
            f"GetSchema {schema_id}",
            lambda metadata, timeout: self._api.GetSchema(
                pb.SchemaRequest(schema_id=schema_id), metadata=metadata, timeout=timeout
            ),
        )
        return info.schema_json

    async def _schema_id_of(self, topic: str) -> str:
        schema_id = self._topic_schemas.get(topic)
        if schema_id is None:
            info = await self._call(
                f"GetTopic {topic}",
                lambda metadata, timeout: self._api.GetTopic(
                    pb.TopicRequest(topic_name=topic), metadata=metadata, timeout=timeout
                ),
            )
            if not info.can_publish:
                raise PubSubServerError(
                    f"Publish to {topic} refused",
                    {"details": "the user may not publish to this topic"},
                )
            schema_id = self._topic_schemas[topic] = info.schema_id
        return schema_id

    # -- streams -----------------------------------------------------------------------
    def _queued(self) -> int:
        return self.pending_count

    def _top_up(self) -> None:
        """Ask each stream for as many events as the queue has room for.

        The streams holding the least demand go first, so that freed room goes to a
        stream waiting to start rather than always to the first one subscribed.
        """
        for stream in sorted(self._streams.values(), key=self._budget.outstanding):
            self._ask(stream)

    def _ask(self, stream: _Stream) -> None:
        """Ask *stream* for what the budget grants it now, if anything."""
        wanted = self._budget.grant(stream, self._queued(), stream.queued)
        if stream.requests is not None:
            if wanted:
                stream.requests.ask(wanted)
            return
        # A call waiting to start takes the grant with its first request.
        stream.granted += wanted
        if wanted or not stream.room.is_set():
            stream.room.set()

    async def _stop_streams(self, streams: list[_Stream]) -> None:
        for stream in streams:
            self._forget(stream)
            if stream.task is not None:
                stream.task.cancel()
        self._top_up()  # the others' shares grew, and the demand they held is free
        for stream in streams:
            if stream.task is not None and stream.task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.task
            if not stream.settled.done():
                stream.settled.cancel()

    async def _start_request(self, stream: _Stream) -> pb.FetchRequest:
        """The first request of a new call: where to start, and the first demand."""
        request = pb.FetchRequest(topic_name=stream.topic)
        stream.from_replay_id = False
        if stream.position is not None:
            request.replay_preset, request.replay_id = pb.CUSTOM, stream.position
        elif stream.fallback is not None:
            request.replay_preset = _PRESETS[stream.fallback]
        else:
            start = await self.replay_storage.get_replay_id(stream.topic)
            if isinstance(start, bytes):
                request.replay_preset, request.replay_id = pb.CUSTOM, start
            elif start in _PRESETS:
                request.replay_preset = _PRESETS[ReplayOption(start)]
            elif isinstance(start, int) and start >= 0:
                # A number given by hand: Salesforce's ids are 8-byte big-endian counters.
                request.replay_preset, request.replay_id = pb.CUSTOM, start.to_bytes(8, "big")
            else:
                raise ValueError(f"cannot replay {stream.topic} from {start!r}")
        stream.from_replay_id = request.replay_preset == pb.CUSTOM
        # A new call starts with no demand; wait until the queue has room for one event.
        self._budget.forget(stream)
        self._budget.add(stream)
        stream.granted = 0
        loop = asyncio.get_running_loop()
        began = loop.time()
        while True:
            wanted = stream.granted or self._budget.grant(stream, self._queued(), stream.queued)
            if wanted:
                stream.granted = 0
                stream.waited = loop.time() - began
                request.num_requested = wanted
                return request
            # Waiting for the consumer is no refusal: subscribe() need not wait with it.
            stream.settle()
            stream.room.clear()
            await stream.room.wait()

    async def _follow(self, stream: _Stream) -> None:
        """Keep *stream* subscribed until it is stopped or fails for good."""
        loop = asyncio.get_running_loop()
        started, attempt, reauthenticated = loop.time(), 0, False
        while True:
            token = self.authenticator.access_token
            try:
                worked, error = await self._run_call(stream)
            except asyncio.CancelledError:
                raise
            except Exception as failure:  # a storage, a schema: not a stream failure
                self._end_subscription(stream, failure)
                return
            now = loop.time()
            # Waiting for the consumer to make room is not part of an outage.
            started += stream.waited
            if worked:
                started, attempt = now, 0
            reaction = reaction_to(error.status or "", error.error)
            if worked or reaction is not Reaction.REAUTHENTICATE:
                # The token in use was not refused: a later refusal is news.
                reauthenticated = False
            decision = self._decide(
                reaction,
                attempt,
                now - started,
                reauthenticated=reauthenticated,
                can_fall_back=self.replay_fallback is not None and stream.from_replay_id,
            )
            attempt += 1
            logger.info(
                "stream of %s ended (%s); next: %s", stream.topic, error, decision.step.value
            )
            if decision.step is Step.GIVE_UP:
                self._end_client(stream, self._timeout(error))
                return
            if decision.step is Step.FAIL:
                if reaction is Reaction.REAUTHENTICATE:
                    self._end_client(stream, error)
                else:
                    self._end_subscription(stream, error)
                return
            if decision.step is Step.FALL_BACK:
                logger.warning(
                    "replay id for %s refused (%s); subscribing with %s",
                    stream.topic,
                    error.error,
                    self.replay_fallback.name if self.replay_fallback else None,
                )
                stream.position, stream.fallback = None, self.replay_fallback
            elif decision.step is Step.REAUTHENTICATE:
                try:
                    await self._authenticate(token)
                except (AuthenticationError, TransportTimeoutError) as failure:
                    self._end_client(stream, failure)
                    return
                reauthenticated = True
            await asyncio.sleep(decision.delay)

    def _forget(self, stream: _Stream) -> None:
        """Stop counting *stream* as subscribed; its queued events stay counted."""
        if self._streams.get(stream.topic) is stream:
            del self._streams[stream.topic]
            if stream.queued:
                self._left_queued[stream.topic] = stream.queued
        self._budget.forget(stream)

    def _end_subscription(self, stream: _Stream, error: BaseException) -> None:
        """The topic cannot be followed: tell ``subscribe()`` or, later, ``receive()``."""
        logger.warning("subscription to %s ended: %s", stream.topic, error)
        self._forget(stream)
        self._top_up()
        if stream.settled.done():
            assert self._queue is not None
            self._queue.put_error(error)
        else:
            stream.settle(error)

    def _end_client(self, stream: _Stream, error: BaseException) -> None:
        """Nothing can be received any more (no token, no server): end every stream;
        :meth:`receive` raises *error* once the queue is drained."""
        for other in [stream, *self._streams.values()]:
            self._forget(other)
            other.settle(error)
            if other is not stream and other.task is not None:
                other.task.cancel()
        logger.warning("Pub/Sub client stopped: %s", error)
        assert self._queue is not None
        self._queue.fail(error)

    async def _run_call(self, stream: _Stream) -> tuple[bool, PubSubServerError]:
        """Run one ``Subscribe`` call until it ends; return whether it worked (delivered
        something, or stayed open :data:`SETTLE_SECONDS`) and how it ended."""
        requests = _Requests(await self._start_request(stream))
        stream.requests = requests
        call = self._api.Subscribe(requests, metadata=self._metadata())
        worked = False
        reading: asyncio.Future[Any] = asyncio.ensure_future(call.read())
        try:
            done, _ = await asyncio.wait((reading,), timeout=SETTLE_SECONDS)
            if not done:
                worked = True
                stream.settle()
            while True:
                while not reading.done():
                    await asyncio.wait((reading,), timeout=self.silence_timeout)
                    if not reading.done() and self._budget.outstanding(stream):
                        # A half-open connection: nothing will ever come on this call.
                        return worked, PubSubServerError(
                            f"Subscribe to {stream.topic} went silent",
                            {
                                "status": "UNAVAILABLE",
                                "details": f"no event or keepalive in {self.silence_timeout:g} s",
                            },
                        )
                response = reading.result()
                if response is grpc.aio.EOF:
                    break
                worked = True
                await self._on_response(stream, response)
                stream.settle()
                reading = asyncio.ensure_future(call.read())
        except grpc.aio.AioRpcError as rpc_error:
            return worked, from_rpc_error(rpc_error, f"Subscribe to {stream.topic}")
        finally:
            stream.requests = None
            call.cancel()
            requests.end()
            if not reading.done():
                reading.cancel()
        code = await call.code()
        return worked, PubSubServerError(
            f"Subscribe to {stream.topic} ended by the server",
            {"status": code.name, "details": await call.details() or None},
        )

    async def _on_response(self, stream: _Stream, response: pb.FetchResponse) -> None:
        """Queue a response's events, or note a keepalive's position."""
        assert self._queue is not None
        if not response.events:
            if response.latest_replay_id:
                stream.position = response.latest_replay_id
                try:
                    await self._store_keepalive(stream, response.latest_replay_id)
                except Exception as error:  # only an optimisation: the stream goes on
                    logger.warning("keepalive position of %s not stored: %s", stream.topic, error)
            self._ask(stream)
            return
        batch: list[Message] = []
        for consumer_event in response.events:
            event = consumer_event.event
            schema = self._schemas.cached(event.schema_id)
            if schema is None:
                schema = await self._schemas.get(event.schema_id)
            try:
                payload = decode_payload(schema, event.payload)
            except ValueError as error:
                self._queue.extend(batch)
                stream.queued += len(batch)
                batch = []
                self._queue.put_error(
                    InvalidEventPayload(
                        f"event {event.id} on {stream.topic}: {error}",
                        stream.topic,
                        consumer_event.replay_id,
                        event.id,
                    )
                )
                continue
            batch.append(
                make_message(
                    stream.topic, consumer_event.replay_id, event.id, event.schema_id, payload
                )
            )
        self._queue.extend(batch)
        stream.queued += len(batch)
        stream.position = response.events[-1].replay_id
        # Only this stream's demand fell: the room the others may use did not change.
        self._budget.received(stream, len(response.events))
        self._ask(stream)

    async def _store_keepalive(self, stream: _Stream, latest: bytes) -> None:
        """Move the stored position to a keepalive's, if nothing of the topic is pending.

        Salesforce advises it: the bus moves on with other orgs' events, and a restart
        from an old id of a quiet topic would otherwise fall out of retention.
        """
        if stream.queued or stream.topic in self._handed.last:
            return
        handed = self._last_handed.get(stream.topic)
        if self.replay_storage_policy is ReplayMarkerStoragePolicy.MANUAL and handed is not None:
            stored = await self.replay_storage.get_replay_marker(stream.topic)
            if stored is None or stored.replay_id != handed:
                return  # the user has not stored the last event handed over yet
        # Pub/Sub markers are ordered by when they are stored, not by date: "now" will do.
        marker = ReplayMarker(millis_text(datetime.now(timezone.utc)), latest)
        self._guard.check()
        await self.replay_storage.store_marker(stream.topic, marker)

    async def _store_handed(self) -> None:
        self._guard.check()
        try:
            await self._handed.store(self.replay_storage, _markers_of)
        except LeaseLost as lost:
            # A fenced store knows before the lease's own clock does: stop now.
            self._guard.lose(lost)
            await self._lose_lease(lost)
            raise


def _markers_of(handed: dict[str, Message]) -> dict[str, ReplayMarker]:
    """The markers of the messages handed over; "now" dates a message without a date."""
    now = datetime.now(timezone.utc)
    return {topic: marker_of(message, now) for topic, message in handed.items()}
