"""Replay options, replay markers and the storages that remember them.

Salesforce keeps events for 24 hours (PushTopic, generic) or 72 hours (platform events,
Change Data Capture).  A subscriber chooses where to start with the replay extension: the
``/meta/subscribe`` message carries ``"ext": {"replay": {"<channel>": <replay id>}}``, where
the id is ``-1`` (new events only), ``-2`` (everything retained) or the replay id of the last
event processed, in which case Salesforce sends the events *after* it.

A :class:`ReplayMarkerStorage` remembers, per channel, the :class:`ReplayMarker` of the newest
event processed and adds the matching replay id to every subscribe request.  A marker keeps
the event's date as Salesforce wrote it, so storages written by aiosfstream 0.5 and by this
version can be used by either; dates are parsed only to order markers.

The Pub/Sub API's replay ids are opaque ``bytes`` instead of ints.  The same storages keep
them, under the topic's name, and give them back unchanged; see :func:`is_newer` for how
such markers are ordered (by arrival, never by comparing ids).  A storage reads the
marker of a message from either client, so the MANUAL policy's ``async with
client.replay_storage(message)`` works the same with both.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import sys
from abc import abstractmethod
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from dateutil import parser as date_parser

from aiosfstream.cometd.constants import MetaChannel
from aiosfstream.cometd.extensions import Extension
from aiosfstream.exceptions import ReplayError

if TYPE_CHECKING:
    from types import TracebackType

    from aiosfstream.typing import Headers, Message, Payload

__all__ = [
    "ConstantReplayId",
    "DefaultMappingStorage",
    "DefaultReplayIdMixin",
    "MappingStorage",
    "ReplayMarker",
    "ReplayMarkerStorage",
    "ReplayMarkerStorageContextManager",
    "ReplayMarkerStoragePolicy",
    "ReplayOption",
]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ReplayOption(enum.IntEnum):
    """The replay ids with a special meaning."""

    #: Receive only the events sent after subscribing (Salesforce's default).
    NEW_EVENTS = -1
    #: Receive every event still retained, then the new ones.
    ALL_EVENTS = -2


class ReplayMarker(NamedTuple):
    """Where an event sits in its channel's stream.

    :param date: when the event was created, as the event's text says it (see
        :meth:`ReplayMarkerStorage.get_message_date`): an ISO-8601 string such as
        ``2016-03-29T16:40:08.208Z``, or epoch milliseconds in decimal for Change Data
        Capture and for Pub/Sub events; ``""`` when the event carried no date
    :param replay_id: the event's opaque replay id: an ``int`` from CometD, non-empty
        ``bytes`` from the Pub/Sub API
    """

    date: str
    replay_id: int | bytes


class ReplayMarkerStoragePolicy(enum.Enum):
    """Who stores the replay marker of a received message."""

    #: The client stores a message's marker when :meth:`~aiosfstream.Client.receive`
    #: hands the message to the user.
    AUTOMATIC = "automatic"
    #: The user stores it, once the message is processed: ``async with
    #: client.replay_storage(message):`` or ``await
    #: client.replay_storage.extract_replay_id(message)``.
    MANUAL = "manual"


# --- pure functions -----------------------------------------------------------------


def _epoch_millis_to_datetime(millis: int) -> datetime | None:
    try:
        return _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return None


def _from_isoformat(text: str) -> datetime:
    """Parse the ISO forms Salesforce sends with the standard library (fast path).

    Python 3.10's :meth:`datetime.fromisoformat` knows neither ``Z`` nor ``+0000``.
    """
    if sys.version_info < (3, 11):
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
            text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


def parse_marker_date(date: str) -> datetime | None:
    """Parse a replay marker's date into an aware UTC :class:`~datetime.datetime`.

    Accepts ISO-8601 with ``Z`` or ``+0000``, with or without milliseconds, and epoch
    milliseconds written as digits (the date of a Change Data Capture event).  A date
    without a time zone is taken as UTC.  Returns ``None`` for ``""`` and for anything that
    is not a date.
    """
    if not isinstance(date, str):
        return None
    text = date.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        try:
            millis = int(text)
        except ValueError:  # digits int() refuses: not ASCII, or thousands of them
            return None
        return _epoch_millis_to_datetime(millis)
    try:
        parsed = _from_isoformat(text)
    except ValueError:
        try:
            parsed = date_parser.isoparse(text)
        except (ValueError, OverflowError):
            try:
                parsed = date_parser.parse(text)
            except (ValueError, OverflowError):
                return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _get_dict(container: Any, key: str) -> dict[str, Any]:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, dict) else {}


def _payload_date(payload: dict[str, Any]) -> str:
    """The creation date in an event's *payload*, as written there, or ``""``.

    Change Data Capture gives its commit time in epoch milliseconds, kept as decimal text
    (as 0.5 stored it); the payload's ``CreatedDate`` is the record's, not the event's.  A
    platform event gives its ``CreatedDate``: text from CometD, epoch milliseconds (an
    Avro ``long``) from the Pub/Sub API, kept as decimal text too.
    """
    if "ChangeEventHeader" in payload:
        date = _get_dict(payload, "ChangeEventHeader").get("commitTimestamp")
    else:
        date = payload.get("CreatedDate")
    if isinstance(date, bool):
        return ""
    if isinstance(date, int):
        return str(date)
    return date if isinstance(date, str) else ""


def _message_date(data: dict[str, Any]) -> str:
    """The creation date in a CometD event's *data*, as written there, or ``""``."""
    created = _get_dict(data, "event").get("createdDate")
    if isinstance(created, str):  # PushTopic, generic streaming
        return created
    return _payload_date(_get_dict(data, "payload"))


