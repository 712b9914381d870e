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
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.constants import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_MAX_PENDING_COUNT,
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectionType,
    MetaChannel,
)
from aiosfstream.cometd.exceptions import (
    ClientInvalidOperation,
    CometdException,
    ServerError,
    TransportError,
    TransportTimeoutError,
)
from aiosfstream.cometd.extensions import AuthExtension, Extension
from aiosfstream.cometd.messages import check_channel
from aiosfstream.cometd.prefetch import PrefetchQueue
from aiosfstream.cometd.protocol import BayeuxProtocol, State
from aiosfstream.cometd.recovery import (
    Action,
    Decision,
    LostReply,
    Outcome,
    Phase,
    RecoveryPolicy,
    Situation,
    Step,
)
from aiosfstream.cometd.transports import TRANSPORTS, LongPollingTransport, Transport
from aiosfstream.typing import Headers, JsonDumper, JsonLoader, Message, Payload

__all__ = ["Client"]

logger = logging.getLogger(__name__)

#: Seconds added to the server's advice timeout before a held poll counts as lost.
POLL_MARGIN = 15.0
#: Seconds a request other than ``/meta/connect`` may take.
REQUEST_TIMEOUT = 30.0
#: Seconds an attempt made at the ``connection_timeout`` deadline may still take.
LAST_ATTEMPT_SECONDS = 1.0
#: Seconds ``close()`` waits for the server to acknowledge ``/meta/disconnect``.
DISCONNECT_TIMEOUT = 5.0

