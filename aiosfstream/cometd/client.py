"""The asyncio driver of a Bayeux session.

The :class:`Client` owns time and I/O: it runs the connection in a background
task, sleeps between attempts, measures ``connection_timeout`` and fills the
prefetch queue. What to send and what a reply means is decided by
:class:`~aiosfstream.cometd.protocol.BayeuxProtocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.constants import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_MAX_PENDING_COUNT,
    ConnectionType,
    MetaChannel,
)
from aiosfstream.cometd.exceptions import (
    ClientInvalidOperation,
    HTTPStatusError,
    ServerError,
    TransportError,
    TransportTimeoutError,
)
from aiosfstream.cometd.extensions import AuthExtension, Extension
from aiosfstream.cometd.messages import InvalidMessage, check_channel
from aiosfstream.cometd.prefetch import PrefetchQueue
from aiosfstream.cometd.protocol import Action, BayeuxProtocol, State
from aiosfstream.cometd.transports import TRANSPORTS, LongPollingTransport, Transport
from aiosfstream.typing import Headers, JsonDumper, JsonLoader, Message, Payload

__all__ = ["Client"]

logger = logging.getLogger(__name__)

#: Seconds added to the server's advice timeout before a held poll counts as lost.
POLL_MARGIN = 15.0
#: Seconds a request other than ``/meta/connect`` may take.
REQUEST_TIMEOUT = 30.0
#: Seconds ``close()`` waits for the server to acknowledge ``/meta/disconnect``.
DISCONNECT_TIMEOUT = 5.0

_ClientT = TypeVar("_ClientT", bound="Client")


class Lifecycle(enum.Enum):
    """Where the client object stands, as seen by its user."""

    UNOPENED = "unopened"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def _connection_types(value: object) -> list[ConnectionType]:
    if value is None:
        return list(ConnectionType)
    items = [value] if isinstance(value, ConnectionType | str) else value
    if not isinstance(items, Sequence):
        raise TypeError("connection_types must be a ConnectionType or a sequence of them")
    try:
        return [ConnectionType(item) for item in items]
    except ValueError as error:
        raise ValueError(f"unknown connection type: {error}") from None


class Client:
    """An asyncio Bayeux (CometD) client.

    :param url: the server's Bayeux endpoint
    :param connection_types: the transports to offer, preferred first; all by default
    :param connection_timeout: seconds ``receive()`` waits for a lost connection to
        come back before it raises :class:`TransportTimeoutError`; ``None`` waits forever
    :param ssl: an :class:`ssl.SSLContext`, or ``False`` to skip certificate checks;
        certificates are verified by default
    :param proxy: URL of an HTTP proxy
    :param max_pending_count: how many messages may wait for ``receive()`` before the
        client stops fetching more; ``0`` or less means no limit
    :param extensions: hooks that see every message
    :param auth: an extension that also authenticates
    :param json_dumps: JSON encoder
    :param json_loads: JSON decoder
    :param backoff: the delays between reconnection attempts
    """

    def __init__(
        self,
        url: str | None,
        connection_types: ConnectionType | Sequence[ConnectionType] | None = None,
        *,
        connection_timeout: float | None = DEFAULT_CONNECTION_TIMEOUT,
        ssl: SSLContext | bool | None = None,
        proxy: str | None = None,
        max_pending_count: int = DEFAULT_MAX_PENDING_COUNT,
        extensions: Sequence[Extension] | None = None,
        auth: AuthExtension | None = None,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        backoff: Backoff | None = None,
    ) -> None:
        if url is not None and not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if isinstance(max_pending_count, bool) or not isinstance(max_pending_count, int):
            raise TypeError("max_pending_count must be an int")
        extensions = list(extensions or [])
        for extension in extensions:
            if not isinstance(extension, Extension):
                raise TypeError(f"{extension!r} is not an Extension")
        if auth is not None and not isinstance(auth, AuthExtension):
            raise TypeError(f"auth must be an AuthExtension, not {type(auth).__name__}")
        if ssl is not None and not isinstance(ssl, bool | SSLContext):
            raise TypeError("ssl must be an ssl.SSLContext, a bool or None")
        if not callable(json_dumps) or not callable(json_loads):
            raise TypeError("json_dumps and json_loads must be callables")
        self.url = url
        self.connection_timeout = _check_timeout("connection_timeout", connection_timeout)
        self.max_pending_count = max_pending_count
        self.extensions = extensions
        self.auth = auth
        self._connection_types = _connection_types(connection_types)
        self._ssl: SSLContext | bool = True if ssl is None else ssl
        self._proxy = proxy
        self._json_dumps = json_dumps
        self._json_loads = json_loads
        self._backoff = backoff or Backoff()
        self._protocol = BayeuxProtocol(self._connection_types)
        self._lifecycle = Lifecycle.UNOPENED
        self._session: aiohttp.ClientSession | None = None
        self._http: LongPollingTransport | None = None
        self._transport: Transport | None = None
        self._queue: PrefetchQueue | None = None
        self._connected: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._disconnect_notice: Message | None = None

    #: Whether a ``/meta/disconnect`` sent by the server starts a new session (``True``)
    #: or ends :meth:`receive` with :class:`ServerError` (``False``, plain Bayeux).
    reconnect_after_server_disconnect = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._lifecycle.value} url={self.url!r}>"

    # -- public properties -------------------------------------------------------
    @property
    def closed(self) -> bool:
        """``True`` unless the client is open."""
        return self._lifecycle is not Lifecycle.OPEN

    @property
    def subscriptions(self) -> set[str]:
        """Channels the server confirmed a subscription to."""
        return set(self._protocol.subscriptions)

    @property
    def connection_type(self) -> ConnectionType | None:
        """The transport negotiated at handshake."""
        return self._protocol.connection_type

    @property
    def pending_count(self) -> int:
        """Messages received and waiting for :meth:`receive`."""
        return 0 if self._queue is None else len(self._queue)

    @property
    def has_pending_messages(self) -> bool:
        """Whether :meth:`receive` would return without waiting."""
        return self.pending_count > 0

    # -- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        """Authenticate if needed, handshake, and start fetching messages."""
        if self._lifecycle is not Lifecycle.UNOPENED:
            raise ClientInvalidOperation(
                f"cannot open a client that is {self._lifecycle.value}; create a new one"
            )
        self._lifecycle = Lifecycle.OPEN
        self._queue = PrefetchQueue(self.max_pending_count)
        self._connected = asyncio.Event()
        # aiohttp's default jar drops cookies of IP hosts such as 127.0.0.1; Bayeux
        # servers rely on cookies (BAYEUX_BROWSER), so accept them from any host.
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            if self.auth is not None:
                await self._authenticate()
            try:
                await self._handshake()
            except ServerError as error:
                # Credentials that were good when obtained may be stale by now (a
                # session token, say): get fresh ones once, then give up.
                if (
                    self.auth is None
                    or error.response is None
                    or self._failure_action(error.response) is not Action.REAUTHENTICATE
                ):
                    raise
                await self._authenticate()
                await self._handshake()
        except BaseException:
            await self.close()
            raise
        self._task = asyncio.create_task(self._run(), name=f"bayeux connection {self.url}")

    async def close(self) -> None:
        """Disconnect politely and release every resource. Safe to call twice."""
        if self._lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            return
        was_open = self._lifecycle is Lifecycle.OPEN
        self._lifecycle = Lifecycle.CLOSING
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            if was_open and self._protocol.state is State.CONNECTED:
                with contextlib.suppress(TransportError, ServerError, ClientInvalidOperation):
                    await self._exchange(self._protocol.disconnect(), DISCONNECT_TIMEOUT)
        finally:
            if self._transport is not None and self._transport is not self._http:
                await self._transport.aclose()
            if self._session is not None:
                await self._session.close()
            if self._protocol.state is not State.DISCONNECTED:
                self._protocol.close()
            if self._queue is not None:
                self._queue.fail(ClientInvalidOperation("the client is closed"))
            self._lifecycle = Lifecycle.CLOSED
            logger.debug("client closed")

    async def __aenter__(self: _ClientT) -> _ClientT:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- operations ----------------------------------------------------------------
    async def subscribe(self, channel: str) -> None:
        """Subscribe to *channel*; raise :class:`ServerError` if the server refuses."""
        check_channel(channel)
        await self._ready()
        await self._subscribe_request(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe from *channel*."""
        check_channel(channel)
        await self._ready()
        reply = await self._exchange(self._protocol.unsubscribe(channel), REQUEST_TIMEOUT)
        self._protocol.handle_unsubscribe(reply, channel)

    async def publish(self, channel: str, data: Any) -> Message:
        """Publish *data* to *channel* and return the server's reply."""
        check_channel(channel, allow_wildcards=False)
        await self._ready()
        reply = await self._exchange(self._protocol.publish(channel, data), REQUEST_TIMEOUT)
        if not reply.get("successful"):
            raise ServerError(f"Publish request to {channel} failed", reply)
        return reply

    async def receive(self) -> Message:
        """Return the next message, waiting for one if needed.

        Raises :class:`TransportTimeoutError` when the connection was lost for longer
        than ``connection_timeout``, :class:`ServerError` when the server refuses to
        continue, and the error of any hook that could not recover.
        """
        if self._queue is None:
            raise ClientInvalidOperation("the client is not open; call open() first")
        message = self._queue.get_nowait()  # no extra coroutine when one is waiting
        return message if message is not None else await self._queue.get()

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except ClientInvalidOperation:
            if self._lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
                raise StopAsyncIteration from None
            raise

    def _push_back(self, message: Message) -> None:
        """Make *message* the next one :meth:`receive` returns."""
        assert self._queue is not None
        self._queue.push_front(message)

    # -- hooks for subclasses ------------------------------------------------------
    async def _authenticate(self) -> None:
        """Obtain fresh credentials from :attr:`auth`."""
        if self.auth is None:
            raise ServerError("the server asks for authentication, but no auth is set")
        await self.auth.authenticate()

    async def _subscribe_request(self, channel: str, *, ext: Message | None = None) -> None:
        """Send one ``/meta/subscribe``; used by :meth:`subscribe` and resubscription."""
        message = self._protocol.subscribe(channel)
        if ext is not None:
            message["ext"] = ext
        reply = await self._exchange(message, REQUEST_TIMEOUT)
        self._protocol.handle_subscribe(reply, channel)

    def _on_events(self, events: list[Message]) -> None:
        """See each batch of events as it arrives, before it is queued."""

    def _failure_action(self, reply: Message) -> Action:
        """Decide what follows an unsuccessful connect or handshake reply."""
        return self._protocol.failure_action(reply)

    def _action_after_transport_error(self, action: Action) -> Action:
        """Decide how to resume after a request failed on the network.

        Bayeux keeps the session on the server, so polling again is enough.
        """
        return action

    def _backoff_scale(self, reply: Message | None) -> float:
        """How much longer than usual to wait after *reply* (1 = the normal backoff)."""
        return 1.0

    # -- internals -------------------------------------------------------------------
    async def _ready(self) -> None:
        """Wait until the session is usable, within ``connection_timeout``."""
        if self._lifecycle is not Lifecycle.OPEN:
            raise ClientInvalidOperation(f"the client is {self._lifecycle.value}")
        assert self._connected is not None and self._queue is not None
        if self._queue.failure is not None:
            raise self._queue.failure
        if self._connected.is_set():
            return
        waiters = [asyncio.ensure_future(self._connected.wait())]
        if self._task is not None:
            waiters.append(self._task)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(
            waiters, timeout=self.connection_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiters[0].cancel()
        if self._queue.failure is not None:
            raise self._queue.failure
        if not done:
            raise TransportTimeoutError(
                f"the connection was not re-established within {self.connection_timeout} s"
            )

    async def _exchange(self, message: Message, timeout: float | None) -> Message:
        """Send one message through the extensions and transport; return its reply."""
        assert self._session is not None and self._queue is not None
        if message["channel"] == MetaChannel.HANDSHAKE or self._transport is None:
            transport: Transport = self._http_transport()
        else:
            transport = self._transport
        payload: Payload = [message]
        headers: Headers = {}
        await self._apply_outgoing(payload, headers)
        response = await transport.send(payload, headers, timeout=timeout)
        await self._apply_incoming(response, headers)
        incoming = self._protocol.sort(response, [message])
        self._on_events(incoming.events)
        self._queue.extend(incoming.events)
        self._take_unsolicited(incoming.unsolicited)
        reply = incoming.replies.get(message["id"])
        if reply is None:
            raise InvalidMessage(f"the server sent no reply to the {message['channel']} request")
        return reply

    async def _apply_outgoing(self, payload: Payload, headers: Headers) -> None:
        for extension in self.extensions:
            await extension.outgoing(payload, headers)
        if self.auth is not None:
            await self.auth.outgoing(payload, headers)

    async def _apply_incoming(self, payload: Payload, headers: Headers) -> None:
        for extension in self.extensions:
            await extension.incoming(payload, headers)
        if self.auth is not None:
            await self.auth.incoming(payload, headers)

    def _http_transport(self) -> LongPollingTransport:
        assert self._session is not None
        if self.url is None:
            raise ClientInvalidOperation("the client has no URL to connect to")
        if self._http is None or self._http.url != self.url:
            self._http = LongPollingTransport(
                self.url,
                self._session,
                json_dumps=self._json_dumps,
                json_loads=self._json_loads,
                ssl=self._ssl,
                proxy=self._proxy,
            )
        return self._http

    async def _on_unsolicited(self, payload: Payload) -> None:
        """Messages pushed by the server without a request (websocket)."""
        assert self._queue is not None
        await self._apply_incoming(payload, {})
        incoming = self._protocol.sort(payload, ())
        self._on_events(incoming.events)
        self._queue.extend(incoming.events)
        self._take_unsolicited(incoming.unsolicited)

    def _take_unsolicited(self, messages: Payload) -> None:
        for message in messages:
            if message.get("channel") == MetaChannel.DISCONNECT:
                logger.info("the server ended the session")
                self._disconnect_notice = message
                if self._protocol.state is State.CONNECTED:
                    self._protocol.session_lost()
            else:
                logger.debug("ignoring unexpected message on %s", message.get("channel"))

    async def _handshake(self) -> None:
        """Handshake, switch to the negotiated transport, and restore subscriptions."""
        assert self._connected is not None and self._session is not None
        self._connected.clear()
        restore = self._protocol.subscription_order
        reply = await self._exchange(self._protocol.handshake(), REQUEST_TIMEOUT)
        self._protocol.handle_handshake(reply)
        self._use_transport(self._protocol.connection_type)
        await self._resubscribe(restore)
        self._connected.set()

    def _use_transport(self, connection_type: ConnectionType | None) -> None:
        assert connection_type is not None and self._session is not None
        if connection_type is ConnectionType.LONG_POLLING:
            self._transport = self._http_transport()
            return
        if isinstance(self._transport, TRANSPORTS[connection_type]) and (
            self._transport.url == self.url
        ):
            return
        assert self.url is not None
        self._transport = TRANSPORTS[connection_type](
            self.url,
            self._session,
            json_dumps=self._json_dumps,
            json_loads=self._json_loads,
            ssl=self._ssl,
            proxy=self._proxy,
        )
        self._transport.unsolicited = self._on_unsolicited

    async def _resubscribe(self, channels: list[str]) -> None:
        """Restore *channels* after a new handshake, one request each.

        A channel the server refuses is dropped from :attr:`subscriptions` and its
        error is queued for :meth:`receive`: a subscription never disappears silently.
        """
        assert self._queue is not None
        for channel in channels:
            if channel not in self._protocol.subscriptions:
                continue
            try:
                await self._subscribe_request(channel)
            except ServerError as error:
                logger.warning("could not restore the subscription to %s: %s", channel, error)
                self._protocol.forget_subscription(channel)
                self._queue.put_error(error)

    async def _run(self) -> None:
        """Keep the session alive and fetch messages until closed or failed."""
        assert self._queue is not None
        try:
            await self._keep_connected()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.debug("connection stopped: %s", error)
            self._queue.fail(error)

    async def _keep_connected(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        action = Action.CONNECT
        outage_since: float | None = None
        last_error: BaseException | None = None
        reauthenticated = False
        last_reply: Message | None = None
        # Consecutive "handshake again" answers without a successful poll in between.
        handshake_requests = 0
        while True:
            notice, self._disconnect_notice = self._disconnect_notice, None
            if notice is not None:
                if not self.reconnect_after_server_disconnect:
                    raise ServerError("the server ended the session", notice)
                action = Action.HANDSHAKE
            if action is Action.CONNECT and self._protocol.state is State.CONNECTED:
                await self._queue.wait_for_room()
            remaining: float | None = None
            if outage_since is not None and self.connection_timeout is not None:
                remaining = outage_since + self.connection_timeout - loop.time()
                if remaining <= 0:
                    raise TransportTimeoutError(
                        f"could not reconnect within {self.connection_timeout} s: {last_error}"
                    ) from last_error
            reply: Message | None = None
            try:
                if action is Action.REAUTHENTICATE and reauthenticated:
                    raise ServerError("the server refused fresh credentials", last_reply)
                step = self._step(action)
                reply = await (step if remaining is None else asyncio.wait_for(step, remaining))
            except (TransportError, asyncio.TimeoutError) as error:
                if isinstance(error, HTTPStatusError) and error.status == 401 and self.auth:
                    action = Action.REAUTHENTICATE
                elif self._protocol.state is not State.CONNECTED:
                    action = Action.HANDSHAKE
                else:
                    action = self._action_after_transport_error(action)
                outage_since = loop.time() if outage_since is None else outage_since
                last_error = error
                logger.info("connection problem, retrying: %s", error)
                delay = self._backoff.next_delay(self._protocol.advice.interval)
            else:
                if reply is None or reply.get("successful"):
                    # Only a successful poll proves the connection is back: a session
                    # that handshakes but cannot poll must still back off and time out.
                    if action is Action.CONNECT:
                        outage_since, last_error = None, None
                        self._backoff.reset()
                        reauthenticated = False
                        handshake_requests = 0
                    elif action is Action.REAUTHENTICATE:
                        reauthenticated = True
                    action = self._after_success(action)
                    delay = self._protocol.advice.interval if action is Action.CONNECT else 0.0
                else:
                    last_reply = reply
                    action = self._failure_action(reply)
                    if action is Action.FAIL:
                        raise ServerError(f"{reply.get('channel')} refused", reply)
                    outage_since = loop.time() if outage_since is None else outage_since
                    last_error = ServerError(f"{reply.get('channel')} refused", reply)
                    if action is Action.REAUTHENTICATE:
                        delay = 0.0
                    elif action is Action.HANDSHAKE and reply.get("channel") == MetaChannel.CONNECT:
                        # The server is there and asks for a new session: no backoff the
                        # first time; again and again would be a handshake storm.
                        handshake_requests += 1
                        delay = (
                            self._protocol.advice.interval
                            if handshake_requests == 1
                            else self._backoff.next_delay(self._protocol.advice.interval)
                        )
                    else:
                        delay = self._backoff.next_delay(
                            self._protocol.advice.interval, scale=self._backoff_scale(reply)
                        )
            if delay > 0:
                if outage_since is not None and self.connection_timeout is not None:
                    delay = min(delay, outage_since + self.connection_timeout - loop.time())
                await asyncio.sleep(max(delay, 0.0))

    def _after_success(self, action: Action) -> Action:
        if action is Action.REAUTHENTICATE:
            return Action.HANDSHAKE
        if self._protocol.state is not State.CONNECTED:
            return Action.HANDSHAKE
        return Action.CONNECT

    async def _step(self, action: Action) -> Message | None:
        """Do one unit of work; return the reply it got, ``None`` if there is none."""
        if action is Action.REAUTHENTICATE:
            await self._authenticate()
            return None
        if action is Action.HANDSHAKE:
            try:
                await self._handshake()
            except ServerError as error:
                if error.response is None:
                    raise
                return error.response
            return None
        timeout = self._protocol.advice.timeout + POLL_MARGIN
        return await self._exchange(self._protocol.connect(), timeout)
