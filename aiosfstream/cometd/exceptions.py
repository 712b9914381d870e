"""Errors raised by the CometD layer.

::

    CometdException
    ├── ClientError
    │   └── ClientInvalidOperation
    ├── TransportError
    │   ├── HTTPStatusError
    │   │   └── HTTPRedirectError
    │   ├── InvalidMessage          (in aiosfstream.cometd.messages)
    │   ├── ResponseTooLargeError
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
    "HTTPRedirectError",
    "HTTPStatusError",
    "ResponseTooLargeError",
    "ServerError",
    "TransportConnectionClosed",
    "TransportError",
    "TransportInvalidOperation",
    "TransportTimeoutError",
    "parse_error",
]


#: Longest piece of server-supplied text quoted in an error message.
MAX_QUOTED_TEXT = 1000


def shorten(text: str, limit: int = MAX_QUOTED_TEXT) -> str:
    """Cut server-supplied *text* to about *limit* characters for an error message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class CometdException(Exception):
    """Root of every error raised by :mod:`aiosfstream.cometd`."""

    def _constructor_args(self) -> tuple[Any, ...]:
        """The arguments that build an equal error; used to build its twin."""
        return tuple(self.args)


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

    def _constructor_args(self) -> tuple[Any, ...]:
        return (self.args[0], self.status)


class HTTPRedirectError(HTTPStatusError):
    """The server answered with a redirect, which is never followed.

    Following it would send the session, or credentials, to a host the user did not
    name.

    :param status: the HTTP status code (301, 302, 303, 307, 308)
    :param location: the ``Location`` header, ``None`` if absent
    """

    def __init__(self, message: str, status: int, location: str | None) -> None:
        super().__init__(message, status)
        self.location = location

    def _constructor_args(self) -> tuple[Any, ...]:
        return (self.args[0], self.status, self.location)


class ResponseTooLargeError(TransportError):
    """A response body is larger than the client accepts.

    :param limit: the largest body accepted, in bytes
    """

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit

    def _constructor_args(self) -> tuple[Any, ...]:
        return (self.args[0], self.limit)


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
        #: What failed, in a few words, without the server's error text.
        self.message = message
        #: The server's reply, if there is one.
        self.response = response
        detail = self.error
        super().__init__(f"{message}: {shorten(detail)}" if detail else message)

    def _constructor_args(self) -> tuple[Any, ...]:
        return (self.message, self.response)

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
