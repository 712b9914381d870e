"""What the durable storages share: their lifecycle, their ``repr`` and their argument checks."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import ClassVar, NamedTuple, TypeVar

from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import (
    DefaultReplayIdMixin,
    ReplayMarker,
    ReplayMarkerStorage,
    _check_marker,
    _describe_id,
)

__all__ = [
    "DurableStorage",
    "IdRange",
    "check_subscription",
]

_Storage = TypeVar("_Storage", bound="DurableStorage")


class IdRange(NamedTuple):
    """The int replay ids a storage can hold: *low* to *high*, both included.

    Bytes ids (Pub/Sub) have no range: every storage holds them whole.
    """

    low: int
    high: int
    #: How error messages describe the range.
    text: str

    def check(self, owner: str, subscription: str, marker: ReplayMarker) -> ReplayMarker:
        """Return *marker*, or raise :exc:`ReplayError` if its int id is out of the range."""
        replay_id = marker.replay_id
        if isinstance(replay_id, bytes) or self.low <= replay_id <= self.high:
            return marker
        raise ReplayError(
            f"{owner} cannot hold the replay id {_describe_id(replay_id)} of channel "
            f"{subscription!r}: it holds replay ids {self.text}"
        )


def check_subscription(subscription: object) -> str:
    """Return *subscription*, or raise :exc:`TypeError` if it is not a ``str``."""
    if not isinstance(subscription, str):
        raise TypeError(f"subscription must be a str, got {type(subscription).__name__}")
    return subscription


class DurableStorage(DefaultReplayIdMixin, ReplayMarkerStorage):
    """A storage that is opened on first use (or by ``async with``) and closed once.

    :param where: names the storage in messages and in its ``repr``: its path or URL,
        without secrets
    :param default_id: the replay id of a channel without a marker
    :raises TypeError: *default_id* is not an ``int``
    :raises ValueError: *default_id* is below ``-2``
    """

    #: The replay ids the storage can hold.
    _ids: ClassVar[IdRange]

    def __init__(self, where: str, default_id: int) -> None:
        super().__init__(default_id=default_id)
        self._where = where
        self._closed = False

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` was called."""
        return self._closed

    @property
    def _owner(self) -> str:
        """The storage, as error messages name it."""
        return f"{type(self).__name__} {self._where}"

    def _check_open(self) -> None:
        """:raises ReplayError: the storage is closed"""
        if self._closed:
            raise ReplayError(f"{type(self).__name__} for {self._where} is closed")

    def _checked(
        self, subscription: object, marker: object, name: str = "replay_marker"
    ) -> ReplayMarker:
        """Return *marker*, the argument *name*, if the storage can hold it.

        :raises TypeError: *subscription* is not a ``str`` or *marker* not a marker
        :raises ValueError: the replay id is empty ``bytes``
        :raises ReplayError: the replay id is out of the storage's range
        """
        channel = check_subscription(subscription)
        return self._ids.check(self._owner, channel, _check_marker(name, marker))

    def _checked_batch(self, markers: object) -> dict[str, ReplayMarker]:
        """Return the markers of a ``store_markers`` call if the storage can hold each.

        :raises TypeError: *markers* is not a mapping of channels to markers
        :raises ValueError: a replay id is empty ``bytes``
        :raises ReplayError: a replay id is out of the storage's range
        """
        if not isinstance(markers, Mapping):
            raise TypeError(f"markers must be a Mapping, got {type(markers).__name__}")
        return {
            subscription: self._checked(subscription, marker, f"markers[{subscription!r}]")
            for subscription, marker in markers.items()
        }

    @abstractmethod
    def _settings(self) -> str:
        """What ``repr`` shows after the class name."""

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__}{state} {self._settings()}>"

    @abstractmethod
    async def _open(self) -> None:
        """Make sure the storage can be used: open the database, or reach the server."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the storage holds; calling it again does nothing."""

    async def __aenter__(self: _Storage) -> _Storage:
        """Open the storage now, so that a bad path, URL or password fails here.

        :raises ReplayError: the database cannot be opened, or the server cannot be
            reached or refuses the credentials
        """
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
