"""Hooks that see every message the client sends and receives."""

from __future__ import annotations

from abc import ABC, abstractmethod

from aiosfstream.typing import Headers, Payload

__all__ = ["AuthExtension", "Extension"]


class Extension(ABC):
    """Changes outgoing and incoming messages, for example to add an ``ext`` field."""

    @abstractmethod
    async def outgoing(self, payload: Payload, headers: Headers) -> None:
        """Edit *payload* and *headers* in place before they are sent."""

    @abstractmethod
    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        """Edit *payload* in place after it was received."""


class AuthExtension(Extension):
    """An extension that can also obtain credentials.

    The client calls :meth:`authenticate` when the server says the current credentials
    are not good (HTTP 401, or a Bayeux ``401`` error), then handshakes again.
    """

    @abstractmethod
    async def authenticate(self) -> None:
        """Obtain fresh credentials; raise an exception if that is not possible."""
