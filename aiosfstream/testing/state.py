"""The emulated org as plain data: users, apps, tokens, channels, events and Bayeux sessions.

Nothing here does I/O or touches asyncio. Time comes from the ``clock`` given to
:class:`OrgState`, so retention and the 40 second client expiry can be tested by moving a
clock instead of sleeping. The HTTP layers (:mod:`.oauth`, :mod:`.bayeux`) turn the typed
exceptions raised here into Salesforce's wire texts.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .events import IdFactory

__all__ = [
    "DAILY_WINDOW",
    "DEFAULT_CLIENT_EXPIRY",
    "HIGH_VOLUME_RETENTION",
    "STANDARD_RETENTION",
    "AccessToken",
    "Channel",
    "ChannelNotFound",
    "Clock",
    "ConnectedApp",
    "Delivery",
    "EmulatorStats",
    "Event",
    "Fault",
    "InvalidReplayId",
    "OrgSettings",
    "OrgState",
    "Refusal",
    "RequestLog",
    "RequestRecord",
    "Session",
    "Subscription",
    "SubscriptionRefused",
    "User",
    "channel_kind",
    "name_set",
    "split_subscription",
]

#: A function returning the current time in seconds since the epoch.
Clock = Callable[[], float]

# "Salesforce stores PushTopic events, generic events, and standard-volume events for
# 24 hours and high-volume events for 72 hours." (Streaming API, Message Durability)
STANDARD_RETENTION = 24 * 3600.0
HIGH_VOLUME_RETENTION = 72 * 3600.0
# "If the reconnection doesn't happen within 40 seconds, the server expires the
# subscription" (Streaming API, Timeouts)
DEFAULT_CLIENT_EXPIRY = 40.0
# "Organization total events daily limit exceeded": the allocation is a rolling 24 hours.
DAILY_WINDOW = 24 * 3600.0

_CLIENT_ID_ALPHABET = string.ascii_lowercase + string.digits
_CHANNEL_PREFIXES = ("/topic/", "/u/", "/event/", "/data/")


def channel_kind(channel: str) -> str | None:
    """Return the event family of *channel* (``"topic"``, ``"u"``, ``"event"``, ``"data"``)."""
    for prefix in _CHANNEL_PREFIXES:
        if channel.startswith(prefix) and len(channel) > len(prefix):
            return prefix.strip("/")
    return None


def split_subscription(subscription: str) -> tuple[str, dict[str, str]]:
    """Split a PushTopic filtered subscription ``/topic/X?Field=Value&...`` into its parts.

    Salesforce writes the values unencoded (``?Type=Technology Partner``), so no URL
    decoding is done.
    """
    channel, _, query = subscription.partition("?")
    filters: dict[str, str] = {}
    for part in query.split("&") if query else ():
        name, _, value = part.partition("=")
        if name:
            filters[name] = value
    return channel, filters


def name_set(label: str, names: Iterable[str]) -> frozenset[str]:
    """Return *names* (field names, usernames) as a set, refusing anything but strings."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TypeError(f"{label} must be a list of names")
    values = list(names)
    if not all(isinstance(name, str) and name for name in values):
        raise TypeError(f"{label} must contain non-empty strings only")
    return frozenset(values)


