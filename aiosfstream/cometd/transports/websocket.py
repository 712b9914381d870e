"""Bayeux over a websocket: one socket carries requests, replies and events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import aiohttp

from aiosfstream.cometd.exceptions import (
    ResponseTooLargeError,
    TransportConnectionClosed,
    TransportError,
    TransportInvalidOperation,
    TransportTimeoutError,
    shorten,
)
from aiosfstream.cometd.messages import InvalidMessage, validate_payload
from aiosfstream.cometd.transports.base import (
    Transport,
    redirect_error,
    translate_transport_errors,
)
from aiosfstream.typing import Headers, Message, Payload

__all__ = ["WebSocketTransport"]

logger = logging.getLogger(__name__)

#: Seconds between pings; a server that does not answer one is taken as gone.
HEARTBEAT = 30.0
#: Seconds to wait for the server to acknowledge a close: a hostile or dead server
#: must not hold up a reconnection or ``aclose()``.
CLOSE_TIMEOUT = 2.0
#: Close codes of aiohttp's reader for frames it could not decode.
_MALFORMED = frozenset(
    {
        aiohttp.WSCloseCode.PROTOCOL_ERROR,
        aiohttp.WSCloseCode.INVALID_TEXT,
        aiohttp.WSCloseCode.UNSUPPORTED_DATA,
    }
)


class _Connection:
    """One socket, the requests waiting on it, and why it ended (``None`` while live)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.socket = socket
        self.waiting: dict[str, asyncio.Future[Message]] = {}
        self.failure: BaseException | None = None

    @property
    def usable(self) -> bool:
        return self.failure is None and not self.socket.closed