def _is_pubsub_message(message: Message) -> bool:
    """Whether *message* has the Pub/Sub client's shape (a ``topic``, no ``channel``)."""
    return "topic" in message and "channel" not in message


def _checked_message(message: object) -> Message:
    """Return *message* if it can be a CometD or a Pub/Sub event.

    :raises TypeError: *message* is not a dict
    :raises ReplayError: it has neither a CometD ``channel`` or ``data`` nor a Pub/Sub
        ``topic``
    """
    if not isinstance(message, dict):
        raise TypeError(f"message must be a dict, got {type(message).__name__}")
    if not message.keys() & {"channel", "data", "topic"}:
        raise ReplayError(
            "message has no channel and no data (a CometD event) and no topic (a Pub/Sub "
            f"event); its keys: {sorted(map(str, message))}"
        )
    return message


def _key_of(message: Message) -> str:
    """Where *message*'s marker is stored: its Pub/Sub topic or its CometD channel.

    :raises ReplayError: that name is missing or not a ``str``
    """
    field = "topic" if _is_pubsub_message(message) else "channel"
    key = message.get(field)
    if not isinstance(key, str):
        raise ReplayError(f"message has no {field}")
    return key


def _pubsub_marker(message: Message) -> ReplayMarker:
    """The marker of a message of :class:`~aiosfstream.pubsub.PubSubClient`.

    :raises ReplayError: its ``replay_id`` is not non-empty ``bytes``
    """
    replay_id = message.get("replay_id")
    if not isinstance(replay_id, bytes) or not replay_id:
        raise ReplayError(
            f"message on topic {message.get('topic')!r} has no bytes replay_id "
            f"(got {type(replay_id).__name__})"
        )
    date = _payload_date(_get_dict(message, "payload"))
    if not date:
        logger.debug("message on topic %r has no creation date", message.get("topic"))
    return ReplayMarker(date=date, replay_id=replay_id)


