"""Errors raised by the CometD layer.

::

    CometdException
    ├── ClientError
    │   └── ClientInvalidOperation
    ├── TransportError
    │   ├── HTTPStatusError
    │   ├── TransportInvalidOperation
    │   ├── TransportTimeoutError
    │   └── TransportConnectionClosed
    └── ServerError
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

__all__ = [
    "BayeuxError",
    "ClientError",
    "ClientInvalidOperation",
    "CometdException",
    "HTTPStatusError",
    "ServerError",
    "TransportConnectionClosed",
    "TransportError",
    "TransportInvalidOperation",
    "TransportTimeoutError",
    "parse_error",
]


class CometdException(Exception):
    """Root of every error raised by :mod:`aiosfstream.cometd`."""


class ClientError(CometdException):
    """The client was used in a way it does not support."""


class ClientInvalidOperation(ClientError):
    """The operation is not allowed in the client's current state."""


class TransportError(CometdException):
    """The connection to the server failed."""


class HTTPStatusError(TransportError):
    """The server answered with an HTTP error status.

    :param status: the HTTP status code
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TransportInvalidOperation(TransportError):
    """The transport was asked to do something it cannot do in its state."""


class TransportTimeoutError(TransportError):
    """The server could not be reached within the allowed time."""


class TransportConnectionClosed(TransportError):
    """The server closed the connection."""


class BayeuxError(NamedTuple):
    """A Bayeux error string ``"code:args:message"`` split into its parts."""

    code: int | None
    args: list[str]
    message: str


_ERROR_PATTERN = re.compile(r"^(\d{3}):([^:]*):(.*)$", re.DOTALL)


def parse_error(error: object) -> BayeuxError:
    """Split a Bayeux ``error`` field; text that is not in that form becomes the message.

    Bayeux 1.0, section 5.6: ``error = code ":" [args] ":" message``, args separated by commas.
    """
    if not isinstance(error, str):
        return BayeuxError(None, [], "" if error is None else str(error))
    match = _ERROR_PATTERN.match(error)
    if match is None:
        return BayeuxError(None, [], error)
    code, args, message = match.groups()
    return BayeuxError(int(code), args.split(",") if args else [], message)


class ServerError(CometdException):
    """The server answered a request with ``successful: false``.

    :param message: what failed, in a few words
    :param response: the server's reply, when there is one
    """

    def __init__(self, message: str, response: dict[str, Any] | None = None) -> None:
        #: The server's reply, if there is one.
        self.response = response
        detail = self.error
        super().__init__(f"{message}: {detail}" if detail else message)

    @property
    def error(self) -> str | None:
        """The raw ``error`` field of the reply."""
        if self.response is None:
            return None
        error = self.response.get("error")
        return error if isinstance(error, str) else None

    @property
    def _parsed(self) -> BayeuxError:
        return parse_error(self.error)

    @property
    def error_code(self) -> int | None:
        """The numeric code of the error, e.g. ``403``."""
        return self._parsed.code

    @property
    def error_args(self) -> list[str]:
        """The arguments of the error."""
        return self._parsed.args

    @property
    def error_message(self) -> str | None:
        """The human readable part of the error."""
        return self._parsed.message if self.error is not None else None
