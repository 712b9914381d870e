"""Argument checks shared by the storages."""

from __future__ import annotations

from aiosfstream.replay import ReplayMarker

__all__ = ["check_marker", "check_subscription"]


def check_subscription(subscription: object) -> str:
    """Return *subscription*, or raise :exc:`TypeError` if it is not a ``str``."""
    if not isinstance(subscription, str):
        raise TypeError(f"subscription must be a str, got {type(subscription).__name__}")
    return subscription


def check_marker(subscription: object, replay_marker: object) -> ReplayMarker:
    """Return *replay_marker* as a :class:`ReplayMarker`, or raise :exc:`TypeError`."""
    check_subscription(subscription)
    if not isinstance(replay_marker, tuple) or len(replay_marker) != 2:
        raise TypeError(f"replay_marker must be a ReplayMarker, got {type(replay_marker).__name__}")
    date, replay_id = replay_marker
    if not isinstance(date, str):
        raise TypeError(f"replay_marker.date must be a str, got {type(date).__name__}")
    if isinstance(replay_id, bool) or not isinstance(replay_id, int):
        raise TypeError(f"replay_marker.replay_id must be an int, got {type(replay_id).__name__}")
    return ReplayMarker(date, replay_id)