class ChannelNotFound(LookupError):
    """The channel was never created (and cannot be created on the fly)."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"channel {channel} does not exist; create it with create_channel()")
        self.channel = channel


class InvalidReplayId(ValueError):
    """A subscribe asked for a replay id that is not within the retention window."""

    def __init__(self, replay_id: object) -> None:
        super().__init__(replay_id)
        self.replay_id = replay_id


#: Why the org refuses a subscription (:mod:`.bayeux` holds the wire text of each).
Refusal = Literal[
    "streaming_disabled",
    "no_access",
    "no_field_access",
    "cdc_needs_view_all_data",
    "unknown_query_fields",
    "subscriber_limit",
    "cannot_create",
    "channel_limit",
    "case_clash",
]


class SubscriptionRefused(Exception):
    """The org's permissions or limits refuse a subscription to *channel*.

    *fields* names the offending filter fields of an ``unknown_query_fields`` refusal.
    """

    def __init__(self, reason: Refusal, channel: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(f"{reason}: {channel}")
        self.reason: Refusal = reason
        self.channel = channel
        self.fields = fields


@dataclass
class User:
    """An org user who can log in, with the permissions streaming checks."""

    username: str
    password: str
    user_id: str
    active: bool = True
    #: The "Streaming API" user permission; without it every subscribe is refused.
    streaming_enabled: bool = True
    #: "View All Data", which Change Data Capture channels need.
    view_all_data: bool = True
    #: Create access to generic streaming channels, used by dynamic channel creation.
    can_create_channels: bool = True
    #: Fields the user cannot see (field-level security): a PushTopic whose ``WHERE``
    #: uses one of them refuses the user.
    hidden_fields: frozenset[str] = frozenset()


@dataclass
class ConnectedApp:
    """An OAuth client (connected app / external client app)."""

    consumer_key: str
    consumer_secret: str
    #: PEM public key or X.509 certificate used to verify JWT bearer assertions.
    jwt_public_key: str | None = None
    #: Users pre-authorized for the JWT flow; ``None`` means every user.
    jwt_approved_users: set[str] | None = None
    #: Username the client credentials flow runs as; ``None`` disables that flow.
    run_as: str | None = None


@dataclass(eq=False)
class AccessToken:
    """An issued access token."""

    value: str
    username: str
    consumer_key: str
    issued_at: float
    last_used: float
    revoked: bool = False


@dataclass(eq=False)
class Event:
    """One stored event: the full message as delivered, plus its bookkeeping."""

    channel: str
    replay_id: int
    created: float
    message: dict[str, Any]


@dataclass(eq=False)
class Channel:
    """A streaming channel, who may subscribe to it, and its retained event log (oldest first)."""

    name: str
    retention: float
    schema_id: str
    events: deque[Event] = field(default_factory=deque)
    last_replay_id: int = 0
    #: PushTopic: the fields of its entity that filters may name (``None``: any).
    fields: frozenset[str] | None = None
    #: PushTopic: the fields its query's ``WHERE`` clause uses.
    where_fields: frozenset[str] = frozenset()
    #: PushTopic or generic channel: most clients subscribed at once (``None``: no limit).
    max_subscribers: int | None = None
    #: Usernames that may subscribe (``None``: everyone).
    users: frozenset[str] | None = None

    def purge(self, before: float) -> int:
        """Drop the events created before *before*; return how many were dropped."""
        dropped = 0
        while self.events and self.events[0].created < before:
            self.events.popleft()
            dropped += 1
        return dropped


@dataclass(frozen=True)
class Subscription:
    """A client's subscription; ``name`` may carry a PushTopic filter query."""

    name: str
    channel: str
    filters: tuple[tuple[str, str], ...] = ()

    def matches(self, event: Event) -> bool:
        """Tell whether *event* passes this subscription's filter."""
        if not self.filters:
            return True
        sobject = event.message.get("data", {}).get("sobject")
        if not isinstance(sobject, dict):
            return False
        return all(
            name in sobject and _filter_text(sobject[name]) == value for name, value in self.filters
        )


def _filter_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


@dataclass(frozen=True)
class Delivery:
    """An event waiting in a client's queue, with the subscription it matched."""

    subscription: str
    event: Event


@dataclass(eq=False)
class Session:
    """A Bayeux client session (one ``clientId``)."""

    client_id: str
    username: str
    token: str
    browser_id: str
    api_version: float
    created: float
    last_seen: float
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    pending: deque[Delivery] = field(default_factory=deque)
    #: ``True`` once the first ``/meta/connect`` (the one that returns at once) was served.
    connected: bool = False
    #: ``True`` while a ``/meta/connect`` of this client is held open.
    holding: bool = False
    #: ``True`` when the server will send a ``/meta/disconnect`` (Salesforce 64.0+).
    disconnect_pending: bool = False
    #: Why the session ended (``"expired"``, ``"disconnected"``, ...), ``None`` while alive.
    closed: str | None = None


