"""The Bayeux endpoint ``/cometd/<version>`` of the emulated org (long polling only).

It answers like Salesforce's customised CometD 3 server: JSON array bodies only, an OAuth
token in ``Authorization`` on every request, the ``BAYEUX_BROWSER`` cookie set at
handshake and required afterwards, a first ``/meta/connect`` that returns at once with
advice, later ones held until events arrive or the timeout passes, ``403::Unknown client``
for expired sessions, and the replay extension on ``/meta/subscribe``. Error texts are the
ones Salesforce sends on the wire, which sometimes differ from its documentation table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from .oauth import error_page
from .state import (
    ChannelNotFound,
    Delivery,
    Fault,
    InvalidReplayId,
    OrgState,
    Refusal,
    RequestLog,
    Session,
    SubscriptionRefused,
    channel_kind,
    split_subscription,
)

__all__ = [
    "AUTH_INVALID",
    "AUTH_REQUIRED",
    "CASE_CLASH",
    "CDC_NEEDS_VIEW_ALL_DATA",
    "CHANNEL_LIMIT",
    "CHANNEL_NOT_SPECIFIED",
    "CONCURRENT_LIMIT",
    "CONNECTION_LIMIT",
    "DAILY_LIMIT",
    "DEFAULT_CONNECT_TIMEOUT",
    "HANDSHAKE_DENIED",
    "HANDSHAKE_NOT_COMPLETED",
    "LEADING_SLASH",
    "MAX_REQUEST_BYTES",
    "MINIMUM_API_VERSION",
    "NO_CHANNEL_ACCESS",
    "NO_ENTITY_ACCESS",
    "NO_FIELD_ACCESS",
    "PUBLISH_DENIED",
    "REQUEST_TOO_LARGE",
    "RESTRICTED_CHANNEL",
    "SERVER_TOO_BUSY",
    "STREAMING_DISABLED",
    "SUBSCRIPTION_LIMIT",
    "UNKNOWN_CHANNEL",
    "UNKNOWN_CLIENT",
    "USER_MISMATCH",
    "VERSION_MANDATORY",
    "VERSION_UNSUPPORTED",
    "BayeuxService",
    "cannot_create_channel",
    "channel_does_not_exist",
    "invalid_connection_type",
    "invalid_replay_id",
    "missing_cookie",
    "refusal_error",
    "unknown_query_fields",
]

#: "If no events are generated ... the connection times out after 110 seconds."
DEFAULT_CONNECT_TIMEOUT = 110.0
#: "The maximum size of the HTTP request post body that the server can accept ... 32,768 bytes"
MAX_REQUEST_BYTES = 32_768
#: Oldest API version the emulator serves (Streaming API error table).
MINIMUM_API_VERSION = 37.0
BROWSER_COOKIE = "BAYEUX_BROWSER"
LONG_POLLING = "long-polling"

# -- wire texts (Streaming API "Streaming API Error Codes" and "Handling Errors") ---------
VERSION_MANDATORY = "400::API version in the URI is mandatory. URI format: '/cometd/66.0'"
VERSION_UNSUPPORTED = (
    "400::Unsupported API version. Only API versions '37.0' and later are supported. "
    "URI format: '/cometd/66.0'"
)
HANDSHAKE_DENIED = "403::Handshake denied"
AUTH_INVALID = "401::Authentication invalid"
AUTH_REQUIRED = "401::Request requires authentication."
UNKNOWN_CLIENT = "403::Unknown client"
HANDSHAKE_NOT_COMPLETED = "403::Client has not completed handshake"
CONCURRENT_LIMIT = "403::Organization concurrent user limit exceeded"
SERVER_TOO_BUSY = "503::Server is too busy.  Please try your request again later."
CHANNEL_NOT_SPECIFIED = "400::Channel name not specified"
LEADING_SLASH = "400::Channel subscriptions must start with a leading '/'"
UNKNOWN_CHANNEL = "404::Unknown channel"
USER_MISMATCH = "400::Authenticated user id does not match the session's user id"
REQUEST_TOO_LARGE = "413::Maximum Request Size Exceeded"
DAILY_LIMIT = "403::Organization total events daily limit exceeded"
#: The per-user connection denial, in ``ext.sfdc.failureReason`` (two spaces between sentences).
CONNECTION_LIMIT = (
    "403::To protect all customers from excessive use and Denial of Service attacks, we limit "
    "the number of simultaneous connections per server.  Your request has been denied because "
    "this limit has been exceeded.  Please try your request again later."
)
SUBSCRIPTION_LIMIT = "403::Subscription limit exceeded for this topic"
STREAMING_DISABLED = "403::User not enabled for streaming"
CDC_NEEDS_VIEW_ALL_DATA = "403::User not allowed to subscribe CDC without View All Data permissions"
RESTRICTED_CHANNEL = "403::Restricted channel"
NO_ENTITY_ACCESS = "403::Subscriber does not have access to the entity in this topic"
NO_FIELD_ACCESS = (
    "403::Subscriber does not have access to all fields referenced in the where clause of "
    "the PushTopic"
)
# Generic streaming (/u/...) only.
NO_CHANNEL_ACCESS = "403::No access on channel"
CHANNEL_LIMIT = "403::Unable to create channel dynamically, maximum channel limit has been exceeded"
CASE_CLASH = "403::channel names may not vary only by case"
#: Not a Salesforce text: Salesforce has no CometD publish (events come from REST, Apex...).
PUBLISH_DENIED = "403::Publishing over CometD is not supported by the Streaming API"
# Emulator texts for requests Salesforce's documentation says nothing about.
_NOT_AN_ARRAY = "400::Bayeux messages must be sent as a JSON array"
_BAD_JSON = "400::Request body is not valid JSON"
_BAD_CONTENT_TYPE = "400::Content-Type must be application/json"

_HANDSHAKE_EXT: dict[str, Any] = {"replay": True, "payload.format": True}
_RETRY_HANDSHAKE: dict[str, Any] = {"interval": 0, "reconnect": "handshake"}
_NO_RECONNECT: dict[str, Any] = {"reconnect": "none", "interval": 0}
_VERSION_RE = re.compile(r"^\d{1,3}\.\d$")
_AUTH_RE = re.compile(r"^(?:Bearer|OAuth)\s+(\S+)\s*$", re.IGNORECASE)


def invalid_replay_id(replay_id: object) -> str:
    """Return the invalid-replay error; note the two spaces after "invalid."."""
    return (
        f"400::The replayId {{{replay_id}}} you provided was invalid.  Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )


def channel_does_not_exist(channel: str) -> str:
    """Return the unknown-channel error, as sent on the wire ("does not exist")."""
    return f"400::The channel you requested to subscribe to does not exist {{{channel}}}"


def invalid_connection_type(connection_type: object) -> str:
    """Return the error for a transport other than long polling."""
    return f"400::Invalid connection type {{{connection_type}}}"


def cannot_create_channel(channel: str) -> str:
    """Return the error for a channel the user may not create."""
    return f"403::Cannot create channel {{{channel}}}"


def unknown_query_fields(fields: Iterable[str]) -> str:
    """Return the error for PushTopic filter fields the topic's entity lacks.

    Salesforce documents one placeholder; several fields are joined with ", ".
    """
    return f"400::Query fields {{{', '.join(fields)}}} do not exist on the topic entity"


_NO_ACCESS = {
    "topic": NO_ENTITY_ACCESS,
    "u": NO_CHANNEL_ACCESS,
    "event": RESTRICTED_CHANNEL,
    "data": RESTRICTED_CHANNEL,
}
_REFUSALS: dict[Refusal, str] = {
    "streaming_disabled": STREAMING_DISABLED,
    "no_field_access": NO_FIELD_ACCESS,
    "cdc_needs_view_all_data": CDC_NEEDS_VIEW_ALL_DATA,
    "subscriber_limit": SUBSCRIPTION_LIMIT,
    "channel_limit": CHANNEL_LIMIT,
    "case_clash": CASE_CLASH,
}


def refusal_error(refusal: SubscriptionRefused) -> str:
    """Return the ``/meta/subscribe`` error for a refused subscription."""
    if refusal.reason == "no_access":
        return _NO_ACCESS[channel_kind(refusal.channel) or "event"]
    if refusal.reason == "cannot_create":
        return cannot_create_channel(refusal.channel)
    if refusal.reason == "unknown_query_fields":
        return unknown_query_fields(refusal.fields)
    return _REFUSALS[refusal.reason]


def missing_cookie(client_id: str) -> str:
    """Return the error for a request without the session's browser cookie."""
    return (
        f"400::Client {client_id} has established a session, but no {BROWSER_COOKIE} cookie present"
    )