def marker_from_message(message: Message) -> ReplayMarker:
    """Return the replay marker of an event message, from either client.

    For a CometD message the replay id is ``data.event.replayId`` for every event type;
    for a Pub/Sub message (see :class:`~aiosfstream.pubsub.PubSubClient`) its ``replay_id``
    bytes.  The date is :meth:`ReplayMarkerStorage.get_message_date`, or ``""`` for an
    event without one.

    :raises TypeError: *message* is not a dict
    :raises ReplayError: the message is neither a CometD nor a Pub/Sub event, or has no
        replay id: an ``int`` from CometD, non-empty ``bytes`` from Pub/Sub
    """
    message = _checked_message(message)
    if _is_pubsub_message(message):
        return _pubsub_marker(message)
    channel = message.get("channel")
    data = _get_dict(message, "data")
    replay_id = _get_dict(data, "event").get("replayId")
    if isinstance(replay_id, bool) or not isinstance(replay_id, int):
        raise ReplayError(f"message on channel {channel!r} has no integer data.event.replayId")
    date = _message_date(data)
    if not date:
        logger.debug("message on channel %r has no creation date", channel)
    return ReplayMarker(date=date, replay_id=replay_id)


def marker_to_store(message: Message) -> ReplayMarker | None:
    """The marker of *message*, or ``None`` (and a warning) if it has no replay id.

    An event without a replay id cannot be replayed: there is nothing to store.  Both
    policies store markers through this function.
    """
    try:
        return marker_from_message(message)
    except ReplayError as error:
        logger.warning("replay marker not stored: %s", error)
        return None


# The UTC forms Salesforce writes, "2016-03-29T16:40:08.208Z", "...08.208+0000" (before
# API 37.0), "...08Z", and the "...08.208000+00:00" that 1.0 previews stored.
_UTC_TEXT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(?:Z|\+0000|\+00:00)")


def _text_order_key(date: str) -> str | None:
    """*date* rewritten so that text order is time order, for the forms above; else ``None``."""
    match = _UTC_TEXT.fullmatch(date)
    if match is None:
        return None
    seconds, fraction = match.groups()
    return f"{seconds}.{(fraction or '').ljust(6, '0')}"


def is_newer(candidate: ReplayMarker, current: ReplayMarker | None) -> bool:
    """Tell whether *candidate* should replace the stored *current* marker.

    Markers with int (CometD) ids are ordered by date, whatever form each date is written
    in; equal dates are ordered by replay id.  When either date is missing or unreadable
    the candidate counts as newer, since nothing proves it is not.

    When either id is ``bytes`` (Pub/Sub), the candidate is newer: the last marker stored
    is the newest.  Pub/Sub ids are opaque and must not be compared, and dates cannot
    stand in for them: an event's ``CreatedDate`` is written by whoever published it,
    and the bus may order two events against their dates, so a date order could hold a
    channel's marker back, or freeze it behind one wrongly dated event until its id
    falls out of retention.  Arrival order is the bus order: a subscription delivers a
    topic's events in it, and the client stores their markers in it.  A marker stored
    out of that order (another process, or events processed concurrently) can move the
    position back, which means events delivered again after a restart, never skipped.
    A different kind of id (a channel moving between CometD and Pub/Sub) also replaces
    the stored one, since neither can be replayed from the other.
    """
    if current is None:
        return True
    if isinstance(candidate.replay_id, bytes) or isinstance(current.replay_id, bytes):
        return True
    candidate_key = _text_order_key(candidate.date)
    current_key = _text_order_key(current.date)
    if candidate_key is not None and current_key is not None:
        # The common case, compared without the cost of parsing.
        if candidate_key != current_key:
            return candidate_key > current_key
        return candidate.replay_id > current.replay_id
    candidate_date = parse_marker_date(candidate.date)
    current_date = parse_marker_date(current.date)
    if candidate_date is None or current_date is None:
        return True
    if candidate_date != current_date:
        return candidate_date > current_date
    return candidate.replay_id > current.replay_id


