"""What every transport offers, and the one place foreign errors become ours."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

import aiohttp

from aiosfstream.cometd.exceptions import (
    TransportConnectionClosed,
    TransportError,
)
from aiosfstream.cometd.messages import InvalidMessage
from aiosfstream.typing import Headers, JsonDumper, JsonLoader, Payload

__all__ = ["Transport", "UnsolicitedHandler", "translate_transport_errors"]

#: Called with messages that arrive without a request waiting for them (websocket).
UnsolicitedHandler = Callable[[Payload], Awaitable[None]]


@contextmanager
def translate_transport_errors(what: str) -> Iterator[None]:
    """Turn aiohttp, timeout and JSON errors into :class:`TransportError` subclasses."""
    try:
        yield
    except TransportError:
        raise
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as error:
        raise TransportError(f"{what}: no answer in time") from error
    except aiohttp.ServerDisconnectedError as error:
        raise TransportConnectionClosed(f"{what}: the server closed the connection") from error
    except aiohttp.ClientError as error:
        raise TransportError(f"{what}: {type(error).__name__}: {error}") from error
    except RecursionError as error:
        raise InvalidMessage(f"{what}: the response is nested too deeply to decode") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidMessage(f"{what}: the response is not valid JSON ({error})") from error
    except ValueError as error:
        # Alternative JSON libraries (orjson, ...) raise ValueError subclasses.
        raise InvalidMessage(f"{what}: the response could not be decoded ({error})") from error


class Transport(ABC):
    """Moves Bayeux messages to the server and back; knows nothing of the protocol.

    :param url: the Bayeux endpoint
    :param session: the HTTP session shared by every request of one client
    :param json_dumps: JSON encoder
    :param json_loads: JSON decoder
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        json_dumps: JsonDumper,
        json_loads: JsonLoader,
        ssl: object = None,
        proxy: str | None = None,
    ) -> None:
        self.url = url
        self._session = session
        self._dumps = json_dumps
        self._loads = json_loads
        self._ssl = ssl
        self._proxy = proxy
        self.unsolicited: UnsolicitedHandler | None = None

    @abstractmethod
    async def send(self, payload: Payload, headers: Headers, *, timeout: float | None) -> Payload:
        """Send *payload*; return the messages that answer it.

        :param headers: HTTP headers, as prepared by the extensions
        :param timeout: seconds to wait for the answer, ``None`` for no limit
        """

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
