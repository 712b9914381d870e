"""Salesforce's refusals of Pub/Sub calls, read from gRPC errors in one place.

::

    ServerError                (aiosfstream.exceptions)
    └── PubSubServerError      a call failed: gRPC status, Salesforce's error code
        └── PublishError       some events of a publish failed; ``results`` has them all
    InvalidMessage             (aiosfstream.exceptions)
    └── InvalidEventPayload    an event's Avro payload does not match its schema
"""

from __future__ import annotations

from typing import Any, NamedTuple

import grpc

from aiosfstream.exceptions import InvalidMessage, ServerError

__all__ = [
    "InvalidEventPayload",
    "PubSubServerError",
    "PublishError",
    "PublishResult",
    "from_rpc_error",
]


class PubSubServerError(ServerError):
    """A Pub/Sub call failed.

    ``error`` is Salesforce's error code, such as
    ``sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted`` (``None`` when
    the failure came without one, a network failure for instance), :attr:`status` the
    gRPC status name, :attr:`error_message` the status description and :attr:`rpc_id`
    the id Salesforce support asks for.

    :param message: what failed, in a few words
    :param response: ``{"error": code, "status": ..., "details": ..., "rpc_id": ...}``
    """

    def __init__(self, message: str, response: dict[str, Any] | None = None) -> None:
        super().__init__(message, response)
        parts = [part for part in (self.status, self.error) if part]
        described = f"{message} ({', '.join(parts)})" if parts else message
        details = self.error_message
        self.args = (f"{described}: {details}" if details else described,)

    def _field(self, name: str) -> str | None:
        value = (self.response or {}).get(name)
        return value if isinstance(value, str) and value else None

    @property
    def status(self) -> str | None:
        """The gRPC status name, e.g. ``INVALID_ARGUMENT``."""
        return self._field("status")

    @property
    def error_message(self) -> str | None:
        """The status description, which ends with ``rpcId: <uuid>`` from Salesforce."""
        return self._field("details")

    @property
    def rpc_id(self) -> str | None:
        """Salesforce's id of the failed call (``rpc-id`` trailer)."""
        return self._field("rpc_id")


class PublishResult(NamedTuple):
    """What happened to one published event.

    :param event_id: the event's id (its correlation key)
    :param replay_id: its replay id on the bus; ``None`` if it failed
    :param error: Salesforce's error for this event, ``None`` on success
    """

    event_id: str
    replay_id: bytes | None
    error: str | None = None


class PublishError(PubSubServerError):
    """Salesforce refused some events of a :meth:`~aiosfstream.pubsub.PubSubClient.publish`.

    ``results`` holds one :class:`PublishResult` per event, the accepted ones included.
    """

    def __init__(
        self,
        message: str,
        response: dict[str, Any] | None = None,
        results: list[PublishResult] | None = None,
    ) -> None:
        super().__init__(message, response)
        self.results = list(results or [])


class InvalidEventPayload(InvalidMessage):
    """An event's payload could not be decoded with its schema.

    Pub/Sub does not check what publishers send, so such an event can arrive; the
    stream goes on after it.  ``topic``, ``replay_id`` and ``event_id`` say which
    event it was.
    """

    def __init__(self, message: str, topic: str, replay_id: bytes, event_id: str) -> None:
        super().__init__(message)
        self.topic = topic
        self.replay_id = replay_id
        self.event_id = event_id


def _trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in error.trailing_metadata() or ():
        if name.lower() == key and isinstance(value, str):
            return value
    return None


def from_rpc_error(error: grpc.aio.AioRpcError, what: str) -> PubSubServerError:
    """Read a failed call: its status, description and Salesforce's trailers."""
    response: dict[str, Any] = {
        "error": _trailer(error, "error-code"),
        "status": error.code().name,
        "details": error.details() or None,
        "rpc_id": _trailer(error, "rpc-id"),
    }
    return PubSubServerError(what, response)