#: Ids up to this many bits are written out in messages; larger ones are described.
_SHOWN_BITS = 256


def _describe_id(replay_id: int) -> str:
    """*replay_id* for an error message, even one with too many digits to print.

    Python refuses to write out an int of more than a few thousand decimal digits.
    """
    if replay_id.bit_length() <= _SHOWN_BITS:
        return str(replay_id)
    sign = "negative " if replay_id < 0 else ""
    return f"<a {sign}{replay_id.bit_length()}-bit integer>"


def check_replay_id(name: str, value: object) -> int:
    """Return *value*, the argument *name*, as a CometD replay id or :class:`ReplayOption`.

    This is what a storage's ``default_id`` and the CLI's ``--replay`` take: ``-1`` and
    ``-2`` come back as their :class:`ReplayOption`.  Pub/Sub ids (``bytes``) are refused:
    they reach a storage in the markers of received events, not as its default.

    :raises TypeError: *value* is not an ``int`` (a ``bool`` is not one)
    :raises ValueError: *value* is below ``-2``
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or a ReplayOption, got {type(value).__name__}")
    if value < ReplayOption.ALL_EVENTS:
        raise ValueError(f"{name} must be -2, -1 or a replay id (>= 0), got {_describe_id(value)}")
    if value in (ReplayOption.NEW_EVENTS, ReplayOption.ALL_EVENTS):
        return ReplayOption(value)
    return value


def _is_replay_id(value: object) -> TypeGuard[int | bytes]:
    """Tell whether *value* can be a marker's replay id: an ``int`` or non-empty ``bytes``.

    A ``bool`` is not a replay id.  Nor is a ``bytearray``, which could change after it was
    stored, or a ``memoryview``, which a shelf cannot pickle: they are refused rather than
    copied into ``bytes`` that would come back as another type.
    """
    if isinstance(value, bytes):
        return bool(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _is_marker(value: object) -> bool:
    """Whether *value* is a valid :class:`ReplayMarker`: the check of the hot path."""
    return (
        type(value) is ReplayMarker and type(value.date) is str and _is_replay_id(value.replay_id)
    )


def _check_marker(name: str, value: object) -> ReplayMarker:
    """Return *value*, the argument *name*, as a :class:`ReplayMarker`.

    :raises TypeError: *value* is not a ``(date, replay_id)`` pair of a ``str`` and an
        ``int`` or ``bytes`` (a ``bool`` is not a replay id, nor a ``bytearray`` or a
        ``memoryview``); the message names the type received
    :raises ValueError: the replay id is empty ``bytes``, which names no event
    """
    if _is_marker(value):
        return value  # type: ignore[return-value]
    if not isinstance(value, tuple):
        raise TypeError(f"{name} must be a ReplayMarker, got {type(value).__name__}")
    if len(value) != 2:
        raise TypeError(
            f"{name} must be a ReplayMarker, got a {type(value).__name__} of length {len(value)}"
        )
    date, replay_id = value
    if not isinstance(date, str):
        raise TypeError(f"{name}.date must be a str, got {type(date).__name__}")
    if not _is_replay_id(replay_id):
        if isinstance(replay_id, bytes):
            raise ValueError(f"{name}.replay_id must not be empty bytes: it names no event")
        kind = type(replay_id).__name__
        hint = " (convert it with bytes())" if isinstance(replay_id, bytearray | memoryview) else ""
        raise TypeError(f"{name}.replay_id must be an int or bytes, got {kind}{hint}")
    if isinstance(value, ReplayMarker):
        return value
    return ReplayMarker(date, replay_id)


def _channel_of(subscription: str) -> str:
    """The channel a subscription's events arrive on: a PushTopic filter query is dropped."""
    return subscription.split("?", 1)[0]


# --- storages -----------------------------------------------------------------------