@dataclass
class Fault:
    """A failure to inject into the next request(s) for one operation.

    ``headers`` are added to an HTTP-level answer (``http_status``), e.g. ``Retry-After``
    or the ``Location`` of a redirect. With ``server_disconnect`` the request is served
    normally, then the session ends with a server ``/meta/disconnect`` in the same reply.
    """

    operation: str
    reason: str | None = None
    error: str | None = None
    advice: dict[str, Any] | None = None
    http_status: int | None = None
    body: str | None = None
    content_type: str = "text/html"
    times: int = 1
    headers: dict[str, str] | None = None
    server_disconnect: bool = False


@dataclass
class OrgSettings:
    """Org-wide limits and switches, changeable while the emulator runs.

    A limit of ``None`` means none.
    """

    #: Concurrent Bayeux clients of the org ("Organization concurrent user limit exceeded").
    max_clients: int | None = None
    #: Concurrent Bayeux clients per user (the "simultaneous connections" denial).
    max_connections_per_user: int | None = None
    #: Event deliveries per rolling 24 hours ("Organization total events daily limit exceeded").
    daily_delivery_limit: int | None = None
    #: Most events returned by one ``/meta/connect``.
    max_batch_size: int | None = None
    #: "Enable Dynamic Streaming Channel Creation": subscribing creates missing ``/u/`` channels.
    dynamic_channels: bool = False
    #: Most generic channels the org may have for dynamic creation to add one.
    max_generic_channels: int | None = None
    #: The token endpoint is the org's My Domain; ``False`` plays login.salesforce.com, which
    #: refuses the client credentials flow.
    my_domain: bool = True
    #: The username-password OAuth flow works (blocked by default in orgs since Summer '23).
    password_flow_enabled: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready data."""
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply *changes* (setting name to value) after checking every one of them."""
        known = {item.name: item for item in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(known)}")
            if isinstance(getattr(self, name), bool):
                if not isinstance(value, bool):
                    raise TypeError(f"setting {name!r} must be true or false")
            elif value is not None:
                least = 1 if name == "max_batch_size" else 0
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"setting {name!r} must be an integer or null")
                if value < least:
                    raise ValueError(f"setting {name!r} must be at least {least}")
        for name, value in changes.items():
            setattr(self, name, value)


@dataclass
class EmulatorStats:
    """Counters of what the emulator served, for assertions such as "no new OAuth request"."""

    token_requests: int = 0
    tokens_issued: int = 0
    #: Tokens issued per grant type (a ``collections.Counter`` at run time).
    grants: dict[str, int] = field(default_factory=Counter)
    bayeux_requests: int = 0
    handshakes: int = 0
    successful_handshakes: int = 0
    connects: int = 0
    subscribes: int = 0
    unsubscribes: int = 0
    disconnects: int = 0
    events_published: int = 0
    events_delivered: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data."""
        data = dict(vars(self))
        data["grants"] = dict(self.grants)
        return data

    def reset(self) -> None:
        """Set every counter back to zero."""
        fresh = EmulatorStats()
        for name, value in vars(fresh).items():
            setattr(self, name, value)


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator served."""

    time: float
    kind: str
    path: str
    status: int
    #: The decoded Bayeux messages, or a secret-free summary of an OAuth request.
    body: Any