class WebSocketTransport(Transport):
    """Sends payloads as text frames; a reader task routes what comes back.

    A reply is matched to its request by ``id``; everything else goes to
    :attr:`~aiosfstream.cometd.transports.base.Transport.unsolicited`.

    When the socket fails (a frame that is not a Bayeux payload, one larger than
    ``max_response_bytes``, a close, a drop, an error of the unsolicited handler),
    it is closed and every waiting request raises the cause. A failure with no
    request waiting is raised by the next :meth:`send`, so that none goes unseen;
    the send after that opens a new socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connection: _Connection | None = None
        #: A failure no request has raised yet.
        self._unseen: BaseException | None = None
        # Kept so that the tasks are not collected, and can be awaited by aclose().
        self._readers: set[asyncio.Task[None]] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    @property
    def _ws_url(self) -> str:
        if self.url.startswith("https://"):
            return "wss://" + self.url[len("https://") :]
        if self.url.startswith("http://"):
            return "ws://" + self.url[len("http://") :]
        return self.url

    async def send(self, payload: Payload, headers: Headers, *, timeout: float | None) -> Payload:
        if not payload or any("id" not in message for message in payload):
            raise TransportInvalidOperation("every message sent over a websocket needs an id")
        connection = self._connection
        if connection is not None and not connection.usable:
            self._retire(connection, TransportConnectionClosed("the websocket was closed"))
        unseen, self._unseen = self._unseen, None
        if unseen is not None:
            raise unseen
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if connection is None or not connection.usable:
            with translate_transport_errors(f"websocket connection to {self._ws_url}", timeout):
                connection = await self._connect(headers, timeout)
            if connection.failure is not None:  # failed before this request was registered
                self._seen(connection.failure)
                raise connection.failure
        futures: dict[str, asyncio.Future[Message]] = {}
        for message in payload:
            key = str(message["id"])
            futures[key] = connection.waiting[key] = loop.create_future()
        what = f"{payload[0].get('channel', '?')} request over websocket to {self._ws_url}"
        try:
            with translate_transport_errors(what, timeout):
                text = self._dumps(payload)
                await connection.socket.send_str(
                    text.decode("utf-8") if isinstance(text, bytes) else text
                )
                remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
                _, pending = await asyncio.wait(futures.values(), timeout=remaining)
            if pending:
                for key in futures:
                    connection.waiting.pop(key, None)
                error = TransportTimeoutError(f"{what}: no answer within {timeout:g} s")
                # A reply that never comes suggests a dead socket: start afresh.
                self._retire(
                    connection,
                    TransportConnectionClosed(f"the websocket was abandoned: {error}"),
                    unseen=False,
                )
                raise error
            return [future.result() for future in futures.values()]
        except TransportConnectionClosed as error:
            # Writing failed: the socket is gone, whatever its reader has seen so far.
            self._retire(connection, error, unseen=False)
            raise
        finally:
            for key, future in futures.items():
                if connection.waiting.get(key) is future:
                    del connection.waiting[key]
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # mark as retrieved

    async def _connect(self, headers: Headers, timeout: float | None) -> _Connection:
        """The live connection, opened within *timeout* if there is none."""
        async with self._lock:
            connection = self._connection
            if connection is not None and connection.usable:
                return connection
            socket = await self._upgrade(headers, timeout)
            connection = self._connection = _Connection(socket)
            self._spawn(self._readers, self._read(connection), f"websocket reader {self._ws_url}")
            return connection

    async def _upgrade(
        self, headers: Headers, timeout: float | None
    ) -> aiohttp.ClientWebSocketResponse[bool]:
        """Open the socket, refusing redirects.

        ``ws_connect`` follows redirects and has no option to stop it, so the upgrade
        goes through a session that shares the caller's connector and cookies and
        fails on the first redirect, before anything is sent to its Location.
        """
        session = self._session
        if session.closed:
            raise TransportInvalidOperation("the HTTP session of the transport is closed")
        what = f"websocket connection to {self._ws_url}"

        async def refuse(
            _session: aiohttp.ClientSession,
            _context: object,
            params: aiohttp.TraceRequestRedirectParams,
        ) -> None:
            response = params.response
            raise redirect_error(what, response.status, response.headers.get("Location"))

        refusal = aiohttp.TraceConfig()
        refusal.on_request_redirect.append(refuse)
        # The session's timeout bounds the upgrade request only, not the socket's life;
        # asyncio.wait_for is avoided: before Python 3.12 it can swallow a cancellation.
        limits = session.timeout
        if timeout is not None:
            limits = aiohttp.ClientTimeout(
                total=timeout if limits.total is None else min(limits.total, timeout),
                connect=limits.connect,
                sock_read=limits.sock_read,
                sock_connect=limits.sock_connect,
            )
        upgrader = aiohttp.ClientSession(
            connector=session.connector,
            connector_owner=False,
            cookie_jar=session.cookie_jar,
            headers=session.headers,
            timeout=limits,
            trust_env=session.trust_env,
            trace_configs=[*session.trace_configs, refusal],
        )
        try:
            return await upgrader.ws_connect(
                self._ws_url,
                headers=dict(headers),
                ssl=self._ssl,
                proxy=self._proxy,
                heartbeat=HEARTBEAT,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                # aiohttp refuses a frame of max_msg_size bytes; the limit is inclusive.
                max_msg_size=self.max_response_bytes + 1,
            )
        finally:
            # Not the owner of the connector: this only detaches from it.
            await upgrader.close()

    async def _read(self, connection: _Connection) -> None:
        """Route every frame of *connection* until it fails; then retire it."""
        socket = connection.socket
        try:
            while connection.failure is None:
                frame = await socket.receive()
                kind = frame.type
                if kind is aiohttp.WSMsgType.TEXT:
                    with translate_transport_errors("websocket frame"):
                        payload = validate_payload(self._loads(frame.data))
                    await self._route(connection, payload)
                elif kind is aiohttp.WSMsgType.BINARY:
                    raise InvalidMessage("the server sent a binary websocket frame, not JSON text")
                elif kind is aiohttp.WSMsgType.ERROR:
                    raise self._frame_error(frame.data)
                elif kind in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    code = socket.close_code
                    detail = f" (code {code})" if code is not None else ""
                    raise TransportConnectionClosed(f"the server closed the websocket{detail}")
        except asyncio.CancelledError:
            raise
        except TransportError as error:
            if connection.failure is None:
                logger.info("websocket to %s failed: %s", self._ws_url, error)
            self._retire(connection, error)
        except Exception as error:
            # From the unsolicited handler: the reader stops, so it must be heard of.
            logger.exception("handling a websocket message failed; closing the websocket")
            self._retire(connection, error)

    def _frame_error(self, cause: object) -> TransportError:
        """The error for an ERROR frame: aiohttp's reader failed on what came in."""
        if isinstance(cause, aiohttp.WebSocketError):
            if cause.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                limit = self.max_response_bytes
                return ResponseTooLargeError(
                    f"the server sent a websocket frame larger than max_response_bytes "
                    f"({limit} bytes)",
                    limit,
                )
            if cause.code in _MALFORMED:
                return InvalidMessage(f"the server sent a malformed websocket frame: {cause}")
        return TransportConnectionClosed(f"the websocket failed: {shorten(str(cause))}")

    async def _route(self, connection: _Connection, payload: Payload) -> None:
        others: Payload = []
        for message in payload:
            key = message.get("id")
            future = connection.waiting.get(str(key)) if key is not None else None
            if future is not None and not future.done() and "successful" in message:
                future.set_result(message)
            else:
                others.append(message)
        if others and self.unsolicited is not None:
            await self.unsolicited(others)

    def _retire(
        self, connection: _Connection, error: BaseException, *, unseen: bool = True
    ) -> None:
        """End *connection*: fail its waiting requests with *error* and close it.

        :param unseen: keep *error* for the next :meth:`send` if no request was waiting
        """
        if connection.failure is not None:
            return
        connection.failure = error
        if self._connection is connection:
            self._connection = None
        waiting = [future for future in connection.waiting.values() if not future.done()]
        for future in waiting:
            future.set_exception(error)
        if unseen and not waiting and self._unseen is None:
            self._unseen = error
        if not connection.socket.closed:
            self._spawn(self._closers, _close(connection), f"websocket close {self._ws_url}")

    def _seen(self, error: BaseException) -> None:
        """*error* is being raised to a caller: the next send must not raise it again."""
        if self._unseen is error:
            self._unseen = None

    @staticmethod
    def _spawn(
        tasks: set[asyncio.Task[None]], coroutine: Coroutine[Any, Any, None], name: str
    ) -> None:
        task = asyncio.create_task(coroutine, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def aclose(self) -> None:
        """Close the socket and fail what waits on it; never raises."""
        connection = self._connection
        if connection is not None:
            self._retire(
                connection,
                TransportConnectionClosed("the websocket transport was closed"),
                unseen=False,
            )
        self._unseen = None
        for reader in self._readers:
            reader.cancel()
        # Readers end at once, closers within CLOSE_TIMEOUT.
        await asyncio.gather(*self._readers, *self._closers, return_exceptions=True)


async def _close(connection: _Connection) -> None:
    """Close politely, but give up on a server that keeps talking instead of closing."""
    # aiohttp's close() reads frames until the server's close, each read with its own
    # CLOSE_TIMEOUT: a chatty server would hold it forever.
    closing = asyncio.ensure_future(connection.socket.close())
    done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT)
    if not done:
        closing.cancel()  # aiohttp then drops the connection
    await asyncio.gather(closing, return_exceptions=True)
