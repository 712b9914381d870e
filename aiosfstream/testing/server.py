"""The emulator's HTTP server and its Python control API."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import errno
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from .admin import AdminAPI
from .bayeux import DEFAULT_CONNECT_TIMEOUT, MAX_REQUEST_BYTES, BayeuxService
from .events import build_event_message
from .oauth import OAuthService
from .state import (
    DEFAULT_CLIENT_EXPIRY,
    ConnectedApp,
    EmulatorStats,
    Fault,
    OrgSettings,
    OrgState,
    RequestLog,
    User,
    name_set,
)

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_HOST",
    "DISCONNECT_OPERATIONS",
    "FAULT_OPERATIONS",
    "Credentials",
    "SalesforceEmulator",
]

#: The host of the emulator's URLs. A name, not an address: cookie jars (aiohttp's default
#: one among them) drop cookies of IP-address hosts, and Bayeux needs its session cookie
#: back. It is served on both loopback addresses, whichever one a client resolves first.
DEFAULT_HOST = "localhost"
_LOOPBACKS = ("127.0.0.1", "::1")
#: A loopback this machine lacks (no IPv6, say) is skipped when serving ``localhost``.
_NO_SUCH_ADDRESS = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
#: Tries at finding a port free on every loopback when the port is picked at random.
_PORT_ATTEMPTS = 10

#: Operations :meth:`SalesforceEmulator.fail_next` can make fail.
FAULT_OPERATIONS = ("handshake", "connect", "subscribe", "unsubscribe", "disconnect", "token")
#: Operations whose reply :meth:`SalesforceEmulator.disconnect_next` can end the session in.
DISCONNECT_OPERATIONS = ("handshake", "connect", "subscribe", "unsubscribe")


@dataclass(frozen=True)
class Credentials:
    """Login details of a user and the connected app they log in through."""

    consumer_key: str
    consumer_secret: str
    username: str
    password: str

    def __repr__(self) -> str:
        return (
            f"Credentials(consumer_key={self.consumer_key!r}, consumer_secret='***', "
            f"username={self.username!r}, password='***')"
        )


#: The user and app every emulator starts with.
DEFAULT_CREDENTIALS = Credentials(
    consumer_key="3MVG9emulatorConsumerKey",
    consumer_secret="emulator-consumer-secret",
    username="user@example.com",
    password="emulator-password",
)


class SalesforceEmulator:
    """A local stand-in for a Salesforce org's Streaming API and OAuth token endpoint.

    The server's URLs name ``host`` (``localhost``) and ``port`` (0: a free port, kept
    across :meth:`restart`). The org (users, apps, tokens, channels, events) lives in
    memory and survives restarts; Bayeux sessions do not.

    :param host: host name of every URL the emulator hands out, and where it listens:
        ``localhost`` (the default) listens on both 127.0.0.1 and ::1 (when the machine
        has IPv6); anything else, such as ``127.0.0.1`` or ``0.0.0.0``, is listened on as
        given.
    :param port: TCP port; 0 picks a free one.
    :param connect_timeout: seconds a ``/meta/connect`` is held when no event arrives
        (Salesforce: 110).
    :param client_expiry: seconds a client may take to reconnect before its session is
        dropped and it gets ``403::Unknown client`` (Salesforce: 40).
    :param retention: seconds events are kept; ``None`` uses Salesforce's windows, 24 hours
        for PushTopic and generic events, 72 hours for platform and change events.
    :param clock: time source for retention, client expiry and event dates (default
        ``time.time``); :meth:`advance` shifts it.
    :param session_timeout: seconds of disuse after which an access token dies; ``None``
        (the default) keeps tokens alive until revoked.
    :param max_clients: concurrent Bayeux clients allowed before handshakes are denied
        with ``403::Organization concurrent user limit exceeded``; ``None``: no limit.
    :param max_connections_per_user: concurrent Bayeux clients of one user allowed before
        its handshakes are denied with the "simultaneous connections" failure reason.
    :param daily_delivery_limit: event deliveries per rolling 24 hours before connects
        fail with ``403::Organization total events daily limit exceeded``.
    :param max_batch_size: most events returned by one ``/meta/connect``; ``None``: all.
    :param credentials: the default user and app (:data:`DEFAULT_CREDENTIALS`).
    :param admin_api: serve the ``/__admin__/`` HTTP control API.
    :param instance_url: the ``instance_url`` the token endpoint hands out, e.g. the URL of
        a proxy in front of the Bayeux endpoint; ``None`` (the default) is :attr:`url`.
        Settable later through :attr:`instance_url`.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        client_expiry: float = DEFAULT_CLIENT_EXPIRY,
        retention: float | None = None,
        clock: Callable[[], float] | None = None,
        session_timeout: float | None = None,
        max_clients: int | None = None,
        max_connections_per_user: int | None = None,
        daily_delivery_limit: int | None = None,
        max_batch_size: int | None = None,
        credentials: Credentials | None = None,
        admin_api: bool = True,
        instance_url: str | None = None,
    ) -> None:
        self._host = host
        self._instance_url = instance_url
        self._port = port
        self._base_clock: Callable[[], float] = clock or time.time
        self._offset = 0.0
        self._admin_api = admin_api
        self._runner: web.AppRunner | None = None
        self.state = OrgState(
            clock=self.now,
            client_expiry=client_expiry,
            retention=retention,
            session_timeout=session_timeout,
        )
        self.configure(
            max_clients=max_clients,
            max_connections_per_user=max_connections_per_user,
            daily_delivery_limit=daily_delivery_limit,
            max_batch_size=max_batch_size,
        )
        #: Requests served, most recent last.
        self.log = RequestLog(self.now)
        self.credentials = credentials or DEFAULT_CREDENTIALS
        self.state.add_user(self.credentials.username, self.credentials.password)
        self.state.add_app(
            self.credentials.consumer_key,
            self.credentials.consumer_secret,
            run_as=self.credentials.username,
        )
        self._bayeux = BayeuxService(self.state, connect_timeout=connect_timeout, log=self.log)
        self._oauth = OAuthService(
            self.state, lambda: self.url, self.log, instance_url=lambda: self._instance_url
        )

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        state = "running" if self.running else "stopped"
        return f"<SalesforceEmulator {where} {state}>"

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """``True`` while the server accepts connections."""
        return self._runner is not None

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. ``http://localhost:54321`` (also the instance URL)."""
        if not self._port:
            raise RuntimeError("the emulator has not been started yet")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port (0 until the first :meth:`start`)."""
        return self._port

    @property
    def instance_url(self) -> str:
        """The ``instance_url`` of token responses: where clients send Bayeux requests.

        :attr:`url` unless set, e.g. to a proxy that forwards to :attr:`url`; set ``None``
        to go back to :attr:`url`. Clients read it at their next token request.
        """
        return self._instance_url or self.url

    @instance_url.setter
    def instance_url(self, value: str | None) -> None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"instance_url must be an http(s) URL, got {value!r}")
        self._instance_url = value.rstrip("/") if value is not None else None

    @property
    def token_url(self) -> str:
        """URL of the OAuth token endpoint."""
        return f"{self.url}/services/oauth2/token"

    def cometd_url(self, version: str = "66.0") -> str:
        """URL of the Streaming API endpoint for API *version*."""
        return f"{self.url}/cometd/{version}"

    async def start(self) -> None:
        """Start listening (on the same port as before after a :meth:`stop`)."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        app = web.Application(client_max_size=max(MAX_REQUEST_BYTES * 4, 1024**2))
        self._oauth.add_routes(app)
        self._bayeux.add_routes(app)
        if self._admin_api:
            AdminAPI(self).add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            self._port = await self._listen(runner)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def _listen(self, runner: web.AppRunner) -> int:
        """Listen on every address ``host`` stands for, all on one port; return the port."""
        if self._host != DEFAULT_HOST:
            return await _listen_on(runner, [self._host], self._port, optional=False)
        attempt = 1
        while True:
            try:
                return await _listen_on(runner, _LOOPBACKS, self._port, optional=True)
            except OSError as error:
                # A port picked at random on 127.0.0.1 may be taken on ::1: pick another.
                if self._port or error.errno != errno.EADDRINUSE or attempt == _PORT_ATTEMPTS:
                    raise
                attempt += 1

    async def stop(self, *, keep_sessions: bool = False) -> None:
        """Stop listening and cut every open connection.

        The org survives; the Bayeux sessions are dropped (clients then get
        ``403::Unknown client``) unless *keep_sessions* is true.
        """
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        self._bayeux.wake_all("dropped")
        _abort_connections(runner)
        await runner.cleanup()
        if not keep_sessions:
            self.state.close_sessions(None, "stopped")

    async def restart(self, *, keep_sessions: bool = False) -> None:
        """Stop, then start again on the same port."""
        await self.stop(keep_sessions=keep_sessions)
        await self.start()

    async def __aenter__(self) -> SalesforceEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def drop_connections(self) -> None:
        """Cut every open HTTP connection, as a network failure would.

        Held connects end without an answer; sessions and queued events are kept, so a
        client that reconnects within the expiry receives them.
        """
        self._drop()
        await asyncio.sleep(0)

    def _drop(self, keep: object = None) -> None:
        self._bayeux.wake_all("dropped")
        if self._runner is not None:
            _abort_connections(self._runner, keep)

    # -- time ---------------------------------------------------------------------------

    def now(self) -> float:
        """Return the emulator's current time (the clock plus every :meth:`advance`)."""
        return self._base_clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward, e.g. past the client expiry or retention."""
        if not math.isfinite(seconds):
            raise ValueError("the clock moves forward by a finite number of seconds")
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    # -- org setup ----------------------------------------------------------------------

    def add_user(self, username: str, password: str) -> User:
        """Add a user who can log in with the password or JWT flows."""
        return self.state.add_user(username, password)

    def add_app(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        jwt_public_key: str | None = None,
        jwt_approved_users: Iterable[str] | None = None,
        run_as: str | None = None,
    ) -> ConnectedApp:
        """Add a connected app.

        :param jwt_public_key: PEM public key or certificate that verifies JWT assertions.
        :param jwt_approved_users: users allowed to use the JWT flow (``None``: all).
        :param run_as: username of the client credentials flow (``None``: flow disabled).
        """
        return self.state.add_app(
            consumer_key,
            consumer_secret,
            jwt_public_key=jwt_public_key,
            jwt_approved_users=jwt_approved_users,
            run_as=run_as,
        )

    def set_jwt_public_key(self, pem: str, consumer_key: str | None = None) -> None:
        """Let app *consumer_key* (default: the default app) accept JWTs signed for *pem*."""
        self.state.apps[consumer_key or self.credentials.consumer_key].jwt_public_key = pem

    @property
    def password_flow_enabled(self) -> bool:
        """Whether the username-password flow works (blocked by default in new orgs)."""
        return self.state.settings.password_flow_enabled

    @password_flow_enabled.setter
    def password_flow_enabled(self, value: bool) -> None:
        self.configure(password_flow_enabled=value)

    @property
    def settings(self) -> OrgSettings:
        """A copy of the org's limits and switches; change them with :meth:`configure`."""
        return dataclasses.replace(self.state.settings)

    def configure(self, **settings: Any) -> OrgSettings:
        """Change org settings (the fields of :class:`OrgSettings`); return them all.

        For example ``configure(daily_delivery_limit=100, dynamic_channels=True)``. Nothing
        changes unless every value is valid. Limits apply from the next request on.
        """
        self.state.settings.update(settings)
        return self.settings

    def set_user_permissions(
        self,
        username: str | None = None,
        *,
        streaming_enabled: bool | None = None,
        view_all_data: bool | None = None,
        can_create_channels: bool | None = None,
        hidden_fields: Iterable[str] | None = None,
    ) -> User:
        """Change what user *username* (default: the default user) may do; ``None`` keeps.

        Subscribes are then refused as Salesforce refuses them: ``403::User not enabled
        for streaming`` without *streaming_enabled*, the CDC error without
        *view_all_data*, ``403::Cannot create channel {...}`` on dynamic channel creation
        without *can_create_channels*, and a PushTopic whose *where_fields* include one of
        *hidden_fields* refuses the user.
        """
        user = self.state.users.get(username or self.credentials.username)
        if user is None:
            raise ValueError(f"unknown user {username!r}")
        switches = {
            "streaming_enabled": streaming_enabled,
            "view_all_data": view_all_data,
            "can_create_channels": can_create_channels,
        }
        for name, value in switches.items():
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name} must be true or false")
        hidden = None if hidden_fields is None else name_set("hidden_fields", hidden_fields)
        for name, value in switches.items():
            if value is not None:
                setattr(user, name, value)
        if hidden is not None:
            user.hidden_fields = hidden
        return user

    def issue_refresh_token(
        self, username: str | None = None, consumer_key: str | None = None
    ) -> str:
        """Return a refresh token, as an earlier web-server flow would have issued."""
        return self.state.issue_refresh_token(
            username or self.credentials.username, consumer_key or self.credentials.consumer_key
        )

    def issue_access_token(self, username: str | None = None) -> str:
        """Return a fresh access token without going through the token endpoint."""
        token = self.state.issue_token(
            username or self.credentials.username, self.credentials.consumer_key
        )
        return token.value

    def create_channel(
        self,
        name: str,
        *,
        fields: Iterable[str] | None = None,
        where_fields: Iterable[str] = (),
        max_subscribers: int | None = None,
        users: Iterable[str] | None = None,
    ) -> None:
        """Create a PushTopic (``/topic/X``), generic channel (``/u/X``), event or CDC channel.

        Platform event and CDC channels are also created by their first :meth:`publish`.
        Calling it again keeps the channel's events and replaces its options:

        :param fields: PushTopic: the fields of its entity; a filtered subscription on
            another field gets ``400::Query fields {...} do not exist on the topic entity``.
            ``None``: any field.
        :param where_fields: PushTopic: the fields its query's ``WHERE`` uses; users who
            cannot see one of them (:meth:`set_user_permissions`) are refused.
        :param max_subscribers: PushTopic or generic channel: clients subscribed at once
            before ``403::Subscription limit exceeded for this topic``.
        :param users: usernames allowed to subscribe (``None``: everyone); the others get
            the refusal of the channel's family (no access to the entity, ``No access on
            channel``, ``Restricted channel``).
        """
        self.state.create_channel(
            name,
            fields=fields,
            where_fields=where_fields,
            max_subscribers=max_subscribers,
            users=users,
        )

    @property
    def channels(self) -> list[str]:
        """Names of the existing channels."""
        return list(self.state.channels)

    # -- events -------------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        payload: Any = None,
        *,
        event_type: str | None = None,
        replay_id: int | None = None,
        raw: bool = False,
    ) -> dict[str, Any]:
        """Publish an event on *channel* and return the message subscribers receive.

        *payload* is the record (``/topic/``), the string payload (``/u/``), the event
        fields (``/event/``) or the changed fields, optionally with a partial
        ``ChangeEventHeader`` (``/data/``). *event_type* is the PushTopic ``type``
        (``created``...) or the CDC ``changeType`` (``CREATE``...). *replay_id* forces an id,
        which must be above the previous one (to make gaps). With *raw*, *payload* is the
        whole ``data`` object, only ``data.event.replayId`` is set.
        Held connects of subscribed clients answer at once. Call from the event loop's thread.
        """
        user_id = self.state.users[self.credentials.username].user_id
        event, sessions = self.state.append_event(
            channel,
            lambda chan, rid, created: build_event_message(
                channel,
                rid,
                created,
                payload,
                event_type=event_type,
                schema_id=chan.schema_id,
                user_id=user_id,
                ids=self.state.ids,
                raw=raw,
            ),
            replay_id=replay_id,
        )
        self._bayeux.wake(sessions)
        return copy.deepcopy(event.message)

    def events(self, channel: str) -> list[dict[str, Any]]:
        """Return the retained event messages of *channel*, oldest first."""
        return [copy.deepcopy(event.message) for event in self.state.iter_events(channel)]

    def purge_retention(self, before: float | None = None) -> int:
        """Drop events outside the retention window (or created before *before*).

        Return how many were dropped. Subscribing with the replay id of a dropped event
        then fails with the invalid-replay error.
        """
        return self.state.purge(before)

    # -- sessions and failures ----------------------------------------------------------

    @property
    def client_ids(self) -> list[str]:
        """Client ids of the live Bayeux sessions."""
        return [session.client_id for session in self.state.live_sessions()]

    def subscriptions(self, client_id: str) -> list[str]:
        """Return the subscriptions of client *client_id*."""
        return list(self.state.sessions[client_id].subscriptions)

    def revoke_tokens(self, username: str | None = None) -> int:
        """Revoke the tokens of *username* (default: everyone's); return how many.

        Held connects answer ``401::Authentication invalid`` at once; handshakes with a
        revoked token are denied.
        """
        count = self.state.revoke_tokens(username)
        self._bayeux.wake_all()
        return count

    def expire_client(self, client_id: str | None = None, *, notify: bool = True) -> list[str]:
        """Drop Bayeux session *client_id* (``None``: all), as after a missed reconnect.

        The client's next request gets ``403::Unknown client`` with advice to handshake
        again. Its held connect gets it at once, or, with *notify* false, only when the
        hold ends (timeout), so that the client's next subscribe or unsubscribe is what
        learns of the expiry. Return the ids dropped.
        """
        sessions = self.state.close_sessions(client_id, "expired")
        if notify:
            self._bayeux.wake(sessions)
        return [session.client_id for session in sessions]

    def server_disconnect(self, client_id: str | None = None) -> list[str]:
        """Send ``/meta/disconnect`` to client *client_id* (``None``: all), as API 64.0+ does.

        A held connect answers at once with the disconnect message; an idle client gets it
        on its next connect. The session then ends. Return the ids affected.
        """
        sessions = self.state.select_sessions(client_id)
        for session in sessions:
            session.disconnect_pending = True
        self._bayeux.wake(sessions)
        return [session.client_id for session in sessions]

    def fail_next(
        self,
        operation: str,
        reason: str | None = None,
        *,
        error: str | None = None,
        advice: dict[str, Any] | None = None,
        http_status: int | None = None,
        body: str | None = None,
        content_type: str = "text/html",
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Make the next *times* requests of *operation* fail.

        *operation* is ``handshake``, ``connect``, ``subscribe``, ``unsubscribe``,
        ``disconnect`` (a ``/meta/`` prefix is allowed) or ``token``.

        By default the Bayeux reply carries Salesforce's failure for *reason* (default
        ``503::Server is too busy.  Please try your request again later.``): a handshake
        is ``403::Handshake denied`` with *reason* in ``ext.sfdc.failureReason``, a connect
        with a 503 reason is ``401::Authentication invalid`` with the 503 as failure
        reason (as documented), other reasons become the ``error``. *error* and *advice*
        override those fields. With *http_status* the whole HTTP response is replaced
        (an HTML page unless *body* is given) and *headers* are added to it: a
        ``Retry-After``, or the ``Location`` of a redirect (``http_status=307``). For
        ``token``, *error* and *reason* give the OAuth ``error`` and ``error_description``.

        Faults armed for one operation are served in the order they were armed, so a
        burst of different answers (503, then 502, then 429...) is several calls.
        """
        name = operation.removeprefix("/meta/")
        if name not in FAULT_OPERATIONS:
            raise ValueError(
                f"unknown operation {operation!r}; expected one of {', '.join(FAULT_OPERATIONS)}"
            )
        if times < 1:
            raise ValueError("times must be at least 1")
        if headers is not None and http_status is None:
            raise ValueError("headers need an http_status: they go on the HTTP answer")
        if headers is not None and not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise ValueError("headers must map str to str")
        self.state.faults.append(
            Fault(
                name,
                reason,
                error,
                advice,
                http_status,
                body,
                content_type,
                times,
                headers=dict(headers) if headers is not None else None,
            )
        )

    def disconnect_next(self, operation: str, *, times: int = 1) -> None:
        """End the session in the reply to the next *times* requests of *operation*.

        *operation* is ``handshake``, ``connect``, ``subscribe`` or ``unsubscribe`` (a
        ``/meta/`` prefix is allowed). The request is served as usual (a handshake opens
        its session, a connect delivers its events, a subscribe subscribes), then the
        session ends and a server ``/meta/disconnect`` goes first in the same reply, as
        Salesforce (API 64.0+) does when it scales; later requests of that session get
        ``403::Unknown client``. Armed in the same queue as :meth:`fail_next`.
        """
        name = operation.removeprefix("/meta/")
        if name not in DISCONNECT_OPERATIONS:
            raise ValueError(
                f"unknown operation {operation!r}; "
                f"expected one of {', '.join(DISCONNECT_OPERATIONS)}"
            )
        if times < 1:
            raise ValueError("times must be at least 1")
        self.state.faults.append(Fault(name, times=times, server_disconnect=True))

    # -- observation --------------------------------------------------------------------

    @property
    def stats(self) -> EmulatorStats:
        """Counters of requests served (token requests, handshakes, connects...)."""
        return self.state.stats


async def _listen_on(
    runner: web.AppRunner, addresses: Iterable[str], port: int, *, optional: bool
) -> int:
    """Listen on each of *addresses* on *port* (0: the one the first address gets).

    With *optional*, an address the machine does not have is skipped, as long as one is
    served. On failure nothing is left listening.
    """
    sites: list[web.TCPSite] = []
    try:
        for address in addresses:
            site = web.TCPSite(runner, address, port)
            sites.append(site)
            try:
                await site.start()
            except OSError as error:
                if not (optional and error.errno in _NO_SUCH_ADDRESS):
                    raise
                await site.stop()
                sites.remove(site)
                continue
            port = port or runner.addresses[-1][1]
        if not sites:
            raise OSError(errno.EADDRNOTAVAIL, "no loopback address to listen on")
    except BaseException:
        for site in sites:
            await site.stop()
        raise
    return port


def _abort_connections(runner: web.BaseRunner, keep: object = None) -> None:
    """Abort every open connection of *runner*, except the transport *keep*."""
    server = runner.server
    if server is None:
        return
    for handler in server.connections:
        transport = handler.transport
        if transport is not None and transport is not keep:
            transport.abort()
