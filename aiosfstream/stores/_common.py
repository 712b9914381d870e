"""Argument checks shared by the storages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import ReplayMarker, _check_marker, _describe_id

__all__ = [
    "IdRange",
    "check_marker",
    "check_markers",
    "check_subscription",
]


class IdRange(NamedTuple):
    """The replay ids a storage can hold: *low* to *high*, both included."""

    low: int
    high: int
    #: How error messages describe the range.
    text: str

    def check(self, owner: str, subscription: str, marker: ReplayMarker) -> ReplayMarker:
        """Return *marker*, or raise :exc:`ReplayError` if its id is out of the range."""
        replay_id = marker.replay_id
        if self.low <= replay_id <= self.high:
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


def check_marker(
    subscription: object, replay_marker: object, name: str = "replay_marker"
) -> ReplayMarker:
    """Return *replay_marker* as a :class:`ReplayMarker`, or raise :exc:`TypeError`.

    *name* is the argument's name in the error message.
    """
    check_subscription(subscription)
    return _check_marker(name, replay_marker)


def check_markers(markers: object) -> dict[str, ReplayMarker]:
    """Return the markers of a ``store_markers`` call, or raise :exc:`TypeError`."""
    if not isinstance(markers, Mapping):
        raise TypeError(f"markers must be a Mapping, got {type(markers).__name__}")
    return {
        check_subscription(subscription): _check_marker(f"markers[{subscription!r}]", marker)
        for subscription, marker in markers.items()
    }