class ReplayMarkerStorage(Extension):
    """Remembers the newest replay marker of each channel and replays from it.

    Implement :meth:`get_replay_marker` and :meth:`set_replay_marker`; everything else is
    built on them.  The storage is an extension: :meth:`outgoing` adds the replay id to
    every ``/meta/subscribe`` message.  The client's storage is its ``replay_storage``
    attribute; with the MANUAL policy, call it (:meth:`__call__`) or
    :meth:`extract_replay_id` to store a processed message's marker.
    """

    #: The replay id used for a channel that has no stored marker.
    default_id: int = ReplayOption.NEW_EVENTS

    @abstractmethod
    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        """Return the stored marker of *subscription*, or ``None``."""

    @abstractmethod
    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Store *replay_marker* as the marker of *subscription*."""

    async def get_replay_id(self, subscription: str) -> int | bytes:
        """Return the replay id to subscribe to *subscription* with.

        That is the stored marker's id (an ``int`` stored by the CometD client, ``bytes``
        by the Pub/Sub client), or :attr:`default_id` when there is none.  A filtered
        PushTopic subscription (``/topic/Foo?Type=Bar``) without a marker of its own uses
        the marker of its channel, since the events arrive on the channel.
        """
        marker = await self.get_replay_marker(subscription)
        channel = _channel_of(subscription)
        if marker is None and channel != subscription:
            marker = await self.get_replay_marker(channel)
        if marker is None:
            return self.default_id
        return marker.replay_id

    async def insert_replay_id(self, message: Message) -> None:
        """Add ``ext.replay`` with :meth:`get_replay_id` to the ``/meta/subscribe`` *message*.

        A message whose ``ext.replay`` already names its subscription is left alone, so the
        client can force a replay option (for example the fallback after an invalid replay
        id); so is one without a subscription.  A stored Pub/Sub id (``bytes``: topics and
        channels share names) means nothing to CometD: the subscription then starts at
        :attr:`default_id`, with a warning.
        """
        subscription = message.get("subscription")
        if not isinstance(subscription, str):
            return
        ext = message.setdefault("ext", {})
        if not isinstance(ext, dict):
            return
        replay = ext.get("replay")
        if isinstance(replay, dict) and subscription in replay:
            return
        replay_id = await self.get_replay_id(subscription)
        if isinstance(replay_id, bytes):
            logger.warning(
                "the stored replay id of %r comes from the Pub/Sub API, which CometD cannot "
                "replay from; subscribing with %r",
                subscription,
                self.default_id,
            )
            replay_id = self.default_id
        if isinstance(replay, dict):
            replay[subscription] = replay_id
        else:
            ext["replay"] = {subscription: replay_id}

    async def outgoing(self, payload: Payload, headers: Headers) -> None:
        """Insert the replay id into every subscribe message (:meth:`insert_replay_id`).

        The handshake gets ``ext.replay: true`` to announce the extension.
        """
        for message in payload:
            channel = message.get("channel")
            if channel == MetaChannel.HANDSHAKE:
                # Announce the replay extension, as Salesforce's own clients do.
                message.setdefault("ext", {}).setdefault("replay", True)
            elif channel == MetaChannel.SUBSCRIBE:
                await self.insert_replay_id(message)

    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        """Do nothing: markers are stored when messages are consumed, not received."""

    def _lock(self) -> asyncio.Lock:
        # Created lazily: subclasses need not call ``super().__init__()``.  One lock per
        # event loop, so a storage can outlive an ``asyncio.run()``.
        loop = asyncio.get_running_loop()
        held: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = getattr(
            self, "_store_lock", None
        )
        if held is None or held[0] is not loop:
            held = (loop, asyncio.Lock())
            self._store_lock = held
        return held[1]

    async def store_marker(self, subscription: str, marker: ReplayMarker) -> None:
        """Store *marker* unless the stored marker of *subscription* is newer.

        Replayed, older events therefore never move the marker back.
        """
        async with self._lock():
            current = await self.get_replay_marker(subscription)
            if is_newer(marker, current):
                await self.set_replay_marker(subscription, marker)

    async def store_markers(self, markers: Mapping[str, ReplayMarker]) -> None:
        """Store the markers of several subscriptions, each only if it is newer.

        Storages that can write them together (in one transaction, say) override this.
        """
        for subscription, marker in markers.items():
            await self.store_marker(subscription, marker)

    @staticmethod
    def get_message_date(message: Message) -> str:
        """Return the creation date of the event *message*, as the message writes it.

        For a CometD message it is ``data.event.createdDate`` for PushTopic and generic
        streaming events; for a Change Data Capture event (whose payload has a
        ``ChangeEventHeader``) the header's ``commitTimestamp``, epoch milliseconds, written
        in decimal; and ``data.payload.CreatedDate`` for platform events.  A Pub/Sub
        message's ``payload`` is read the same way; its dates are epoch milliseconds,
        written in decimal.

        :raises TypeError: *message* is not a dict
        :raises ReplayError: the message has no creation date, or is neither a CometD nor
            a Pub/Sub event
        """
        message = _checked_message(message)
        if _is_pubsub_message(message):
            date = _payload_date(_get_dict(message, "payload"))
            where = f"topic {message.get('topic')!r}"
        else:
            date = _message_date(_get_dict(message, "data"))
            where = f"channel {message.get('channel')!r}"
        if not date:
            raise ReplayError(f"message on {where} has no creation date")
        return date

    async def extract_replay_id(self, message: Message) -> None:
        """Store the marker of the event *message* under its channel, unless it is older.

        *message* comes from either client: a CometD message is stored under its
        ``channel``, a Pub/Sub message under its ``topic``.  Replayed, older events
        therefore never move the marker back (for Pub/Sub, the last stored is the newest:
        see :func:`is_newer`).  A message without a replay id stores nothing and logs a
        warning; one without a date is stored with ``date=""``.

        :raises TypeError: *message* is not a dict
        :raises ReplayError: the message has no channel (CometD) or topic (Pub/Sub)
        """
        key = _key_of(_checked_message(message))
        marker = marker_to_store(message)
        if marker is not None:
            await self.store_marker(key, marker)

    def __call__(self, message: Message) -> ReplayMarkerStorageContextManager:
        """Return an ``async with`` block that stores *message*'s marker if it succeeds.

        This is how the MANUAL policy stores markers once a message is processed::

            async with client.replay_storage(message):
                await process(message)

        If the block raises, nothing is stored: the next run receives the message again.
        """
        return ReplayMarkerStorageContextManager(self, message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(default_id={self.default_id!r})"


class ReplayMarkerStorageContextManager:
    """Stores *message*'s marker in *replay_storage* when the ``async with`` block succeeds.

    When the block raises, nothing is stored and the exception goes on.  Made by calling
    a storage: ``replay_storage(message)``.

    :param replay_storage: where the marker goes
    :param message: the event being processed
    """

    def __init__(self, replay_storage: ReplayMarkerStorage, message: Message) -> None:
        self.replay_storage = replay_storage
        self.message = message

    async def __aenter__(self) -> None:
        """Enter the block; nothing happens yet."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Store the marker (:meth:`ReplayMarkerStorage.extract_replay_id`) if the block
        ended without an exception."""
        if exc_type is None:
            await self.replay_storage.extract_replay_id(self.message)


def _as_marker(subscription: str, value: object) -> ReplayMarker | None:
    """Read a stored value as a marker; accept tuples, lists and dicts of the right shape."""
    if value is None:
        return None
    stored = type(value).__name__
    if isinstance(value, Mapping):
        date, replay_id = value.get("date"), value.get("replay_id")
    elif isinstance(value, tuple | list) and len(value) == 2:
        date, replay_id = value
    else:
        shape = f"a {stored} of length {len(value)}" if isinstance(value, tuple | list) else stored
        raise ReplayError(f"stored value for {subscription!r} is not a replay marker (got {shape})")
    if not isinstance(date, str):
        raise ReplayError(
            f"stored value for {subscription!r} is not a replay marker "
            f"(got a {stored} whose date is a {type(date).__name__}, not a str)"
        )
    if not _is_replay_id(replay_id):
        problem = (
            "empty bytes"
            if isinstance(replay_id, bytes)
            else f"a {type(replay_id).__name__}, not an int or bytes"
        )
        raise ReplayError(
            f"stored value for {subscription!r} is not a replay marker "
            f"(got a {stored} whose replay_id is {problem})"
        )
    if isinstance(value, ReplayMarker):
        return value
    return ReplayMarker(date, replay_id)


class MappingStorage(ReplayMarkerStorage):
    """Keeps markers in a mutable mapping: a dict, a :class:`shelve.Shelf`, ...

    :param mapping: keys are channel names, values :class:`ReplayMarker` objects
    :raises TypeError: *mapping* is not a :class:`~collections.abc.MutableMapping`
    """

    def __init__(self, mapping: MutableMapping[str, Any]) -> None:
        if not isinstance(mapping, MutableMapping):
            raise TypeError(
                f"mapping must be a collections.abc.MutableMapping, got {type(mapping).__name__}"
            )
        self.mapping = mapping

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        """Return the marker stored under *subscription*.

        :raises ReplayError: the stored value is not a replay marker
        """
        try:
            value = self.mapping[subscription]
        except KeyError:
            return None
        except Exception as error:  # e.g. a shelf whose pickle was cut short by a crash
            raise ReplayError(
                f"the stored marker of {subscription!r} cannot be read: "
                f"{type(error).__name__}: {error}"
            ) from error
        return _as_marker(subscription, value)

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Store *replay_marker* under *subscription*; sync the mapping if it can.

        A :class:`shelve.Shelf` on ``dbm.dumb`` (the fallback when Python has no gdbm or
        ndbm) keeps the length of a rewritten value only in memory until ``sync()``: a
        crash before it would leave a marker that cannot be read.

        :raises TypeError: *replay_marker* is not a :class:`ReplayMarker`
        :raises ValueError: its replay id is empty ``bytes``
        """
        self.mapping[subscription] = _check_marker("replay_marker", replay_marker)
        sync = getattr(self.mapping, "sync", None)
        if callable(sync):
            sync()

    async def store_marker(self, subscription: str, marker: ReplayMarker) -> None:
        """Store *marker* unless the stored marker of *subscription* is newer.

        A mapping holds replay ids of any size, so any ``int`` is accepted, and any
        non-empty ``bytes``.

        :raises TypeError: *marker* is not a :class:`ReplayMarker`
        :raises ValueError: its replay id is empty ``bytes``
        :raises ReplayError: the stored marker cannot be read
        """
        await super().store_marker(subscription, _check_marker("marker", marker))

    async def store_markers(self, markers: Mapping[str, ReplayMarker]) -> None:
        """Store several markers, each only if newer; all are checked before any is stored.

        :raises TypeError: a value of *markers* is not a :class:`ReplayMarker`
        :raises ValueError: a replay id is empty ``bytes``
        """
        if not isinstance(markers, Mapping):
            raise TypeError(f"markers must be a Mapping, got {type(markers).__name__}")
        checked = {
            subscription: marker
            if _is_marker(marker)
            else _check_marker(f"markers[{subscription!r}]", marker)
            for subscription, marker in markers.items()
        }
        # One lock for the batch, and no second check per marker: this runs for every
        # message the AUTOMATIC policy hands over while the consumer keeps up.
        async with self._lock():
            for subscription, marker in checked.items():
                if is_newer(marker, await self.get_replay_marker(subscription)):
                    await self.set_replay_marker(subscription, marker)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(mapping=<{type(self.mapping).__name__}>, "
            f"default_id={self.default_id!r})"
        )


