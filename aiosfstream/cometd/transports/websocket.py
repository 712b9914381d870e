"""Bayeux over a websocket: one socket carries requests, replies and events."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from aiosfstream.cometd.exceptions import TransportConnectionClosed
from aiosfstream.cometd.messages import validate_payload
from aiosfstream.cometd.transports.base import Transport, translate_transport_errors
from aiosfstream.typing import Headers, Message, Payload

__all__ = ["WebSocketTransport"]

logger = logging.getLogger(__name__)


class WebSocketTransport(Transport):
    """Sends payloads as text frames; a reader task routes what comes back.

    A reply is matched to its request by ``id``; everything else goes to
    :attr:`~aiosfstream.cometd.transports.base.Transport.unsolicited`.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._socket: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._lock = asyncio.Lock()

    @property
    def _ws_url(self) -> str:
        if self.url.startswith("https://"):
            return "wss://" + self.url[len("https://") :]
        if self.url.startswith("http://"):
            return "ws://" + self.url[len("http://") :]
        return self.url

    async def _open_socket(self, headers: Headers) -> aiohttp.ClientWebSocketResponse[bool]:
        async with self._lock:
            socket = self._socket
            if socket is None or socket.closed:
                with translate_transport_errors(f"websocket connection to {self._ws_url}"):
                    socket = self._socket = await self._session.ws_connect(
                        self._ws_url,
                        headers=dict(headers),
                        ssl=self._ssl,  # type: ignore[arg-type]
                        proxy=self._proxy,
                        heartbeat=30.0,
                    )
                self._reader = asyncio.create_task(self._read(socket))
            return socket

    async def send(self, payload: Payload, headers: Headers, *, timeout: float | None) -> Payload:
        socket = await self._open_socket(headers)
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future[Message]] = {}
        for message in payload:
            key = str(message["id"])
            futures[key] = self._waiting[key] = loop.create_future()
        what = f"{payload[0].get('channel', '?')} request over websocket"
        try:
            with translate_transport_errors(what):
                await socket.send_str(self._dumps(payload))
                _, pending = await asyncio.wait(futures.values(), timeout=timeout)
                if pending:
                    raise asyncio.TimeoutError
                return [future.result() for future in futures.values()]
        finally:
            for key, future in futures.items():
                self._waiting.pop(key, None)
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # mark as retrieved

    async def _read(self, socket: aiohttp.ClientWebSocketResponse[bool]) -> None:
        error: Exception = TransportConnectionClosed("the websocket was closed")
        try:
            async for frame in socket:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                with translate_transport_errors("websocket frame"):
                    payload = validate_payload(self._loads(frame.data))
                await self._route(payload)
        except Exception as failure:  # ends every waiting request with the cause
            error = failure
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(error)

    async def _route(self, payload: Payload) -> None:
        others: Payload = []
        for message in payload:
            key = message.get("id")
            future = self._waiting.get(str(key)) if key is not None else None
            if future is not None and not future.done() and "successful" in message:
                future.set_result(message)
            else:
                others.append(message)
        if others and self.unsolicited is not None:
            await self.unsolicited(others)

    async def aclose(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._socket = self._reader = None
