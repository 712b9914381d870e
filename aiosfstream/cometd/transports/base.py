"""What every transport offers, and the one place foreign errors become ours."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from ssl import SSLContext
from types import TracebackType

import aiohttp

from aiosfstream.cometd.constants import DEFAULT_MAX_RESPONSE_BYTES
from aiosfstream.cometd.exceptions import (
    HTTPRedirectError,
    HTTPStatusError,
    TransportConnectionClosed,
    TransportError,
    TransportTimeoutError,
    shorten,
)
from aiosfstream.cometd.messages import InvalidMessage
from aiosfstream.typing import Headers, JsonDumper, JsonLoader, Payload

__all__ = [
    "Pacer",
    "Receiver",
    "SSLOption",
    "Transport",
    "UnsolicitedHandler",
    "check_max_response_bytes",
    "redirect_error",
    "translate_transport_errors",
]

#: Called with messages that arrive without a request waiting for them (websocket).
UnsolicitedHandler = Callable[[Payload], Awaitable[None]]
#: Called with each group of messages of a response, in order, as they are decoded; the
#: transport reads no further until it returns, so waiting in it holds the server back.
Receiver = Callable[[Payload], Awaitable[None]]
#: Awaited before the transport takes in more of an answer; it returns once the
#: receiver has room for more.
Pacer = Callable[[], Awaitable[None]]
#: What aiohttp accepts as ``ssl``; ``None`` means "verify certificates".
SSLOption = SSLContext | bool | aiohttp.Fingerprint | None


def redirect_error(what: str, status: int, location: str | None) -> HTTPRedirectError:
    """The error for a redirect, which a transport never follows."""
    target = f"to {shorten(location)}" if location else "without a Location"
    return HTTPRedirectError(
        f"{what}: the server redirected with HTTP {status} {target}; "
        "redirects are not followed on the Bayeux endpoint",
        status,
        location,
    )


def _status_error(what: str, status: int, detail: str, location: str | None) -> TransportError:
    if 300 <= status < 400:
        return redirect_error(what, status, location)
    if status >= 400:
        return HTTPStatusError(f"{what} failed with HTTP {status} ({shorten(detail)})", status)
    return TransportError(f"{what}: unexpected HTTP {status} ({shorten(detail)})")


@contextmanager
def translate_transport_errors(what: str, timeout: float | None = None) -> Iterator[None]:
    """Turn aiohttp, timeout and JSON errors into :class:`TransportError` subclasses.

    :param what: names the operation in the message, e.g. ``"/meta/connect request to URL"``
    :param timeout: the limit the operation had, quoted when it times out
    """
    try:
        yield
    except TransportError:
        raise
    except aiohttp.ServerTimeoutError:
        # aiohttp's "Timeout on reading data from socket" adds nothing to this.
        raise TransportTimeoutError(f"{what}: no answer {_within(timeout)}") from None
    except asyncio.TimeoutError as error:
        raise TransportTimeoutError(f"{what}: no answer {_within(timeout)}") from error
    except (aiohttp.ServerDisconnectedError, ConnectionResetError) as error:
        raise TransportConnectionClosed(f"{what}: the server closed the connection") from error
    except aiohttp.ClientResponseError as error:
        # A websocket upgrade that was refused, or a session with raise_for_status.
        location = error.headers.get("Location") if error.headers is not None else None
        raise _status_error(what, error.status, error.message, location) from error
    except aiohttp.ClientError as error:
        # aiohttp's text may quote the server (a malformed header, say): cut it short.
        raise TransportError(f"{what}: {type(error).__name__}: {shorten(str(error))}") from error
    except RecursionError as error:
        raise InvalidMessage(f"{what}: the response is nested too deeply to decode") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidMessage(
            f"{what}: the response is not valid JSON ({shorten(str(error))})"
        ) from error
    except ValueError as error:
        # Alternative JSON libraries (orjson, ...) raise ValueError subclasses.
        raise InvalidMessage(
            f"{what}: the response could not be decoded ({shorten(str(error))})"
        ) from error


def _within(timeout: float | None) -> str:
    return "in time" if timeout is None else f"within {timeout:g} s"


def check_max_response_bytes(value: object) -> int:
    """Return *value* if it is a usable response size limit, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_response_bytes must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"max_response_bytes must be positive, got {value!r}")
    return value


class Transport(ABC):
    """Moves Bayeux messages to the server and back; knows nothing of the protocol.

    Redirects are never followed: they raise :class:`HTTPRedirectError`.

    :param url: the Bayeux endpoint
    :param session: the HTTP session shared by every request of one client
    :param json_dumps: JSON encoder
    :param json_loads: JSON decoder
    :param ssl: aiohttp's ``ssl`` option; ``None`` verifies certificates
    :param proxy: URL of an HTTP proxy
    :param max_response_bytes: the largest response body (long polling) or frame
        (websocket) accepted; a larger one raises :class:`ResponseTooLargeError`
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        json_dumps: JsonDumper,
        json_loads: JsonLoader,
        ssl: SSLOption = None,
        proxy: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.url = url
        self.max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._session = session
        self._dumps = json_dumps
        self._loads = json_loads
        self._ssl: SSLContext | bool | aiohttp.Fingerprint = True if ssl is None else ssl
        self._proxy = proxy
        self.unsolicited: UnsolicitedHandler | None = None

    @abstractmethod
    async def send(self, payload: Payload, headers: Headers, *, timeout: float | None) -> Payload:
        """Send *payload*; return the messages that answer it.

        :param headers: HTTP headers, as prepared by the extensions
        :param timeout: seconds to wait for the answer, ``None`` for no limit
        """

    async def stream(
        self,
        payload: Payload,
        headers: Headers,
        *,
        timeout: float | None,
        deliver: Receiver,
        pace: Pacer | None = None,
    ) -> None:
        """Send *payload*; hand the messages that answer it to *deliver*, in order.

        *timeout* bounds the time spent waiting for the server, not the time spent in
        *deliver* or *pace*. This default awaits *pace* before it sends, since the
        answer comes whole: it delivers all of :meth:`send`'s answer at once.
        """
        if pace is not None:
            await pace()
        await deliver(await self.send(payload, headers, timeout=timeout))

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the transport's resources."""

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