class DefaultReplayIdMixin:
    """Gives a storage a *default_id* argument: the replay id of channels without a marker.

    Put it first among the base classes: ``class MyStorage(DefaultReplayIdMixin,
    MappingStorage)``.  The other arguments go on to the next base class, by keyword.

    :param default_id: a :class:`ReplayOption` or a replay id
    :raises TypeError: *default_id* is not an int
    :raises ValueError: *default_id* is below ``-2``
    """

    default_id: int

    def __init__(self, default_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.default_id = check_replay_id("default_id", default_id)


class DefaultMappingStorage(DefaultReplayIdMixin, MappingStorage):
    """A :class:`MappingStorage` that subscribes with *default_id* when it has no marker.

    :param mapping: keys are channel names, values :class:`ReplayMarker` objects
    :param default_id: a :class:`ReplayOption` or a replay id
    """

    def __init__(self, mapping: MutableMapping[str, Any], default_id: int) -> None:
        super().__init__(mapping=mapping, default_id=default_id)


class ConstantReplayId(DefaultReplayIdMixin, ReplayMarkerStorage):
    """Always subscribes with the same replay id and stores nothing.

    :param default_id: a :class:`ReplayOption` or a replay id
    """

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        """Return ``None``: nothing is stored."""
        return None

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Forget *replay_marker*."""


def storage_from(replay: object) -> ReplayMarkerStorage:
    """Turn the client's ``replay`` argument into a storage.

    A :class:`ReplayOption` gives a :class:`ConstantReplayId`, a mutable mapping a
    :class:`MappingStorage`, and a :class:`ReplayMarkerStorage` is used as it is.

    :raises TypeError: for anything else, plain ints included
    """
    if isinstance(replay, ReplayMarkerStorage):
        return replay
    if isinstance(replay, ReplayOption):
        return ConstantReplayId(replay)
    if isinstance(replay, int):
        raise TypeError(
            f"replay must be a ReplayOption, not the int {replay!r}: use "
            "ReplayOption.NEW_EVENTS, ReplayOption.ALL_EVENTS, or "
            "ConstantReplayId(<replay id>)"
        )
    if isinstance(replay, MutableMapping):
        return MappingStorage(replay)
    raise TypeError(
        "replay must be a ReplayOption, a collections.abc.MutableMapping or a "
        f"ReplayMarkerStorage, got {type(replay).__name__}"
    )


class HandedOver:
    """The AUTOMATIC policy's bookkeeping, shared by the CometD and Pub/Sub clients.

    Keeps the last message handed over per channel (or topic) whose marker is not
    stored yet, and how many were handed over since the last store.  A message's marker
    is stored once the consumer asks for the next message, which says it is done with
    this one: a crash while it is being processed delivers it again.
    """

    def __init__(self, interval: int) -> None:
        self.last: dict[str, Message] = {}
        self.count = 0
        self._interval = interval

    def hand(self, key: str, message: Message) -> None:
        """Count *message*, of channel or topic *key*, as handed over."""
        self.last[key] = message
        self.count += 1

    def due(self) -> bool:
        """Whether *interval* messages were handed over since the last store: the
        consumer's next request stores first even though more messages are ready.
        (Before it waits for more, it stores whatever is pending.)"""
        return self.count >= self._interval

    async def store(
        self,
        storage: ReplayMarkerStorage,
        markers: Callable[[dict[str, Message]], dict[str, ReplayMarker]],
    ) -> None:
        """Store the marker of the last message handed over on each key, together.

        If the store fails, every marker stays pending for the next attempt.
        """
        if not self.last:
            return
        handed = dict(self.last)
        await storage.store_markers(markers(handed))
        for key, message in handed.items():
            # A message handed over while the store ran stays pending.
            if self.last.get(key) is message:
                del self.last[key]
        self.count = 0