_ClientT = TypeVar("_ClientT", bound="Client")
_T = TypeVar("_T")


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
    :param max_response_bytes: the largest response body accepted; a larger one is
        a :class:`ResponseTooLargeError`, recovered from like a lost reply
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
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
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int):
            raise TypeError(
                f"max_response_bytes must be an int, not {type(max_response_bytes).__name__}"
            )
        if max_response_bytes <= 0:
            raise ValueError(f"max_response_bytes must be positive, got {max_response_bytes!r}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff, not {type(backoff).__name__}")
        self.url = url
        self.connection_timeout = _check_timeout("connection_timeout", connection_timeout)
        self.max_pending_count = max_pending_count
        self.extensions = extensions
        self.auth = auth
        self._connection_types = _connection_types(connection_types)
        #: The TLS setting the transports use (``True``: verify against the system CAs).
        self.ssl: SSLContext | bool = True if ssl is None else ssl
        self._proxy = proxy
        self._json_dumps = json_dumps
        self._json_loads = json_loads
        self.max_response_bytes = max_response_bytes
        self._backoff = backoff or Backoff()
        self._policy = self._make_policy(self._backoff)
        self._protocol = BayeuxProtocol(self._connection_types)
        self._lifecycle = Lifecycle.UNOPENED
        self._session: aiohttp.ClientSession | None = None
        self._http: LongPollingTransport | None = None
        self._transport: Transport | None = None
        self._queue: PrefetchQueue | None = None
        # Set while the session is usable by requests.
        self._connected: asyncio.Event | None = None
        # Set when a request or a server message learned that the session is over;
        # it ends the poll in flight, with _interruption as its outcome.
        self._interrupted: asyncio.Event | None = None
        self._interruption: tuple[Outcome, BaseException] = (
            Outcome.UNKNOWN_CLIENT,
            ClientInvalidOperation("the session was lost"),
        )
        # Subscriptions still to restore in the new session.
        self._restore: list[str] = []
        self._task: asyncio.Task[None] | None = None

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
        """Messages received and waiting for :meth:`receive`, those beyond
        ``max_pending_count`` included."""
        return 0 if self._queue is None else len(self._queue) + self._queue.backlog_count

    @property
    def has_pending_messages(self) -> bool:
        """Whether :meth:`receive` would return without waiting."""
        return self.pending_count > 0

    # -- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        """Authenticate if needed, handshake, and start fetching messages.

        Transient failures are retried within ``connection_timeout`` (forever when it
        is ``None``), by the same rules as a lost connection; a definitive refusal
        raises at once.
        """
        self._check_unopened()
        self._lifecycle = Lifecycle.OPEN
        self._queue = PrefetchQueue(self.max_pending_count)
        self._connected = asyncio.Event()
        self._interrupted = asyncio.Event()
        # aiohttp's default jar drops cookies of IP hosts such as 127.0.0.1; Bayeux
        # servers rely on cookies (BAYEUX_BROWSER), so accept them from any host.
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        first = Action.AUTHENTICATE if self.auth is not None else Action.HANDSHAKE
        try:
            await self._drive(first, Phase.OPENING)
        except BaseException:
            await self.close()
            raise
        self._task = asyncio.create_task(self._run(), name=f"bayeux connection {self.url}")

    def _check_unopened(self) -> None:
        """Raise unless the client was never opened: a client opens once."""
        if self._lifecycle is not Lifecycle.UNOPENED:
            raise ClientInvalidOperation(
                f"cannot open a client that is {self._lifecycle.value}; create a new one"
            )

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
        """Subscribe to *channel*; raise :class:`ServerError` if the server refuses.

        While the session is being re-established, waits for the new one (up to
        ``connection_timeout``).
        """
        check_channel(channel)
        await self._request(
            lambda timeout: self._subscribe_request(channel, timeout=timeout), idempotent=True
        )

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe from *channel*."""
        check_channel(channel)

        async def send(timeout: float) -> None:
            reply = await self._exchange(self._protocol.unsubscribe(channel), timeout)
            self._protocol.handle_unsubscribe(reply, channel)

        await self._request(send, idempotent=True)

    async def publish(self, channel: str, data: Any) -> Message:
        """Publish *data* to *channel* and return the server's reply."""
        check_channel(channel, allow_wildcards=False)

        async def send(timeout: float) -> Message:
            reply = await self._exchange(self._protocol.publish(channel, data), timeout)
            if not reply.get("successful"):
                raise ServerError(f"Publish request to {channel} failed", reply)
            return reply

        return await self._request(send, idempotent=False)

    async def receive(self) -> Message:
        """Return the next message, waiting for one if needed.

        Raises :class:`TransportTimeoutError` when the connection was lost for longer
        than ``connection_timeout``, :class:`ServerError` when the server refuses to
        continue, and the error of any hook that could not recover.
        """
        message = self._take_ready()  # no extra coroutine when one is waiting
        return message if message is not None else await self._take_next()

    def _take_ready(self) -> Message | None:
        """The next message if it is ready, else ``None``: then await :meth:`_take_next`."""
        if self._queue is None:
            raise ClientInvalidOperation("the client is not open; call open() first")
        return self._queue.get_nowait()

    async def _take_next(self) -> Message:
        assert self._queue is not None
        return await self._queue.get()

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
    def _make_policy(self, backoff: Backoff) -> RecoveryPolicy:
        """The rules that decide what follows each outcome."""
        return RecoveryPolicy(backoff)

    async def _authenticate(self) -> None:
        """Obtain fresh credentials from :attr:`auth`."""
        assert self.auth is not None
        await self.auth.authenticate()

    async def _subscribe_request(
        self, channel: str, *, timeout: float, ext: Message | None = None
    ) -> Message:
        """Send one ``/meta/subscribe``; return the message as sent.

        Used by :meth:`subscribe` and to restore subscriptions in a new session.
        """
        message = self._protocol.subscribe(channel)
        if ext is not None:
            message["ext"] = ext
        reply = await self._exchange(message, timeout)
        self._protocol.handle_subscribe(reply, channel)
        return message

    def _on_events(self, events: list[Message]) -> None:
        """See each batch of events as it arrives, before it is queued."""

    def _resumable(self) -> bool:
        """Whether a new session could resume some subscription where it stopped.

        Plain Bayeux has no replay: events lost with a poll's reply cannot come back,
        so the same session is polled again.
        """
        return False

    def _refusal(self, error: ServerError) -> ServerError:
        """The error to raise for a refusal; subclasses may add the server's reason."""
        return error

    # -- internals -------------------------------------------------------------------
    async def _request(self, send: Callable[[float], Awaitable[_T]], *, idempotent: bool) -> _T:
        """Run a user's request by the table's REQUEST rules.

        Waits for a usable session, then sends; a request that meets a session that
        is certainly gone is sent again in the next one, all within
        ``connection_timeout``. An *idempotent* one (subscribe, unsubscribe) that was
        answered by a session replaced meanwhile is sent again too: the new session
        may not know of it.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            remaining = self._remaining(started)
            await self._ready(remaining)
            remaining = self._remaining(started)
            session = self._protocol.client_id
            try:
                result = await send(self._bounded(REQUEST_TIMEOUT, remaining))
            except (CometdException, asyncio.TimeoutError) as error:
                outcome, failure = self._outcome_of(error)
            else:
                if not idempotent or self._protocol.client_id == session:
                    return result
                logger.info("the session changed while a request was answered; sending it again")
                continue
            situation = Situation(
                Phase.RUNNING,
                Step.REQUEST,
                attempt=attempt,
                elapsed=loop.time() - started,
                timeout=self.connection_timeout,
                interval=self._protocol.advice.interval,
                jitter=self._backoff.random(),
            )
            decision = self._policy.decide(situation, outcome)
            if decision.action is Action.GIVE_UP:
                raise self._timeout_error(failure) from failure
            if decision.action is not Action.HANDSHAKE:
                raise failure
            logger.info("request met a lost session (%s); retrying in the next one", failure)
            if self._protocol.client_id == session:  # not yet replaced by a new one
                self._session_gone(outcome, failure)
            attempt += 1
            await asyncio.sleep(decision.delay)

    def _bounded(self, timeout: float, remaining: float | None) -> float:
        """*timeout*, cut to the time left before the deadline.

        An attempt that falls on the deadline still gets a moment
        (:data:`LAST_ATTEMPT_SECONDS`, a quarter of a short ``connection_timeout``):
        it is the one that may find the server back.
        """
        if remaining is None or self.connection_timeout is None:
            return timeout
        least = min(LAST_ATTEMPT_SECONDS, self.connection_timeout / 4)
        return max(min(timeout, remaining), least)

    def _remaining(self, started: float) -> float | None:
        if self.connection_timeout is None:
            return None
        return started + self.connection_timeout - asyncio.get_running_loop().time()

    async def _ready(self, timeout: float | None) -> None:
        """Wait until the session is usable, at most *timeout* seconds."""
        if self._lifecycle is not Lifecycle.OPEN:
            raise ClientInvalidOperation(f"the client is {self._lifecycle.value}")
        assert self._connected is not None and self._queue is not None
        if self._queue.failure is not None:
            raise self._queue.failure
        if self._connected.is_set():
            return
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._connected.wait())]
        if self._task is not None:
            waiters.append(self._task)
        try:
            done, _ = await asyncio.wait(
                waiters,
                timeout=None if timeout is None else max(timeout, 0.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiters[0].cancel()
        if self._queue.failure is not None:
            raise self._queue.failure
        if self._lifecycle is not Lifecycle.OPEN:
            raise ClientInvalidOperation(f"the client is {self._lifecycle.value}")
        if not done:
            raise TransportTimeoutError(
                f"the session was not re-established within {self.connection_timeout:g} s"
            )

    def _session_gone(self, outcome: Outcome, cause: BaseException) -> None:
        """Something besides the connection learned that the session is over."""
        assert self._connected is not None and self._interrupted is not None
        self._connected.clear()
        self._interruption = (outcome, cause)
        self._interrupted.set()
        if self._queue is not None:
            self._queue.wake()

    async def _exchange(self, message: Message, timeout: float | None) -> Message:
        """Send one message through the extensions and transport; return its reply.

        The answer is taken in as it is decoded. A ``/meta/connect`` answer is read no
        faster than the consumer makes room (it can hold a whole backlog); the answer
        to any other request is read at once, since the user waits for it. With long
        polling the ``/meta/connect`` itself goes out at once: the server prepares its
        answer while the consumer works, and a slow consumer never lets the session
        expire for want of a poll.
        """
        assert self._session is not None and self._queue is not None
        if message["channel"] == MetaChannel.HANDSHAKE or self._transport is None:
            transport: Transport = self._http_transport()
        else:
            transport = self._transport
        payload: Payload = [message]
        headers: Headers = {}
        await self._apply_outgoing(payload, headers)
        replies: dict[str, Message] = {}
        pace = self._wait_for_room if message["channel"] == MetaChannel.CONNECT else None

        async def take(messages: Payload) -> None:
            assert self._queue is not None
            await self._apply_incoming(messages, headers)
            incoming = self._protocol.sort(messages, [message])
            for key, reply in incoming.replies.items():
                replies.setdefault(key, reply)
            self._on_events(incoming.events)
            self._queue.extend(incoming.events)
            self._take_unsolicited(incoming.unsolicited)
            if incoming.events:
                # A consumer waiting for these events runs first, before this task
                # finishes the answer and sends the next poll.
                await asyncio.sleep(0)

        await transport.stream(payload, headers, timeout=timeout, deliver=take, pace=pace)
        reply = replies.get(message["id"])
        if reply is None:
            raise LostReply(f"the server sent no reply to the {message['channel']} request")
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

    def _transport_options(self) -> dict[str, Any]:
        return {
            "json_dumps": self._json_dumps,
            "json_loads": self._json_loads,
            "ssl": self.ssl,
            "proxy": self._proxy,
            "max_response_bytes": self.max_response_bytes,
        }

    def _http_transport(self) -> LongPollingTransport:
        assert self._session is not None
        if self.url is None:
            raise ClientInvalidOperation("the client has no URL to connect to")
        if self._http is None or self._http.url != self.url:
            self._http = LongPollingTransport(self.url, self._session, **self._transport_options())
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
                notice = ServerError("the server ended the session", message)
                self._session_gone(Outcome.SERVER_DISCONNECT, notice)
            else:
                logger.debug("ignoring unexpected message on %s", message.get("channel"))

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
            self.url, self._session, **self._transport_options()
        )
        self._transport.unsolicited = self._on_unsolicited

    async def _run(self) -> None:
        """Keep the session alive and fetch messages until closed or failed."""
        assert self._queue is not None
        try:
            await self._drive(Action.CONNECT, Phase.RUNNING)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.debug("connection stopped: %s", error)
            self._queue.fail(error)

    async def _drive(self, action: Action, phase: Phase) -> None:
        """Execute what the recovery table decides, step after step.

        While opening, returns once the first session is established; while running,
        only an error ends it.
        """
        assert self._queue is not None and self._connected is not None
        loop = asyncio.get_running_loop()
        # While opening, connection_timeout counts from the call; later, from the
        # first failure of an outage.
        outage: float | None = loop.time() if phase is Phase.OPENING else None
        attempt, reauthenticated = 0, False
        refused = False  # the server refused the credentials in this outage
        while True:
            if action is Action.CONNECT and phase is Phase.OPENING:
                return
            step = _STEP_OF[action]
            remaining = None if outage is None else self._remaining(outage)
            outcome, failure, retry_after = await self._attempt(step, remaining)
            if outcome is not Outcome.SUCCESS and outage is None:
                outage = loop.time()
            decision = self._policy.decide(
                Situation(
                    phase,
                    step,
                    attempt=attempt,
                    elapsed=0.0 if outage is None else loop.time() - outage,
                    timeout=self.connection_timeout,
                    resumable=self._resumable(),
                    can_authenticate=self.auth is not None,
                    reauthenticated=reauthenticated,
                    interval=self._protocol.advice.interval,
                    retry_after=retry_after,
                    jitter=self._backoff.random(),
                ),
                outcome,
            )
            if outcome is Outcome.SUCCESS:
                if step is Step.CONNECT:
                    outage, attempt, reauthenticated, refused = None, 0, False, False
                elif step is Step.AUTHENTICATE and refused:
                    reauthenticated = True
            else:
                attempt += 1
                logger.info(
                    "%s: %s (%s); next: %s",
                    step.value,
                    outcome.value,
                    failure,
                    decision.action.value,
                )
            refused = refused or decision.action is Action.REAUTHENTICATE
            action = self._execute(decision, failure)
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)

    async def _wait_for_room(self) -> None:
        """Wait until the consumer made room, or the session is known to be gone (a
        request waiting for a new session must not wait for the consumer)."""
        assert self._queue is not None and self._interrupted is not None
        if self._queue.full() and not self._interrupted.is_set():
            # _session_gone() wakes this wait: one task to resume when room comes.
            await self._queue.wait_for_room()

    def _execute(self, decision: Decision, failure: BaseException | None) -> Action:
        """Carry out the bookkeeping of *decision*; return the step to take next."""
        assert self._queue is not None and self._connected is not None
        action = decision.action
        if action is Action.FAIL:
            assert failure is not None
            raise failure
        if action is Action.GIVE_UP:
            raise self._timeout_error(failure) from failure
        if action is Action.REPORT:
            assert isinstance(failure, ServerError)
            channel = self._restore.pop(0)
            logger.warning("could not restore the subscription to %s: %s", channel, failure)
            self._protocol.forget_subscription(channel)
            self._queue.put_error(failure)
            action = Action.RESUBSCRIBE
        if action is Action.RESUBSCRIBE and not self._restore:
            self._connected.set()
            return Action.CONNECT
        if action in (Action.HANDSHAKE, Action.AUTHENTICATE, Action.REAUTHENTICATE):
            self._connected.clear()
            if self._protocol.state is State.CONNECTED:
                self._protocol.session_lost()
        return action

    def _timeout_error(self, cause: BaseException | None) -> TransportTimeoutError:
        what = "open the session" if self._task is None else "reconnect"
        reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        return TransportTimeoutError(
            f"could not {what} within {self.connection_timeout:g} s; last error: {reason}"
        )

    async def _attempt(
        self, step: Step, remaining: float | None
    ) -> tuple[Outcome, BaseException | None, float | None]:
        """Take one step; return its outcome, the error if it failed, and Retry-After."""
        assert self._interrupted is not None
        try:
            await self._perform(step, remaining)
        except Exception as error:  # classified: the table decides what is final
            outcome, failure = self._outcome_of(error)
            return outcome, failure, getattr(error, "retry_after", None)
        if self._interrupted.is_set():
            self._interrupted.clear()
            if step in (Step.RESUBSCRIBE, Step.CONNECT):
                # The session this step ran in is over. Before a handshake there is
                # no session to lose: the news is old.
                outcome, failure = self._interruption
                return outcome, failure, None
        return Outcome.SUCCESS, None, None

    def _outcome_of(self, error: BaseException) -> tuple[Outcome, BaseException]:
        """Classify what a step raised; a refusal is classified by its reply."""
        if isinstance(error, asyncio.TimeoutError):  # a step bounded by the deadline
            error = TransportTimeoutError("no answer before the connection_timeout deadline")
        if isinstance(error, ServerError) and error.response is not None:
            return self._policy.classify_reply(
                error.response, self._protocol.advice
            ), self._refusal(error)
        return self._policy.classify_error(error), error

    async def _perform(self, step: Step, remaining: float | None) -> None:
        """Do one step; raise what went wrong."""
        if step is Step.AUTHENTICATE:
            limit = None if remaining is None else self._bounded(remaining, remaining)
            await asyncio.wait_for(self._authenticate(), limit)
        elif step is Step.HANDSHAKE:
            assert self._interrupted is not None
            self._interrupted.clear()
            reply = await self._exchange(
                self._protocol.handshake(), self._bounded(REQUEST_TIMEOUT, remaining)
            )
            self._protocol.handle_handshake(reply)
            self._use_transport(self._protocol.connection_type)
            self._restore = self._protocol.subscription_order
        elif step is Step.RESUBSCRIBE:
            await self._subscribe_request(
                self._restore[0], timeout=self._bounded(REQUEST_TIMEOUT, remaining)
            )
            self._restore.pop(0)
        else:
            await self._poll(self._bounded(self._protocol.advice.timeout + POLL_MARGIN, remaining))

    async def _poll(self, timeout: float) -> None:
        """One ``/meta/connect``; ends early when the session is known to be gone."""
        assert self._interrupted is not None
        if self._interrupted.is_set():
            return
        poll = asyncio.ensure_future(self._exchange(self._protocol.connect(), timeout))
        interrupted = asyncio.ensure_future(self._interrupted.wait())
        try:
            await asyncio.wait((poll, interrupted), return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
            if not poll.done():
                poll.cancel()
                # asyncio.wait, unlike awaiting the poll, cannot mistake the poll's
                # cancellation for ours: close() still stops this task.
                await asyncio.wait((poll,))
        if poll.cancelled():
            return
        reply = poll.result()
        if not reply.get("successful"):
            raise ServerError(f"{MetaChannel.CONNECT.value} refused", reply)


# The step each action takes.
_STEP_OF = {
    Action.AUTHENTICATE: Step.AUTHENTICATE,
    Action.REAUTHENTICATE: Step.AUTHENTICATE,
    Action.HANDSHAKE: Step.HANDSHAKE,
    Action.RESUBSCRIBE: Step.RESUBSCRIBE,
    Action.CONNECT: Step.CONNECT,
}
