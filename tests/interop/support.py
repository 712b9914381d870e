"""Helpers shared by the client tests against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiosfstream.cometd import Client, ConnectionType, Extension

if TYPE_CHECKING:
    from aiosfstream.typing import Headers, Message, Payload

#: Seconds a test waits for an event that should arrive at once.
DELIVERY_TIMEOUT = 5.0


class Recorder(Extension):
    """An extension that keeps a copy of every message sent and received."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.received: list[Message] = []

    async def outgoing(self, payload: Payload, headers: Headers) -> None:
        self.sent.extend(copy.deepcopy(payload))

    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        self.received.extend(copy.deepcopy(payload))

    def sent_on(self, channel: str) -> list[Message]:
        return [message for message in self.sent if message.get("channel") == channel]

    def received_on(self, channel: str) -> list[Message]:
        return [message for message in self.received if message.get("channel") == channel]


def subscriptions_of(messages: list[Message]) -> set[str]:
    """The channels named by ``/meta/subscribe`` messages (one name or a list each)."""
    channels: set[str] = set()
    for message in messages:
        subscription = message.get("subscription")
        if isinstance(subscription, str):
            channels.add(subscription)
        elif isinstance(subscription, list):
            channels.update(str(name) for name in subscription)
    return channels


async def receive(client: Client, timeout: float = DELIVERY_TIMEOUT) -> Message:
    """The next event, failing the test instead of hanging when none comes."""
    message: Message = await asyncio.wait_for(client.receive(), timeout)
    return message


async def assert_nothing_received(client: Client, wait: float = 0.5) -> None:
    """Wait a little and check that no event arrived meanwhile."""
    await asyncio.sleep(wait)
    assert client.pending_count == 0
    assert not client.has_pending_messages


@asynccontextmanager
async def opened(
    url: str, connection_type: ConnectionType | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """An open client; *connection_type* None offers every type the client supports."""
    async with Client(url, connection_type, **kwargs) as client:
        yield client


async def publish_until_received(
    publisher: Client,
    subscriber: Client,
    channel: str,
    *,
    pending: asyncio.Task[Message] | None = None,
    timeout: float = 15.0,
    every: float = 0.2,
) -> Message:
    """Publish on *channel* repeatedly until *subscriber* gets one of those messages.

    Used after an outage, when the subscriber resubscribes at a moment the test cannot see:
    a message published before that is lost, one published after it must arrive.
    *pending* is a ``receive()`` already waiting, if the test started one earlier.
    """
    stop = asyncio.Event()

    async def pump() -> None:
        attempt = 0
        while not stop.is_set():
            attempt += 1
            await publisher.publish(channel, {"attempt": attempt})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    pumping = asyncio.create_task(pump())
    waiting = pending if pending is not None else asyncio.create_task(subscriber.receive())
    try:
        done, _ = await asyncio.wait(
            {pumping, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting not in done:
            if pumping in done:
                pumping.result()  # the publisher failed: show why
            raise AssertionError(f"nothing arrived on {channel} within {timeout} s")
        return waiting.result()
    finally:
        stop.set()
        if not waiting.done():
            waiting.cancel()
        await asyncio.gather(pumping, waiting, return_exceptions=True)


async def check_prefetch_is_bounded(
    url: str, connection_type: ConnectionType, *, limit: int, total: int
) -> None:
    """Flood a subscriber whose consumer is slow: it must stop fetching at *limit*.

    ``pending_count`` counts every received event, so one batch may take it past
    *limit* (a batch is never cut); what must hold is that no more events are taken in
    while *limit* or more wait: every rise of ``pending_count`` starts below *limit*,
    and the rest stays with the server and the socket (over long polling the next
    ``/meta/connect`` is out, its answer unread).

    The consumer starts late, then takes a message every 30 ms: well within the servers'
    session timeouts (Faye drops a client after 2 x timeout without a /meta/connect).
    """
    async with (
        opened(url, connection_type, max_pending_count=limit) as subscriber,
        opened(url, connection_type) as publisher,
    ):
        await subscriber.subscribe("/flood")
        for n in range(total):
            await publisher.publish("/flood", {"n": n})
        await asyncio.sleep(0.5)
        held = subscriber.pending_count
        assert limit <= held, held
        if connection_type is ConnectionType.LONG_POLLING:
            # It stopped fetching; the server holds the rest. Over a websocket, Faye
            # pushes events without waiting for a /meta/connect, and the client keeps
            # every one it was sent rather than drop any.
            assert held < total, held
        await asyncio.sleep(0.3)
        assert subscriber.pending_count == held
        received = []
        rises = []
        for _ in range(total):
            before = subscriber.pending_count
            received.append((await receive(subscriber))["data"]["n"])
            # What is left if nothing was read meanwhile: receive() may let the
            # connection read first (right after room was made), so read it before.
            left = max(before - 1, 0)
            await asyncio.sleep(0.03)
            if subscriber.pending_count > left:
                rises.append(left)
        assert received == list(range(total))
        if held < total:
            assert rises  # the rest was fetched as room appeared
        assert all(left < limit for left in rises), f"fetched while full: {rises}"


class TcpProxy:
    """A loopback TCP relay in front of a server, which can cut every connection at once.

    Dropping the client's sockets this way leaves the server running with its sessions,
    unlike a restart: the client must reconnect, not shake hands again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        #: Connections accepted so far.
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, target_url: str) -> str:
        """*target_url* (on the target's port) as seen through the proxy."""
        return target_url.replace(f":{self.target_port}/", f":{self.port}/", 1)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)

    def drop(self) -> None:
        """Cut every open connection, as a network failure would (no FIN, a reset)."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, upstream_writer)
        self._writers.update(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer, pair)),
            asyncio.create_task(self._pump(upstream_reader, writer, pair)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pumps.difference_update(pumps)
            self._writers.difference_update(pair)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side is gone: so is the other, at once.
            for writer in pair:
                writer.transport.abort()
