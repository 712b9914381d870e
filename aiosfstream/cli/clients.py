"""The client ``listen`` reads events through: CometD's, or with ``--pubsub`` the Pub/Sub API's.

Both have the same ``open``, ``subscribe``, ``receive`` and ``close``; they differ in how
they are built, in where they say they are connected, and in where an event keeps its
replay marker. :class:`EventSource` holds one client with those three differences settled.
The Pub/Sub client's modules (and grpcio) are imported only when ``--pubsub`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiosfstream.auth import AuthenticatorBase
from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.settings import ListenSettings
from aiosfstream.client import Client
from aiosfstream.ha.lease import Lease
from aiosfstream.replay import (
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    marker_to_store,
)
from aiosfstream.typing import Message

__all__ = ["EventClient", "EventSource", "PubSubAddress", "cometd_source", "pubsub_source"]

#: Where an event says it came from and the marker to store for it (``None``: it has none).
MarkerReader = Callable[[Message], tuple[str, ReplayMarker | None]]


class EventClient(Protocol):
    """What ``listen`` does with a client, the same for both APIs."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str, /) -> None: ...

    async def receive(self) -> Message: ...

    @property
    def lease(self) -> Lease | None: ...


@dataclass(frozen=True)
class EventSource:
    """A client, how ``-v`` names what it is connected to, and its events' markers."""

    client: EventClient
    #: The API's name and address once the client is open, for the ``-v`` line.
    connected_to: Callable[[], str]
    marker_of: MarkerReader


@dataclass(frozen=True)
class PubSubAddress:
    """Where the Pub/Sub API is: ``host:port``, and whether TLS is left out (emulators)."""

    endpoint: str | None = None
    plaintext: bool = False


def _cometd_marker(message: Message) -> tuple[str, ReplayMarker | None]:
    return message["channel"], marker_to_store(message)


def cometd_source(
    settings: ListenSettings,
    authenticator: AuthenticatorBase,
    storage: ReplayMarkerStorage,
    lease: Lease | None,
) -> EventSource:
    """The CometD client of ``listen``; markers are stored by the command (MANUAL).

    :param lease: with ``--lease``: the client stops at once, with
        :exc:`~aiosfstream.exceptions.LeaseLost`, when the lease is lost
    """
    client = Client(
        authenticator,
        replay=storage,
        replay_fallback=settings.replay_fallback,
        replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
        connection_timeout=settings.connection_timeout,
        api_version=settings.api_version,
        lease=lease,
    )

    def connected_to() -> str:
        return f"Streaming API at {client.url}"

    return EventSource(client, connected_to, _cometd_marker)


def pubsub_source(
    settings: ListenSettings,
    authenticator: AuthenticatorBase,
    storage: ReplayMarkerStorage,
    address: PubSubAddress,
    lease: Lease | None,
) -> EventSource:
    """The Pub/Sub client of ``listen --pubsub``; markers are stored by the command.

    :param lease: as for :func:`cometd_source`

    :raises UsageError: the ``pubsub`` extra is not installed
    """
    try:
        from aiosfstream.pubsub import DEFAULT_ENDPOINT, PubSubClient, marker_of
        from aiosfstream.pubsub.flow import MAX_REQUESTED
    except ImportError as error:
        # The package's message names the extra to install.
        raise UsageError(f"--pubsub cannot run here: {error}") from None

    try:
        client = PubSubClient(
            authenticator,
            replay=storage,
            replay_fallback=settings.replay_fallback,
            replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
            connection_timeout=settings.connection_timeout,
            # A full share for each topic: a topic subscribed first and quiet since would
            # otherwise hold the whole room, and the next one could not start.
            max_pending_count=MAX_REQUESTED * len(settings.channels),
            endpoint=address.endpoint or DEFAULT_ENDPOINT,
            ssl=False if address.plaintext else None,
            lease=lease,
        )
    except ValueError as error:  # the endpoint is not host:port
        raise UsageError(f"--pubsub-endpoint: {error}") from None

    def connected_to() -> str:
        return f"Pub/Sub API at {client.endpoint}"

    def pubsub_marker(message: Message) -> tuple[str, ReplayMarker | None]:
        return message["topic"], marker_of(message)

    return EventSource(client, connected_to, pubsub_marker)
