"""The Pub/Sub emulator: a grpc.aio server on 127.0.0.1 in front of one emulated org."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from ..._pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from ..server import SalesforceEmulator
from .bus import DEFAULT_RETENTION, Bus, Topic
from .faults import FaultPlan
from .payloads import EventDefaults, complete_payload
from .servicer import PubSubService
from .subscription import StreamLimits, SubscribeStreamStats

if TYPE_CHECKING:
    from .certificate import ServerCertificate

__all__ = ["EXPIRED_TOKEN_CHOICES", "HOST", "PubSubEmulator"]

HOST = "127.0.0.1"
#: What an open stream does when its token dies: end with UNAUTHENTICATED, or keep serving.
EXPIRED_TOKEN_CHOICES = ("end", "keep")
_STOP_GRACE = 0.5


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


class PubSubEmulator:
    """A local stand-in for Salesforce's Pub/Sub API, serving the org of *org*.

    Tokens, the clock and the org id are *org*'s, so one :class:`SalesforceEmulator` serves
    CometD and Pub/Sub clients at once: ``org.revoke_tokens()`` refuses both, and
    ``org.advance(seconds)`` ages the retained events of both.

    :param tls: serve TLS with a certificate generated at start (:attr:`certificate`);
        plaintext otherwise.
    :param keepalive_interval: seconds between keepalive responses while a Subscribe
        stream has demand and nothing to deliver (Salesforce: at most 270).
    :param max_requested: the most events one ``num_requested`` asks for, and the most a
        stream may have outstanding (Salesforce: 100).
    :param idle_timeout: seconds a stream with no demand may stay silent after its last
        response before it is closed (Salesforce: 60).
    :param expired_token_on_stream: ``"end"`` ends an open stream whose token is revoked
        or timed out with ``UNAUTHENTICATED``; ``"keep"`` keeps serving it.
    :param publish_idle_timeout: seconds a PublishStream may go without a request before
        it is closed (Salesforce: 70).
    :param retention: seconds events are kept, by the org's clock (Salesforce: 72 hours).
    """

    def __init__(
        self,
        org: SalesforceEmulator,
        *,
        tls: bool = False,
        keepalive_interval: float = 270.0,
        max_requested: int = 100,
        idle_timeout: float = 60.0,
        expired_token_on_stream: str = "end",
        publish_idle_timeout: float = 70.0,
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        if not isinstance(org, SalesforceEmulator):
            raise TypeError(f"org must be a SalesforceEmulator, got {type(org).__name__}")
        if isinstance(max_requested, bool) or not isinstance(max_requested, int):
            raise TypeError(f"max_requested must be an int, got {type(max_requested).__name__}")
        if max_requested < 1:
            raise ValueError(f"max_requested must be at least 1, got {max_requested}")
        if expired_token_on_stream not in EXPIRED_TOKEN_CHOICES:
            raise ValueError(
                f"expired_token_on_stream must be one of {EXPIRED_TOKEN_CHOICES}, "
                f"got {expired_token_on_stream!r}"
            )
        self.org = org
        self._tls = bool(tls)
        self._bus = Bus(org.now, _positive("retention", retention))
        self._faults = FaultPlan()
        self._service = PubSubService(
            org,
            self._bus,
            self._faults,
            StreamLimits(
                max_requested=max_requested,
                keepalive_interval=_positive("keepalive_interval", keepalive_interval),
                idle_timeout=_positive("idle_timeout", idle_timeout),
                end_on_expired_token=expired_token_on_stream == "end",
            ),
            _positive("publish_idle_timeout", publish_idle_timeout),
        )
        self._commit_numbers = itertools.count(1)
        self._server: aio.Server | None = None
        self._port = 0
        self._certificate: ServerCertificate | None = None

    def __repr__(self) -> str:
        where = f"{HOST}:{self._port}" if self._port else "not started"
        state = "running" if self.running else "stopped"
        return f"<PubSubEmulator {where} {'tls' if self._tls else 'plaintext'} {state}>"

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """``True`` while the server accepts calls."""
        return self._server is not None

    @property
    def endpoint(self) -> str:
        """Where clients connect: ``127.0.0.1:PORT``."""
        if not self._port:
            raise RuntimeError("the Pub/Sub emulator has not been started yet")
        return f"{HOST}:{self._port}"

    @property
    def certificate(self) -> bytes | None:
        """The PEM certificate clients must trust when ``tls=True`` (``None`` otherwise)."""
        return None if self._certificate is None else self._certificate.certificate

    async def start(self) -> None:
        """Start serving (on the same port as before after a :meth:`stop`)."""
        if self._server is not None:
            raise RuntimeError("the Pub/Sub emulator is already running")
        server = aio.server()
        pb_grpc.add_PubSubServicer_to_server(self._service, server)
        address = f"{HOST}:{self._port}"
        if self._tls:
            from .certificate import generate_certificate

            self._certificate = self._certificate or generate_certificate()
            credentials = grpc.ssl_server_credentials(
                [(self._certificate.private_key, self._certificate.certificate)]
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if not port:
            raise OSError(f"the Pub/Sub emulator cannot listen on {address}")
        await server.start()
        self._port = port
        self._server = server

    async def stop(self) -> None:
        """Reset the open streams (``UNAVAILABLE``), then stop serving. Events stay."""
        server = self._server
        if server is None:
            return
        self._server = None
        self._service.drop_streams()
        await server.stop(_STOP_GRACE)

    async def __aenter__(self) -> PubSubEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- topics and events -------------------------------------------------------------------

    def topics(self) -> list[str]:
        """The names of the org's topics."""
        return list(self._bus.topics)

    def _topic_named(self, topic: str) -> Topic:
        found = self._bus.topics.get(topic)
        if found is None:
            raise ValueError(f"topic: no topic {topic!r}; the topics are {self.topics()}")
        return found

    def schema_id(self, topic: str) -> str:
        """The 22-character id of *topic*'s current schema."""
        return self._topic_named(topic).schema.schema_id

    def schema(self, topic: str) -> dict[str, Any]:
        """*topic*'s current Avro schema (a copy)."""
        return copy.deepcopy(self._topic_named(topic).schema.definition)

    def add_field(self, topic: str, name: str, avro_type: Any = "string") -> str:
        """Add an optional field to *topic*'s schema, as a change of its definition would.

        Later events use the new schema and its new id; earlier ones keep theirs. Return
        the new schema id.
        """
        self._topic_named(topic)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty field name, got {name!r}")
        return self._bus.add_field(topic, name, avro_type)

    def publish(self, topic: str, payload: Mapping[str, Any]) -> bytes:
        """Publish an event from inside the org; return its replay id.

        Fields left out are filled in as the platform would (``CreatedDate``, a whole
        ``ChangeEventHeader``); for change events, ``changedFields``, ``nulledFields`` and
        ``diffFields`` are given as field names and sent as bitmaps.
        """
        target = self._topic_named(topic)
        schema = target.schema
        user = self.org.state.users[self.org.credentials.username]
        defaults = EventDefaults(
            now_ms=int(self.org.now() * 1000),
            user_id=user.user_id,
            commit_number=next(self._commit_numbers),
            new_record_id=lambda: self.org.state.ids.new("001"),
        )
        completed = complete_payload(schema, payload, defaults)
        try:
            encoded = schema.encode(completed.record)
        except (TypeError, ValueError) as error:
            raise ValueError(f"payload: does not fit the schema of {topic}: {error}") from None
        stored = self._bus.append(
            target, encoded, schema_id=schema.schema_id, fields=completed.fields
        )
        return stored.replay_id

    def events(self, topic: str) -> list[tuple[bytes, str, dict[str, Any] | None]]:
        """The retained events of *topic*, oldest first: ``(replay_id, event_id, payload)``.

        *payload* is the event's fields (change-event bitmaps as field names), or ``None``
        for an event published with a payload that is not Avro of its schema.
        """
        self._topic_named(topic)
        return [
            (event.replay_id, event.event_id, copy.deepcopy(event.fields))
            for event in self._bus.iter_events(topic)
        ]

    def purge_retention(self, before: float | None = None) -> int:
        """Drop events created before *before* (org clock; default: past the retention).

        Return how many were dropped. A replay id older than a dropped event is then
        refused as ``...replayid.corrupted``.
        """
        if before is None:
            return self._bus.purge_expired()
        return self._bus.purge(float(before))

    # -- observing and failing ---------------------------------------------------------------

    def stats(self) -> list[SubscribeStreamStats]:
        """What the server saw of each Subscribe stream so far, oldest first (copies)."""
        return [replace(stream.stats) for stream in self._service.subscribe_streams]

    def drop_streams(self) -> int:
        """Reset every open Subscribe and PublishStream call (``UNAVAILABLE``); return how many."""
        return self._service.drop_streams()

    def fail_next(
        self,
        rpc: str,
        status: str | grpc.StatusCode,
        error_code: str | None,
        *,
        times: int = 1,
        after_events: int = 0,
    ) -> None:
        """Make the next *times* calls of *rpc* fail with *status* and *error_code*.

        :param rpc: ``Subscribe``, ``Publish``, ``GetTopic``, ``GetSchema`` or
            ``PublishStream``.
        :param status: a :class:`grpc.StatusCode` or its name, e.g. ``"UNAVAILABLE"``.
        :param error_code: the ``error-code`` trailer, with or without the
            ``sfdc.platform.eventbus.grpc.`` prefix; ``None`` sends none.
        :param after_events: Subscribe only: deliver that many events first, then fail
            (a stream killed mid-batch).
        """
        self._faults.add(rpc, status, error_code, times=times, after_events=after_events)