def parse_api_version(tail: str) -> tuple[float | None, str | None]:
    """Parse the part of the path after ``/cometd``; return ``(version, error)``."""
    text = tail.strip("/")
    if not text:
        return None, VERSION_MANDATORY
    if not _VERSION_RE.match(text) or float(text) < MINIMUM_API_VERSION:
        return None, VERSION_UNSUPPORTED
    return float(text), None


class _HttpFailure(Exception):
    """Abort the whole request with this HTTP response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Dropped(Exception):
    """The held connect's connection was cut by the emulator."""


class _Waiter:
    """A held ``/meta/connect``, woken by events or by the emulator's controls."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.reason: str | None = None
        self._event = asyncio.Event()

    def wake(self, reason: str = "events") -> None:
        if self.reason is None or reason == "dropped":
            self.reason = reason
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@dataclass
class _Context:
    """What one HTTP request carries besides its messages."""

    request: web.Request
    version: float
    token: str | None
    browser_id: str | None
    new_browser_id: str | None = None
    #: Set by an injected ``server_disconnect`` fault: end the session after this message.
    disconnect: bool = False


def _reply(message: dict[str, Any], head: dict[str, Any], tail: dict[str, Any]) -> dict[str, Any]:
    """Build a reply to *message*: *head*, the request's ``id`` if it had one, then *tail*.

    The field order follows Salesforce's replies, which makes logs easy to compare.
    """
    reply = dict(head)
    if "id" in message:
        reply["id"] = message["id"]
    reply.update(tail)
    return reply


def _error(
    message: dict[str, Any],
    error: str,
    *,
    client_id: str | None = None,
    advice: dict[str, Any] | None = None,
    ext: dict[str, Any] | None = None,
) -> dict[str, Any]:
    reply: dict[str, Any] = {}
    if client_id is not None:
        reply["clientId"] = client_id
    if advice is not None:
        reply["advice"] = dict(advice)
    if ext is not None:
        reply["ext"] = ext
    reply["channel"] = message.get("channel")
    if "id" in message:
        reply["id"] = message["id"]
    if message.get("channel") in ("/meta/subscribe", "/meta/unsubscribe"):
        reply["subscription"] = message.get("subscription")
    reply["error"] = error
    reply["successful"] = False
    return reply


def _http_error(status: int, error: str, reason: str | None = None) -> web.Response:
    body = [{"error": error, "successful": False}]
    return web.json_response(body, status=status, reason=reason)


def fault_response(fault: Fault) -> web.Response:
    """Return the HTTP response of an injected HTTP-level fault."""
    assert fault.http_status is not None
    response = web.Response(
        status=fault.http_status,
        text=fault.body if fault.body is not None else error_page(fault.http_status),
        content_type=fault.content_type,
    )
    response.headers.update(fault.headers or {})
    return response


class BayeuxService:
    """aiohttp handler and session logic for ``/cometd/<version>``."""

    def __init__(
        self,
        state: OrgState,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        log: RequestLog | None = None,
    ) -> None:
        self.state = state
        self.connect_timeout = connect_timeout
        self._log = log
        self._waiters: dict[str, _Waiter] = {}

    def add_routes(self, app: web.Application) -> None:
        """Register the endpoint on *app*."""
        app.router.add_route("*", r"/cometd{tail:(/.*)?}", self.handle)

    # -- waking held connects ------------------------------------------------------------

    @property
    def held_client_ids(self) -> list[str]:
        """Client ids whose ``/meta/connect`` is currently held."""
        return list(self._waiters)

    def wake(self, sessions: Iterable[Session], reason: str = "events") -> None:
        """Make the held connects of *sessions* answer now."""
        for session in sessions:
            waiter = self._waiters.get(session.client_id)
            if waiter is not None:
                waiter.wake(reason)

    def wake_all(self, reason: str = "events") -> None:
        """Make every held connect answer now (``"dropped"``: answer nothing)."""
        for waiter in list(self._waiters.values()):
            waiter.wake(reason)

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one Bayeux HTTP request."""
        self.state.stats.bayeux_requests += 1
        messages: list[Any] | None = None
        try:
            messages, response = await self._handle(request)
        except _HttpFailure as failure:
            response = failure.response
        except _Dropped:
            if request.transport is not None:
                request.transport.abort()
            response = web.Response(status=503)
        if self._log is not None:
            self._log.add("bayeux", request.path, response.status, messages)
        return response

    async def _handle(self, request: web.Request) -> tuple[list[Any] | None, web.Response]:
        version, version_error = parse_api_version(request.match_info.get("tail", ""))
        if version is None:
            return None, _http_error(400, version_error or VERSION_MANDATORY)
        if request.method != "POST":
            raise _HttpFailure(web.Response(status=405, text="Method Not Allowed"))
        length = request.content_length
        if length is not None and length > MAX_REQUEST_BYTES:
            return None, _http_error(413, REQUEST_TOO_LARGE, "Maximum Request Size Exceeded")
        body = await request.read()
        if len(body) > MAX_REQUEST_BYTES:
            return None, _http_error(413, REQUEST_TOO_LARGE, "Maximum Request Size Exceeded")
        messages, decode_error = _decode(body, request.content_type)
        if messages is None:
            return None, _http_error(400, decode_error or _BAD_JSON)
        context = _Context(
            request=request,
            version=version,
            token=_bearer_token(request.headers.get("Authorization")),
            browser_id=request.cookies.get(BROWSER_COOKIE),
        )
        if context.token is None and "Authorization" in request.headers:
            context.token = ""  # present but unreadable: an invalid token
        replies: list[dict[str, Any]] = []
        for message in messages:
            context.disconnect = False
            answer = await self._dispatch(message, context)
            if context.disconnect:
                answer = self._disconnect_after(message, answer)
            replies.extend(answer)
        response = web.json_response(replies)
        if context.new_browser_id is not None:
            response.set_cookie(BROWSER_COOKIE, context.new_browser_id, path="/", httponly=True)
        return messages, response

    async def _dispatch(self, message: dict[str, Any], context: _Context) -> list[dict[str, Any]]:
        channel = message.get("channel")
        if channel == "/meta/handshake":
            return self._handshake(message, context)
        if channel == "/meta/connect":
            return await self._connect(message, context)
        if channel == "/meta/subscribe":
            return self._subscribe(message, context)
        if channel == "/meta/unsubscribe":
            return self._unsubscribe(message, context)
        if channel == "/meta/disconnect":
            return self._disconnect(message, context)
        if not isinstance(channel, str) or not channel:
            return [_error(message, CHANNEL_NOT_SPECIFIED)]
        return [_error(message, PUBLISH_DENIED, client_id=_client_id(message))]

    # -- shared checks -------------------------------------------------------------------

    def _fault(
        self, operation: str, message: dict[str, Any], context: _Context
    ) -> list[dict[str, Any]] | None:
        fault = self.state.take_fault(operation)
        if fault is None:
            return None
        if fault.server_disconnect:
            context.disconnect = True
            return None
        if fault.http_status is not None:
            raise _HttpFailure(fault_response(fault))
        reason = fault.reason or SERVER_TOO_BUSY
        ext: dict[str, Any] | None = None
        advice: dict[str, Any] | None
        if operation == "handshake":
            error = fault.error or HANDSHAKE_DENIED
            advice = fault.advice if fault.advice is not None else {"reconnect": "none"}
            ext = {"sfdc": {"failureReason": reason}, **_HANDSHAKE_EXT}
        else:
            if fault.error is not None:
                error = fault.error
            elif operation == "connect" and reason.startswith("503::"):
                # Salesforce's documented shape: the operation fails as 401, the cause is
                # in ext.sfdc.failureReason.
                error = AUTH_INVALID
            else:
                error = reason
            advice = fault.advice
            if fault.advice is None and operation == "connect":
                advice = _NO_RECONNECT
            if error != reason:
                ext = {"sfdc": {"failureReason": reason}}
        return [_error(message, error, client_id=_client_id(message), advice=advice, ext=ext)]

    def _start(
        self, operation: str, message: dict[str, Any], context: _Context
    ) -> Session | list[dict[str, Any]]:
        """Count a session operation, then return its session, or the reply that ends it."""
        setattr(self.state.stats, f"{operation}s", getattr(self.state.stats, f"{operation}s") + 1)
        failure = self._fault(operation, message, context)
        if failure is not None:
            return failure
        return self._session_for(message, context)

    def _session_for(
        self, message: dict[str, Any], context: _Context
    ) -> Session | list[dict[str, Any]]:
        """Authenticate a non-handshake message and find its session, or return the error."""
        client_id = _client_id(message)
        if not context.token:
            error = AUTH_REQUIRED if context.token is None else AUTH_INVALID
            return [_error(message, error, client_id=client_id, advice=_NO_RECONNECT)]
        token = self.state.check_token(context.token)
        if token is None:
            session = self.state.sessions.get(client_id or "")
            if session is not None and session.token == context.token:
                self.state.close_session(session, "unauthenticated")
            return [_error(message, AUTH_INVALID, client_id=client_id, advice=_NO_RECONNECT)]
        if client_id is None:
            return [_error(message, HANDSHAKE_NOT_COMPLETED, advice=_RETRY_HANDSHAKE)]
        session = self.state.get_session(client_id)
        if session is None:
            # Salesforce's reply carries no clientId.
            return [_error(message, UNKNOWN_CLIENT, advice=_RETRY_HANDSHAKE)]
        if context.browser_id != session.browser_id:
            return [_error(message, missing_cookie(client_id), client_id=client_id)]
        if token.username != session.username:
            return [_error(message, USER_MISMATCH, client_id=client_id, advice=_NO_RECONNECT)]
        session.last_seen = self.state.now()
        return session

    # -- meta channels -------------------------------------------------------------------

    def _handshake(self, message: dict[str, Any], context: _Context) -> list[dict[str, Any]]:
        self.state.stats.handshakes += 1
        failure = self._fault("handshake", message, context)
        if failure is not None:
            return failure
        if context.token is None:
            return [self._handshake_denied(message, AUTH_REQUIRED)]
        token = self.state.check_token(context.token) if context.token else None
        if token is None:
            return [self._handshake_denied(message, AUTH_INVALID)]
        types = message.get("supportedConnectionTypes")
        if isinstance(types, list) and types and LONG_POLLING not in types:
            return [_error(message, invalid_connection_type(types[0]), advice=_NO_RECONNECT)]
        limits = self.state.settings
        if limits.max_clients is not None and len(self.state.live_sessions()) >= limits.max_clients:
            return [self._handshake_denied(message, CONCURRENT_LIMIT)]
        per_user = limits.max_connections_per_user
        if per_user is not None and self.state.user_clients(token.username) >= per_user:
            return [self._handshake_denied(message, CONNECTION_LIMIT)]
        if context.browser_id is None:
            context.browser_id = context.new_browser_id = secrets.token_hex(16)
        session = self.state.open_session(token, context.browser_id, context.version)
        self.state.stats.successful_handshakes += 1
        return [
            _reply(
                message,
                {
                    "ext": dict(_HANDSHAKE_EXT),
                    "minimumVersion": "1.0",
                    "clientId": session.client_id,
                    "supportedConnectionTypes": [LONG_POLLING],
                    "channel": "/meta/handshake",
                },
                {"version": "1.0", "successful": True},
            )
        ]

    @staticmethod
    def _handshake_denied(message: dict[str, Any], reason: str) -> dict[str, Any]:
        ext = {"sfdc": {"failureReason": reason}, **_HANDSHAKE_EXT}
        return _error(message, HANDSHAKE_DENIED, advice={"reconnect": "none"}, ext=ext)

    async def _connect(self, message: dict[str, Any], context: _Context) -> list[dict[str, Any]]:
        found = self._start("connect", message, context)
        if isinstance(found, list):
            return found
        session = found
        connection_type = message.get("connectionType", LONG_POLLING)
        if connection_type != LONG_POLLING:
            return [
                _error(
                    message, invalid_connection_type(connection_type), client_id=session.client_id
                )
            ]
        if session.disconnect_pending:
            return self._server_disconnect(session, message)
        if self.state.delivery_allowance() == 0:
            return self._daily_limit(session, message)
        if not session.connected:
            # The first connect after a handshake answers at once, and is the only one
            # carrying advice; events wait for the next connect.
            session.connected = True
            advice = {"interval": 0, "timeout": self._timeout_ms(), "reconnect": "retry"}
            return [self._connect_reply(session, message, advice)]
        if not session.pending:
            held = await self._hold(session, message, context)
            if held is not None:
                return held
            if self.state.delivery_allowance() == 0:
                # Other clients used the allowance up while this connect was held.
                return self._daily_limit(session, message)
        return self._deliver(session, message)

    @staticmethod
    def _daily_limit(session: Session, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Refuse a connect while the daily delivery allowance is used up.

        Salesforce sends it "at first connect or later"; the client should stay away until
        the rolling 24 hours free some allowance.
        """
        return [_error(message, DAILY_LIMIT, client_id=session.client_id, advice=_NO_RECONNECT)]

    async def _hold(
        self, session: Session, message: dict[str, Any], context: _Context
    ) -> list[dict[str, Any]] | None:
        """Hold the connect open; return a final reply, or ``None`` to deliver events."""
        for other in self._waiters.values():
            if (
                other.session is not session
                and other.session.closed is None
                and other.session.browser_id == session.browser_id
            ):
                # Two clients share one browser cookie and one of them already waits.
                advice = {"interval": 2000, "multiple-clients": True, "reconnect": "retry"}
                return [self._connect_reply(session, message, advice)]
        previous = self._waiters.get(session.client_id)
        if previous is not None:
            previous.wake("superseded")
        waiter = _Waiter(session)
        self._waiters[session.client_id] = waiter
        session.holding = True
        try:
            await waiter.wait(self._hold_timeout(message))
        finally:
            session.last_seen = self.state.now()
            # A newer connect may have taken over; then the session is still held.
            if self._waiters.get(session.client_id) is waiter:
                del self._waiters[session.client_id]
                session.holding = False
        transport = context.request.transport
        if waiter.reason == "dropped" or transport is None or transport.is_closing():
            # Nobody would read the answer: keep the events queued for the next connect.
            raise _Dropped
        if waiter.reason == "superseded":
            return [self._connect_reply(session, message)]
        if session.closed == "disconnected":
            return [self._connect_reply(session, message, dict(_NO_RECONNECT))]
        if session.closed is not None:
            return [_error(message, UNKNOWN_CLIENT, advice=_RETRY_HANDSHAKE)]
        if not context.token or self.state.check_token(context.token) is None:
            self.state.close_session(session, "unauthenticated")
            return [
                _error(message, AUTH_INVALID, client_id=session.client_id, advice=_NO_RECONNECT)
            ]
        if session.disconnect_pending:
            return self._server_disconnect(session, message)
        return None

    def _hold_timeout(self, message: dict[str, Any]) -> float:
        timeout = self.connect_timeout
        advice = message.get("advice")
        if isinstance(advice, dict):
            wanted = advice.get("timeout")
            if isinstance(wanted, (int, float)) and not isinstance(wanted, bool) and wanted >= 0:
                timeout = min(timeout, wanted / 1000)
        return timeout

    def _timeout_ms(self) -> int:
        return round(self.connect_timeout * 1000)

    def _server_disconnect(self, session: Session, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send the server-initiated ``/meta/disconnect`` (Salesforce 64.0+) and end the session."""
        self.state.close_session(session, "server-disconnect")
        notice = {"channel": "/meta/disconnect", "clientId": session.client_id, "successful": True}
        return [notice, self._connect_reply(session, message, dict(_NO_RECONNECT))]

    def _disconnect_after(
        self, message: dict[str, Any], answer: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """End the session *message* belongs to; put the ``/meta/disconnect`` before *answer*.

        The session is the one a handshake reply names, else the message's ``clientId``.
        A held connect of that session then answers ``403::Unknown client``.
        """
        client_id = _client_id(message)
        for reply in answer:
            if reply.get("channel") == message.get("channel") and _client_id(reply):
                client_id = _client_id(reply)
        session = self.state.sessions.get(client_id or "")
        if session is None:
            return answer
        self.state.close_session(session, "server-disconnect")
        self.wake([session])
        notice = {"channel": "/meta/disconnect", "clientId": session.client_id, "successful": True}
        return [notice, *answer]

    @staticmethod
    def _connect_reply(
        session: Session, message: dict[str, Any], advice: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        head: dict[str, Any] = {"clientId": session.client_id}
        if advice is not None:
            head["advice"] = advice
        head["channel"] = "/meta/connect"
        return _reply(message, head, {"successful": True})

    def _deliver(self, session: Session, message: dict[str, Any]) -> list[dict[str, Any]]:
        batch = self.state.take_pending(session, self.state.settings.max_batch_size)
        replies = [self._event_message(session, delivery) for delivery in batch]
        replies.append(self._connect_reply(session, message))
        session.last_seen = self.state.now()
        return replies

    @staticmethod
    def _event_message(session: Session, delivery: Delivery) -> dict[str, Any]:
        message = dict(delivery.event.message)
        message["channel"] = delivery.subscription
        data = message.get("data")
        # EventUuid is only sent to clients of API 52.0 and later.
        if (
            session.api_version < 52.0
            and channel_kind(delivery.event.channel) == "event"
            and isinstance(data, dict)
            and isinstance(data.get("event"), dict)
        ):
            event = {k: v for k, v in data["event"].items() if k != "EventUuid"}
            message["data"] = {**data, "event": event}
        return message

    def _subscribe(self, message: dict[str, Any], context: _Context) -> list[dict[str, Any]]:
        found = self._start("subscribe", message, context)
        if isinstance(found, list):
            return found
        session = found
        name = message.get("subscription")
        client_id = session.client_id
        if not isinstance(name, str) or not name:
            return [_error(message, CHANNEL_NOT_SPECIFIED, client_id=client_id)]
        if not name.startswith("/"):
            return [_error(message, LEADING_SLASH, client_id=client_id)]
        base, _ = split_subscription(name)
        replay = _replay_option(message, name, base)
        try:
            self.state.subscribe(session, name, replay)
        except ChannelNotFound:
            if channel_kind(base) == "u":
                return [_error(message, UNKNOWN_CHANNEL, client_id=client_id)]
            return [_error(message, channel_does_not_exist(base), client_id=client_id)]
        except InvalidReplayId as exc:
            return [_error(message, invalid_replay_id(exc.replay_id), client_id=client_id)]
        except SubscriptionRefused as refusal:
            return [_error(message, refusal_error(refusal), client_id=client_id)]
        if session.pending:
            self.wake([session])
        return [
            _reply(
                message,
                {"clientId": client_id, "channel": "/meta/subscribe"},
                {"subscription": name, "successful": True},
            )
        ]

    def _unsubscribe(self, message: dict[str, Any], context: _Context) -> list[dict[str, Any]]:
        found = self._start("unsubscribe", message, context)
        if isinstance(found, list):
            return found
        session = found
        name = message.get("subscription")
        if not isinstance(name, str) or not name:
            return [_error(message, CHANNEL_NOT_SPECIFIED, client_id=session.client_id)]
        self.state.unsubscribe(session, name)
        return [
            _reply(
                message,
                {"clientId": session.client_id, "channel": "/meta/unsubscribe"},
                {"subscription": name, "successful": True},
            )
        ]

    def _disconnect(self, message: dict[str, Any], context: _Context) -> list[dict[str, Any]]:
        found = self._start("disconnect", message, context)
        if isinstance(found, list):
            return found
        session = found
        self.state.close_session(session, "disconnected")
        self.wake([session], "disconnected")
        return [
            _reply(
                message,
                {"clientId": session.client_id, "channel": "/meta/disconnect"},
                {"successful": True},
            )
        ]


def _client_id(message: dict[str, Any]) -> str | None:
    value = message.get("clientId")
    return value if isinstance(value, str) and value else None


def _bearer_token(header: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer|OAuth <token>`` header."""
    if header is None:
        return None
    match = _AUTH_RE.match(header)
    return match.group(1) if match else None


def _replay_option(message: dict[str, Any], name: str, base: str) -> object:
    """Return the replay value asked for *name*: ``ext.replay[channel]``, else -1."""
    ext = message.get("ext")
    replay = ext.get("replay") if isinstance(ext, dict) else None
    if isinstance(replay, dict):
        # EMP-Connector strips the filter query from its keys.
        for key in (name, base):
            if key in replay:
                return replay[key]
    return -1


def _decode(body: bytes, content_type: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Decode a request body into Bayeux messages; return ``(messages, error)``."""
    if content_type == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8", "replace"))
        text = fields.get("message", [""])[0]
    elif content_type in ("application/json", "text/json"):
        text = body.decode("utf-8", "replace")
    else:
        return None, _BAD_CONTENT_TYPE
    try:
        data = json.loads(text)
    except ValueError:
        return None, _BAD_JSON
    # "A client that sends a standalone JSON object ... receives an HTTP 400 response"
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        return None, _NOT_AN_ARRAY
    return data, None
