"""The server's advice: how and when the client should reconnect."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Advice", "Reconnect"]


class Reconnect(str, enum.Enum):
    """Values of ``advice.reconnect`` (Bayeux 1.0, section 5.2.1)."""

    RETRY = "retry"
    HANDSHAKE = "handshake"
    NONE = "none"


#: Durations above this (one day, in milliseconds) are junk, not advice.
_MAX_MILLISECONDS = 86_400_000


def _seconds(value: Any, default: float) -> float:
    """Convert an advice field in milliseconds to float seconds, ignoring junk."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    if not 0 <= value <= _MAX_MILLISECONDS:  # also rejects NaN
        return default
    return float(value) / 1000.0


@dataclass(frozen=True)
class Advice:
    """Advice as last received from the server, with durations in seconds."""

    reconnect: Reconnect = Reconnect.RETRY
    #: How long the server may hold a ``/meta/connect`` request.
    timeout: float = 0.0
    #: How long the client should wait before the next ``/meta/connect``.
    interval: float = 0.0

    def updated(self, fields: Any) -> Advice:
        """Return this advice with the fields of a message's ``advice`` applied."""
        if not isinstance(fields, dict):
            return self
        try:
            reconnect = Reconnect(fields.get("reconnect", self.reconnect))
        except ValueError:
            reconnect = self.reconnect
        return Advice(
            reconnect=reconnect,
            timeout=_seconds(fields.get("timeout"), self.timeout),
            interval=_seconds(fields.get("interval"), self.interval),
        )
