"""Building and checking Bayeux messages.

Everything here works on decoded JSON; nothing does I/O.
"""

from __future__ import annotations

from typing import Any

from aiosfstream.cometd.constants import META_CHANNEL_PREFIX, MetaChannel
from aiosfstream.cometd.exceptions import TransportError
from aiosfstream.typing import Message, Payload

__all__ = [
    "InvalidMessage",
    "check_channel",
    "is_event",
    "is_meta",
    "is_meta_channel",
    "validate_payload",
]


class InvalidMessage(TransportError):
    """The server sent something that is not a valid Bayeux message."""


def check_channel(channel: object, *, allow_wildcards: bool = True) -> str:
    """Return *channel* if it is a usable channel name, else raise ``TypeError``/``ValueError``.

    Bayeux 1.0, section 2.2: channel names are absolute paths such as ``/foo/bar``.
    """
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a str, not {type(channel).__name__}")
    if not channel.startswith("/") or len(channel) < 2:
        raise ValueError(f"channel must start with '/' and have a name: {channel!r}")
    if not allow_wildcards and "*" in channel:
        raise ValueError(f"wildcards are not allowed here: {channel!r}")
    return channel


def is_meta(message: Message) -> bool:
    """Whether *message* is on a ``/meta/`` channel."""
    channel = message.get("channel")
    return isinstance(channel, str) and is_meta_channel(channel)


def is_meta_channel(channel: str) -> bool:
    """Whether *channel* is a ``/meta/`` channel.

    Written as comparisons for speed (every event is checked): a string starts with
    ``/meta/`` exactly when it sorts between ``/meta/`` and ``/meta0``, ``0`` being the
    character after ``/``.
    """
    return META_CHANNEL_PREFIX <= channel < _AFTER_META


def is_event(message: Message) -> bool:
    """Whether *message* delivers data to a subscriber (as opposed to a reply)."""
    return "successful" not in message and not is_meta(message) and "data" in message


def validate_payload(payload: Any) -> Payload:
    """Check that a decoded response body is a list of Bayeux messages.

    Raises :class:`InvalidMessage` naming what is wrong; never returns a partial result.
    """
    if not isinstance(payload, list):
        raise InvalidMessage(
            f"expected a JSON array of Bayeux messages, got a JSON {type(payload).__name__}"
        )
    # Every event passes here: the common case costs a few lookups, the rest is told
    # apart by _check_message().
    for message in payload:
        if isinstance(message, dict):
            channel = message.get("channel")
            if (
                isinstance(channel, str)
                and "/" <= channel < _AFTER_SLASH  # starts with "/", without a method call
                and "successful" not in message
                and channel not in _REPLY_CHANNELS
            ):
                continue
        _check_message(payload, message)
    return payload


def _check_message(payload: Payload, message: Any) -> None:
    """Raise if *message* (an element of *payload*) is not a valid Bayeux message."""

    def index() -> int:  # looked for only to report it: a valid reply costs no scan
        return next(index for index, element in enumerate(payload) if element is message)

    if not isinstance(message, dict):
        raise InvalidMessage(
            f"message {index()} of the response is a JSON {type(message).__name__}, not an object"
        )
    channel = message.get("channel")
    if not isinstance(channel, str) or not channel.startswith("/"):
        raise InvalidMessage(f"message {index()} of the response has no valid channel")
    successful = message.get("successful")
    if successful is not None and not isinstance(successful, bool):
        raise InvalidMessage(f"message {index()} has a non-boolean 'successful' field")
    if channel in _REPLY_CHANNELS and channel != MetaChannel.DISCONNECT and successful is None:
        raise InvalidMessage(f"reply on {channel} has no 'successful' field")


_REPLY_CHANNELS = frozenset(channel.value for channel in MetaChannel)
#: The character after "/": a string starts with "/" exactly when "/" <= it < this.
_AFTER_SLASH = chr(ord("/") + 1)
_AFTER_META = META_CHANNEL_PREFIX[:-1] + _AFTER_SLASH