class RequestLog:
    """The most recent requests served, oldest first."""

    def __init__(self, clock: Callable[[], float], maxlen: int = 10_000) -> None:
        self._clock = clock
        self.records: deque[RequestRecord] = deque(maxlen=maxlen)

    def add(self, kind: str, path: str, status: int, body: Any) -> None:
        """Record a request."""
        self.records.append(RequestRecord(self._clock(), kind, path, status, body))

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Return the Bayeux messages received, optionally only those on *channel*."""
        found: list[dict[str, Any]] = []
        for record in self.records:
            if record.kind == "bayeux" and isinstance(record.body, list):
                found.extend(
                    message
                    for message in record.body
                    if isinstance(message, dict)
                    and (channel is None or message.get("channel") == channel)
                )
        return found

    def clear(self) -> None:
        """Forget every record."""
        self.records.clear()


class OrgState:
    """Everything the emulated org knows; survives server restarts."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        client_expiry: float = DEFAULT_CLIENT_EXPIRY,
        retention: float | None = None,
        session_timeout: float | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.clock = clock
        self.client_expiry = client_expiry
        self.retention = retention
        self.session_timeout = session_timeout
        self.ids = ids or IdFactory()
        self.org_id = self.ids.new("00D")
        self.settings = OrgSettings()
        #: When each event delivery of the last 24 hours happened, oldest first.
        self.deliveries: deque[float] = deque()
        self.users: dict[str, User] = {}
        self.apps: dict[str, ConnectedApp] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}
        self.channels: dict[str, Channel] = {}
        self.sessions: dict[str, Session] = {}
        self.faults: list[Fault] = []
        self.stats = EmulatorStats()

    def now(self) -> float:
        """Return the org's current time."""
        return self.clock()

    # -- users, apps and tokens ------------------------------------------------------------

    def add_user(self, username: str, password: str) -> User:
        """Create (or replace) a user."""
        user = User(username=username, password=password, user_id=self.ids.new("005"))
        self.users[username] = user
        return user

    def add_app(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        jwt_public_key: str | None = None,
        jwt_approved_users: Iterable[str] | None = None,
        run_as: str | None = None,
    ) -> ConnectedApp:
        """Create (or replace) a connected app."""
        app = ConnectedApp(
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            jwt_public_key=jwt_public_key,
            jwt_approved_users=None if jwt_approved_users is None else set(jwt_approved_users),
            run_as=run_as,
        )
        self.apps[consumer_key] = app
        return app

    def issue_token(self, username: str, consumer_key: str) -> AccessToken:
        """Issue a new access token for *username* through app *consumer_key*."""
        now = self.now()
        value = f"{self.org_id[:15]}!{secrets.token_urlsafe(72)}"
        token = AccessToken(value, username, consumer_key, issued_at=now, last_used=now)
        self.tokens[value] = token
        return token

    def issue_refresh_token(self, username: str, consumer_key: str) -> str:
        """Issue a refresh token, as the web-server flow would have done."""
        value = "5Aep" + secrets.token_urlsafe(60)
        self.refresh_tokens[value] = (username, consumer_key)
        return value

    def check_token(self, value: str) -> AccessToken | None:
        """Return the live token called *value* and extend its life, or ``None``."""
        token = self.tokens.get(value)
        if token is None or token.revoked:
            return None
        now = self.now()
        # "The Salesforce session never expires in a CometD client. Salesforce keeps
        # extending the timeout interval as long as the client stays connected."
        if self.session_timeout is not None and now - token.last_used > self.session_timeout:
            token.revoked = True
            return None
        user = self.users.get(token.username)
        if user is None or not user.active:
            return None
        token.last_used = now
        return token

    def revoke_tokens(self, username: str | None = None) -> int:
        """Revoke the access and refresh tokens of *username* (all users if ``None``)."""
        count = 0
        for token in self.tokens.values():
            if not token.revoked and username in (None, token.username):
                token.revoked = True
                count += 1
        for value, (owner, _) in list(self.refresh_tokens.items()):
            if username in (None, owner):
                del self.refresh_tokens[value]
        return count

    def revoke_token(self, value: str) -> bool:
        """Revoke one access or refresh token; tell whether it existed."""
        if self.refresh_tokens.pop(value, None) is not None:
            return True
        token = self.tokens.get(value)
        if token is None or token.revoked:
            return False
        token.revoked = True
        return True

    # -- channels and events -----------------------------------------------------------

    def _retention_for(self, channel: str) -> float:
        if self.retention is not None:
            return self.retention
        if channel_kind(channel) in ("event", "data"):
            return HIGH_VOLUME_RETENTION
        return STANDARD_RETENTION

    def create_channel(
        self,
        name: str,
        *,
        fields: Iterable[str] | None = None,
        where_fields: Iterable[str] = (),
        max_subscribers: int | None = None,
        users: Iterable[str] | None = None,
    ) -> Channel:
        """Create *name* (a PushTopic, generic channel, platform event or CDC channel).

        An existing channel keeps its events and gets the options given now (see
        :class:`Channel`); *fields* and *where_fields* are for PushTopics,
        *max_subscribers* for PushTopics and generic channels.
        """
        kind = channel_kind(name)
        if "?" in name or kind is None:
            raise ValueError(
                f"not a streaming channel name: {name!r} "
                "(expected /topic/..., /u/..., /event/... or /data/...)"
            )
        if kind != "topic" and (fields is not None or where_fields):
            raise ValueError("fields and where_fields describe a PushTopic's query (/topic/...)")
        if max_subscribers is not None:
            if kind not in ("topic", "u"):
                raise ValueError("max_subscribers applies to PushTopics and generic channels only")
            if isinstance(max_subscribers, bool) or not isinstance(max_subscribers, int):
                raise TypeError("max_subscribers must be an integer")
            if max_subscribers < 0:
                raise ValueError("max_subscribers must be at least 0")
        options = {
            "fields": None if fields is None else name_set("fields", fields),
            "where_fields": name_set("where_fields", where_fields),
            "max_subscribers": max_subscribers,
            "users": None if users is None else name_set("users", users),
        }
        channel = self.channels.get(name)
        if channel is None:
            clash = self._case_clash(name)
            if clash is not None:
                raise ValueError(f"channel names may not vary only by case: {clash} exists")
            channel = Channel(name, self._retention_for(name), schema_id=self.ids.schema_id())
            self.channels[name] = channel
        for option, value in options.items():
            setattr(channel, option, value)
        return channel

    def _case_clash(self, name: str) -> str | None:
        """Return the generic channel that *name* differs from only by case, if any."""
        if channel_kind(name) != "u":
            return None
        folded = name.casefold()
        for other in self.channels:
            if other != name and other.casefold() == folded:
                return other
        return None

    def get_channel(self, name: str, *, create: bool = False) -> Channel:
        """Return channel *name*; with *create*, platform event and CDC channels spring up."""
        channel = self.channels.get(name)
        if channel is not None:
            return channel
        if create and channel_kind(name) in ("event", "data"):
            return self.create_channel(name)
        raise ChannelNotFound(name)

    def append_event(
        self,
        channel_name: str,
        build: Callable[[Channel, int, float], dict[str, Any]],
        *,
        replay_id: int | None = None,
    ) -> tuple[Event, list[Session]]:
        """Store a new event built by ``build(channel, replay_id, created)`` and queue it.

        Return the event and the sessions whose queue received it.
        """
        channel = self.get_channel(channel_name, create=True)
        if replay_id is None:
            replay_id = channel.last_replay_id + 1
        elif replay_id <= channel.last_replay_id:
            raise ValueError(
                f"replay id {replay_id} is not above the last one ({channel.last_replay_id})"
            )
        created = self.now()
        event = Event(channel.name, replay_id, created, build(channel, replay_id, created))
        channel.last_replay_id = replay_id
        channel.events.append(event)
        self.stats.events_published += 1
        woken: list[Session] = []
        for session in self.live_sessions():
            if self._queue(session, event):
                woken.append(session)
        return event, woken

    def _queue(self, session: Session, event: Event) -> bool:
        queued = False
        for subscription in session.subscriptions.values():
            if subscription.channel == event.channel and subscription.matches(event):
                session.pending.append(Delivery(subscription.name, event))
                queued = True
        return queued

    def purge(self, before: float | None = None) -> int:
        """Drop events older than the retention window, or created before *before*."""
        now = self.now()
        dropped = 0
        for channel in self.channels.values():
            limit = now - channel.retention if before is None else before
            dropped += channel.purge(limit)
        return dropped

    # -- Bayeux sessions ---------------------------------------------------------------

    def new_client_id(self) -> str:
        """Return a fresh client id shaped like Salesforce's (27 base-36 characters)."""
        while True:
            value = "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(27))
            if value not in self.sessions:
                return value

    def open_session(self, token: AccessToken, browser_id: str, api_version: float) -> Session:
        """Start a Bayeux session after a successful handshake."""
        now = self.now()
        session = Session(
            client_id=self.new_client_id(),
            username=token.username,
            token=token.value,
            browser_id=browser_id,
            api_version=api_version,
            created=now,
            last_seen=now,
        )
        self.sessions[session.client_id] = session
        return session

    def is_expired(self, session: Session) -> bool:
        """Tell whether *session* missed its reconnect deadline."""
        return not session.holding and self.now() - session.last_seen > self.client_expiry

    def sweep(self) -> list[Session]:
        """Close and return the sessions that missed their reconnect deadline."""
        expired = [s for s in self.sessions.values() if self.is_expired(s)]
        for session in expired:
            self.close_session(session, "expired")
        return expired

    def live_sessions(self) -> list[Session]:
        """Return the sessions still alive, after expiring the late ones."""
        self.sweep()
        return list(self.sessions.values())

    def get_session(self, client_id: object) -> Session | None:
        """Return the live session *client_id*, or ``None`` (unknown or expired)."""
        if not isinstance(client_id, str):
            return None
        session = self.sessions.get(client_id)
        if session is not None and self.is_expired(session):
            self.close_session(session, "expired")
            return None
        return session

    def close_session(self, session: Session, reason: str) -> None:
        """End *session*; its pending events are lost with it, as on Salesforce."""
        if session.closed is None:
            session.closed = reason
        self.sessions.pop(session.client_id, None)

    def close_sessions(self, client_id: str | None, reason: str) -> list[Session]:
        """End one session (or all with ``None``); return those ended."""
        targets = self._select(client_id)
        for session in targets:
            self.close_session(session, reason)
        return targets

    def _select(self, client_id: str | None) -> list[Session]:
        if client_id is None:
            return list(self.sessions.values())
        session = self.sessions.get(client_id)
        return [] if session is None else [session]

    def select_sessions(self, client_id: str | None) -> list[Session]:
        """Return session *client_id* (as a list), or all sessions for ``None``."""
        return self._select(client_id)

    def subscribe(self, session: Session, name: str, replay: object) -> Subscription:
        """Subscribe *session* to *name*, queueing replayed events as *replay* asks.

        *replay* is ``-1`` (new events only), ``-2`` (every retained event) or the replay
        id of a retained event (the events strictly after it are replayed). The user's
        permissions and the channel's limits are checked first
        (:class:`SubscriptionRefused`).
        """
        base, filters = split_subscription(name)
        user = self.users[session.username]
        if not user.streaming_enabled:
            raise SubscriptionRefused("streaming_disabled", base)
        channel = self._subscribable(base, user)
        self._check_access(channel, user, session, filters)
        if isinstance(replay, bool) or not isinstance(replay, int):
            raise InvalidReplayId(replay)
        channel.purge(self.now() - channel.retention)
        if replay == -1:
            backlog: list[Event] = []
        elif replay == -2:
            backlog = list(channel.events)
        elif any(event.replay_id == replay for event in channel.events):
            backlog = [event for event in channel.events if event.replay_id > replay]
        else:
            raise InvalidReplayId(replay)
        subscription = Subscription(name, base, tuple(filters.items()))
        self.unsubscribe(session, name)
        session.subscriptions[name] = subscription
        for event in backlog:
            if subscription.matches(event):
                session.pending.append(Delivery(name, event))
        return subscription

    def _subscribable(self, name: str, user: User) -> Channel:
        """Return channel *name*, creating a generic one when dynamic creation is on."""
        channel = self.channels.get(name)
        if channel is not None:
            return channel
        if channel_kind(name) != "u" or not self.settings.dynamic_channels:
            raise ChannelNotFound(name)
        if not user.can_create_channels:
            raise SubscriptionRefused("cannot_create", name)
        if self._case_clash(name) is not None:
            raise SubscriptionRefused("case_clash", name)
        limit = self.settings.max_generic_channels
        if limit is not None and sum(channel_kind(c) == "u" for c in self.channels) >= limit:
            raise SubscriptionRefused("channel_limit", name)
        return self.create_channel(name)

    def _check_access(
        self, channel: Channel, user: User, session: Session, filters: dict[str, str]
    ) -> None:
        """Raise :class:`SubscriptionRefused` unless *user* may subscribe to *channel*."""
        name = channel.name
        if channel.users is not None and user.username not in channel.users:
            raise SubscriptionRefused("no_access", name)
        if channel_kind(name) == "data" and not user.view_all_data:
            raise SubscriptionRefused("cdc_needs_view_all_data", name)
        if channel.where_fields & user.hidden_fields:
            raise SubscriptionRefused("no_field_access", name)
        if channel.fields is not None:
            unknown = tuple(field for field in filters if field not in channel.fields)
            if unknown:
                raise SubscriptionRefused("unknown_query_fields", name, unknown)
        if channel.max_subscribers is not None and not _subscribed(session, name):
            others = [s for s in self.live_sessions() if s is not session and _subscribed(s, name)]
            if len(others) >= channel.max_subscribers:
                raise SubscriptionRefused("subscriber_limit", name)

    def unsubscribe(self, session: Session, name: str) -> bool:
        """Remove a subscription and the events still queued for it."""
        if session.subscriptions.pop(name, None) is None:
            return False
        session.pending = deque(d for d in session.pending if d.subscription != name)
        return True

    def take_pending(self, session: Session, limit: int | None = None) -> list[Delivery]:
        """Pop up to *limit* queued deliveries of *session* (all with ``None``).

        The org's daily delivery allowance caps the batch too.
        """
        count = len(session.pending)
        for cap in (limit, self.delivery_allowance()):
            if cap is not None:
                count = min(count, cap)
        batch = [session.pending.popleft() for _ in range(count)]
        self.deliveries.extend([self.now()] * count)
        self.stats.events_delivered += count
        return batch

    def delivery_allowance(self) -> int | None:
        """Return the deliveries left in the rolling 24 hours (``None``: no limit)."""
        horizon = self.now() - DAILY_WINDOW
        while self.deliveries and self.deliveries[0] <= horizon:
            self.deliveries.popleft()
        limit = self.settings.daily_delivery_limit
        return None if limit is None else max(0, limit - len(self.deliveries))

    def user_clients(self, username: str) -> int:
        """Return how many live Bayeux sessions *username* has."""
        return sum(session.username == username for session in self.live_sessions())

    # -- injected faults ---------------------------------------------------------------

    def take_fault(self, operation: str) -> Fault | None:
        """Consume one injected fault for *operation*, if any is armed."""
        for fault in self.faults:
            if fault.operation == operation:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def iter_events(self, channel: str) -> Iterator[Event]:
        """Iterate over the retained events of *channel*."""
        return iter(self.get_channel(channel).events)


def _subscribed(session: Session, channel: str) -> bool:
    return any(sub.channel == channel for sub in session.subscriptions.values())
