"""The Salesforce Streaming API client."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import MutableMapping
from ssl import SSLContext
from typing import Any, TypeAlias

from aiosfstream.auth import AuthenticatorBase, PasswordAuthenticator
from aiosfstream.cometd import client as cometd_client
from aiosfstream.cometd.backoff import Backoff
from aiosfstream.cometd.constants import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_MAX_PENDING_COUNT,
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectionType,
)
from aiosfstream.cometd.exceptions import CometdException
from aiosfstream.cometd.exceptions import ServerError as CometdServerError
from aiosfstream.cometd.recovery import RecoveryPolicy
from aiosfstream.exceptions import AiosfstreamException, LeaseLost, translate_errors, twin_of

# Where 0.5 had it: ``from aiosfstream.client import ServerError`` keeps working.
from aiosfstream.exceptions import ServerError as ServerError
from aiosfstream.ha.guard import LeaseGuard
from aiosfstream.ha.lease import Lease
from aiosfstream.policy import (
    DEFAULT_API_VERSION,
    SalesforceRecoveryPolicy,
    check_api_version,
    cometd_url,
    failure_reason,
    is_invalid_replay_error,
)
from aiosfstream.replay import (
    HandedOver,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayOption,
    marker_to_store,
    storage_from,
)

# 0.5 defined it here.
from aiosfstream.replay import ReplayMarkerStoragePolicy as ReplayMarkerStoragePolicy
from aiosfstream.typing import JsonDumper, JsonLoader, Message

__all__ = [
    "API_VERSION",
    "AUTOMATIC_STORE_INTERVAL",
    "Client",
    "ReplayParameter",
    "SalesforceStreamingClient",
]

LOGGER = logging.getLogger(__name__)

#: The Streaming API version of clients created without ``api_version``.  Read when a
#: client is created, so assigning it (as 0.5 users did to leave 45.0) changes the
#: version of the clients created afterwards.
API_VERSION = DEFAULT_API_VERSION

#: With the AUTOMATIC policy, the most messages handed over between two marker stores
#: while more messages wait in the prefetch queue.
AUTOMATIC_STORE_INTERVAL = 100
# An enum member read from its class costs a lookup per event on Python 3.10 and 3.11.
_AUTOMATIC = ReplayMarkerStoragePolicy.AUTOMATIC

#: Seconds the fallback subscription gets at least, when the refused one took long.
FALLBACK_MIN_TIMEOUT = 1.0

#: What the client's ``replay`` argument may be.
ReplayParameter: TypeAlias = ReplayOption | ReplayMarkerStorage | MutableMapping[str, Any]


def _markers_to_store(handed: dict[str, Message]) -> dict[str, ReplayMarker]:
    """The markers of the messages handed over, without those that have none."""
    markers = {}
    for channel, message in handed.items():
        marker = marker_to_store(message)
        if marker is not None:
            markers[channel] = marker
    return markers


def _replay_id_of(message: Message) -> int | None:
    """The replay id of an event, cheaply; ``None`` if it has none."""
    data = message.get("data")
    event = data.get("event") if isinstance(data, dict) else None
    replay_id = event.get("replayId") if isinstance(event, dict) else None
    return replay_id if isinstance(replay_id, int) and not isinstance(replay_id, bool) else None


class Client(cometd_client.Client):
    """Receives Salesforce events: PushTopic, generic, platform events and Change Data Capture.

    :param authenticator: how to obtain an access token
    :param replay: where subscriptions start: a :class:`ReplayOption`, a
        :class:`~collections.abc.MutableMapping` that keeps the last
        :class:`ReplayMarker` of every channel (a dict, a shelf, ...), or a
        :class:`ReplayMarkerStorage`; :meth:`create_replay_storage` turns it into the
        :attr:`replay_storage`
    :param replay_fallback: the :class:`ReplayOption` to subscribe with when Salesforce
        rejects a stored replay id (it left the retention window); ``None`` raises
        :class:`~aiosfstream.exceptions.ServerError` instead
    :param replay_storage_policy: when a message's replay marker is stored
    :param connection_timeout: seconds to wait for a lost connection to come back
        before raising :class:`~aiosfstream.exceptions.TransportTimeoutError`;
        ``None`` waits forever
    :param max_pending_count: how many messages may wait for :meth:`receive` before the
        client stops fetching more; ``0`` or less means no limit
    :param json_dumps: JSON encoder
    :param json_loads: JSON decoder (``orjson.loads`` is faster)
    :param api_version: the Streaming API version, e.g. ``"66.0"``; by default
        :data:`API_VERSION`
    :param ssl: an :class:`ssl.SSLContext`, or ``False`` to skip certificate checks
    :param proxy: URL of an HTTP proxy
    :param backoff: the delays between reconnection attempts
    :param max_response_bytes: the largest response body accepted
    :param lease: for a replica among several (see :doc:`/replicas`): an
        :class:`aiosfstream.ha.Lease`; :meth:`open` waits until it is held, losing it
        ends the stream with :class:`~aiosfstream.exceptions.LeaseLost`, and
        :meth:`close` gives it up
    :param loop: accepted for code written for 0.5, and ignored with a
        :exc:`DeprecationWarning`: the client runs on the event loop that opens it
    """

    def __init__(
        self,
        authenticator: AuthenticatorBase,
        *,
        replay: ReplayParameter = ReplayOption.NEW_EVENTS,
        replay_fallback: ReplayOption | None = None,
        replay_storage_policy: ReplayMarkerStoragePolicy = ReplayMarkerStoragePolicy.AUTOMATIC,
        connection_timeout: float | None = DEFAULT_CONNECTION_TIMEOUT,
        max_pending_count: int = DEFAULT_MAX_PENDING_COUNT,
        json_dumps: JsonDumper = json.dumps,
        json_loads: JsonLoader = json.loads,
        api_version: str | None = None,
        ssl: SSLContext | bool | None = None,
        proxy: str | None = None,
        backoff: Backoff | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        lease: Lease | None = None,
        loop: object = None,
    ) -> None:
        if loop is not None:
            warnings.warn(
                "the loop argument is ignored: the client runs on the event loop that opens it",
                DeprecationWarning,
                stacklevel=2,
            )
        if not isinstance(authenticator, AuthenticatorBase):
            raise TypeError(
                f"authenticator must be an AuthenticatorBase, not {type(authenticator).__name__}"
            )
        if replay_fallback is not None and not isinstance(replay_fallback, ReplayOption):
            raise TypeError("replay_fallback must be a ReplayOption or None")
        if not isinstance(replay_storage_policy, ReplayMarkerStoragePolicy):
            raise TypeError("replay_storage_policy must be a ReplayMarkerStoragePolicy")
        guard = LeaseGuard(lease)
        storage = self.create_replay_storage(replay)
        self.api_version = check_api_version(API_VERSION if api_version is None else api_version)
        super().__init__(
            None,
            ConnectionType.LONG_POLLING,
            connection_timeout=connection_timeout,
            ssl=ssl,
            proxy=proxy,
            max_pending_count=max_pending_count,
            extensions=[storage],
            auth=authenticator,
            json_dumps=json_dumps,
            json_loads=json_loads,
            backoff=backoff,
            max_response_bytes=max_response_bytes,
        )
        self.authenticator = authenticator
        #: The :class:`ReplayMarkerStorage` that keeps the replay markers; call it to
        #: store a message's marker with the MANUAL policy.
        self.replay_storage = storage
        self.replay_fallback = replay_fallback
        self.replay_storage_policy = replay_storage_policy
        # The replay id of the newest event received per channel during this client's
        # lifetime; a resubscription after a new handshake continues from it, so that
        # events still waiting in the prefetch queue do not arrive twice.
        self._received_ids: dict[str, int] = {}
        # Channels subscribed from a replay position (a stored marker, or ALL_EVENTS):
        # a new session can resume them even before they deliver anything.
        self._positioned: set[str] = set()
        # AUTOMATIC policy: the messages handed over whose markers are not stored yet.
        self._handed = HandedOver(AUTOMATIC_STORE_INTERVAL)
        #: The lease of a replica, or ``None``.
        self.lease = lease
        self._guard = guard

    # -- public API, with aiosfstream's exceptions -------------------------------
    _open = translate_errors(cometd_client.Client.open)
    _check_unopened = translate_errors(cometd_client.Client._check_unopened)
    _close = translate_errors(cometd_client.Client.close)
    subscribe = translate_errors(cometd_client.Client.subscribe)
    unsubscribe = translate_errors(cometd_client.Client.unsubscribe)
    publish = translate_errors(cometd_client.Client.publish)

    async def open(self) -> None:
        """Wait for the lease if there is one; then authenticate, handshake, and start
        fetching messages.

        Transient failures are retried within ``connection_timeout`` (forever when it
        is ``None``), by the same rules as a lost connection; a definitive refusal
        raises at once.

        :raises LeaseLost: the lease was lost before the client was open
        """
        if self._guard.lease is not None:
            self._check_unopened()
            await self._guard.acquire()
        await self._guard.run(self._open())
        self._guard.watch(self._lose_lease)

    async def close(self) -> None:
        """Store the markers of the messages handed over, close the connection, and give
        the lease up. Safe to call twice."""
        await self._guard.stop()
        try:
            if self._guard.holds:
                await self._store_handed()
        finally:
            try:
                await self._close()
            finally:
                await self._guard.release()

    async def _lose_lease(self, lost: LeaseLost) -> None:
        """Stop at once: the stream ends with *lost*, and nothing is stored any more."""
        LOGGER.warning("%s; stopping", lost)
        if self._queue is not None:
            self._queue.abort(lost)
        await self._close()

    async def receive(self) -> Message:
        """Return the next event; with the AUTOMATIC policy, first store the marker of the
        events returned before.

        Asking for the next event says the previous one is done with: its marker is
        stored before this call waits for more, and on :meth:`close`. While events are
        waiting, markers are stored every :data:`AUTOMATIC_STORE_INTERVAL` events; a
        crash then delivers those again, and the event being processed.
        """
        # The hot path of every event: one coroutine, no call that is not needed.
        handed = self._handed
        if handed.due():
            await self._store_handed()
        try:
            message = self._take_ready()
            if message is None:
                if handed.last:
                    await self._store_handed()
                message = await self._take_next()
        except AiosfstreamException:
            raise
        except CometdException as error:  # translate_errors_context(), inlined: hot path
            twin = twin_of(error)
            if twin is None:
                raise
            raise twin from twin.__cause__
        guard = self._guard
        if guard.lease is not None and not guard.holds:
            # A pause of the process can outlast the lease before the watch task runs.
            assert guard.lost is not None
            await self._lose_lease(guard.lost)
            raise guard.lost
        if self.replay_storage_policy is _AUTOMATIC:
            handed.hand(message["channel"], message)
        return message

    async def _store_handed(self) -> None:
        self._guard.check()
        try:
            await self._handed.store(self.replay_storage, _markers_to_store)
        except LeaseLost as lost:
            # A fenced store knows before the lease's own clock does: stop now.
            self._guard.lose(lost)
            await self._lose_lease(lost)
            raise

    @staticmethod
    def create_replay_storage(replay_param: ReplayParameter) -> ReplayMarkerStorage:
        """Return the :class:`ReplayMarkerStorage` for the client's ``replay`` argument.

        A :class:`ReplayOption` gives a :class:`ConstantReplayId`, a mutable mapping a
        :class:`MappingStorage`, and a storage is returned as it is.

        :raises TypeError: *replay_param* is none of these (0.5 returned ``None``)
        """
        return storage_from(replay_param)

    @staticmethod
    def get_cometd_url(instance_url: str, api_version: str | None = None) -> str:
        """Return the Streaming API endpoint of the org at *instance_url*.

        :param api_version: by default :data:`API_VERSION`
        """
        return cometd_url(
            instance_url, check_api_version(API_VERSION if api_version is None else api_version)
        )

    # -- Salesforce policy on top of the CometD client ---------------------------
    def _make_policy(self, backoff: Backoff) -> RecoveryPolicy:
        return SalesforceRecoveryPolicy(backoff)

    async def _authenticate(self) -> None:
        await self.authenticator.authenticate()
        assert self.authenticator.instance_url is not None
        self.url = self.get_cometd_url(self.authenticator.instance_url, self.api_version)

    async def _subscribe_request(
        self, channel: str, *, timeout: float, ext: Message | None = None
    ) -> Message:
        received = self._received_ids.get(channel)
        if ext is None and received is not None:
            ext = {"replay": {channel: received}}
        started = asyncio.get_running_loop().time()
        try:
            sent = await super()._subscribe_request(channel, timeout=timeout, ext=ext)
        except CometdServerError as error:
            if self.replay_fallback is None or not is_invalid_replay_error(error):
                raise
            LOGGER.warning(
                "replay id for %s rejected (%s); subscribing with %s",
                channel,
                error.error_message,
                self.replay_fallback.name,
            )
            self._received_ids.pop(channel, None)
            fallback = {"replay": {channel: int(self.replay_fallback)}}
            # Both requests share the time given to one.
            left = timeout - (asyncio.get_running_loop().time() - started)
            sent = await super()._subscribe_request(
                channel, timeout=max(left, FALLBACK_MIN_TIMEOUT), ext=fallback
            )
        ext_sent = sent.get("ext")
        replay = ext_sent.get("replay") if isinstance(ext_sent, dict) else None
        start = replay.get(channel) if isinstance(replay, dict) else None
        if isinstance(start, int) and start != ReplayOption.NEW_EVENTS:
            self._positioned.add(channel)
        else:
            self._positioned.discard(channel)
        return sent

    def _on_events(self, events: list[Message]) -> None:
        # Only the newest event of each channel matters: read the batch from its end.
        done: set[str] = set()
        for event in reversed(events):
            channel = event["channel"]
            if channel not in done:
                replay_id = _replay_id_of(event)
                if replay_id is not None:
                    self._received_ids[channel] = replay_id
                    done.add(channel)

    def _resumable(self) -> bool:
        # A poll that failed may have carried events that are now lost in that session.
        # A new session resubscribed from the replay positions replays them, for every
        # channel that has one; a NEW_EVENTS channel that delivered nothing yet starts
        # again at its option.
        return any(
            channel in self._received_ids or channel in self._positioned
            for channel in self._protocol.subscriptions
        )

    def _refusal(self, error: CometdServerError) -> CometdServerError:
        # "403::Handshake denied" says little; the cause is in ext.sfdc.failureReason.
        reason = failure_reason(error.response) if error.response is not None else ""
        if not reason or reason in error.message:
            return error
        return type(error)(f"{error.message} ({reason})", error.response)


class SalesforceStreamingClient(Client):
    """A :class:`Client` that logs in with a username and password.

    :param consumer_key: the connected app's consumer key
    :param consumer_secret: the connected app's consumer secret
    :param username: the Salesforce username
    :param password: the password, followed by the security token if one is needed
    :param sandbox: log in to a sandbox (``test.salesforce.com``)
    :param login_url: log in here instead (a My Domain URL, or a local emulator)
    :param allow_insecure_http: accept ``http://`` URLs to other hosts than this one
        (to ``localhost`` and loopback addresses they are always accepted); for emulators only

    The remaining keyword arguments are those of :class:`Client`.
    """

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        username: str,
        password: str,
        sandbox: bool = False,
        *,
        login_url: str | None = None,
        allow_insecure_http: bool = False,
        **kwargs: Any,
    ) -> None:
        authenticator = PasswordAuthenticator(
            consumer_key,
            consumer_secret,
            username,
            password,
            sandbox=sandbox,
            login_url=login_url,
            json_dumps=kwargs.get("json_dumps", json.dumps),
            json_loads=kwargs.get("json_loads", json.loads),
            ssl=kwargs.get("ssl"),
            proxy=kwargs.get("proxy"),
            allow_insecure_http=allow_insecure_http,
        )
        super().__init__(authenticator, **kwargs)
