"""What ``listen -v`` tells on stderr: the login, each subscription and where it starts,
reconnects and re-authentications, and a one-line summary at exit.

The clients report sessions and tokens only through their loggers, so
:meth:`Progress.watching` reads some of their records while ``listen`` runs: a token
obtained (a login, or a re-authentication after the first), a CometD handshake done (a
reconnect after the first), a Pub/Sub stream that ended and is opened again (a
reconnect), and the switch to ``--replay-fallback``, which is reworded in the command's
terms.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aiosfstream.cli.settings import replay_word
from aiosfstream.replay import ReplayMarker, ReplayOption

__all__ = ["LOGGER", "Progress", "Start"]

#: The logger of the command's own progress lines.
LOGGER = logging.getLogger("aiosfstream.cli")

# The library's records read here: logger name and format string. The CLI tests make
# each of them happen, so a reworded message fails a test instead of going unnoticed.
_TOKEN_OBTAINED = ("aiosfstream.auth", "token obtained for instance %s")
_HANDSHAKE_DONE = ("aiosfstream.cometd.protocol", "handshake done: connection type %s")
_REPLAY_FALLBACK = ("aiosfstream.client", "replay id for %s rejected (%s); subscribing with %s")
# The Pub/Sub client's (``--pubsub``): a stream ended and what comes next, and its fallback.
_STREAM_ENDED = ("aiosfstream.pubsub.client", "stream of %s ended (%s); next: %s")
_PUBSUB_FALLBACK = (
    "aiosfstream.pubsub.client",
    "replay id for %s refused (%s); subscribing with %s",
)
# Warnings the Pub/Sub client logs just before it raises the same error to the command,
# which reports it in its one error line.
_PUBSUB_ENDINGS = ("subscription to %s ended: %s", "Pub/Sub client stopped: %s")
#: The ``next:`` words of :data:`_STREAM_ENDED` after which a new stream is opened.
_STREAM_AGAIN = ("retry", "reauthenticate", "fall back")


@dataclass(frozen=True)
class Start:
    """Where a subscription starts: a replay id, and whether the replay store gave it."""

    replay_id: int | bytes
    stored: bool = False

    def __str__(self) -> str:
        if self.stored:
            return f"after the stored id {_shown(self.replay_id)}"
        return (
            _shown(self.replay_id)
            if isinstance(self.replay_id, bytes)
            else replay_word(self.replay_id)
        )


def _shown(replay_id: int | bytes) -> str:
    # A Pub/Sub id (opaque bytes) kept in the same store is shown in hex.
    return replay_id.hex() if isinstance(replay_id, bytes) else str(replay_id)


def _channel_of(subscription: str) -> str:
    # A filtered PushTopic subscription delivers its events on the channel.
    return subscription.split("?", 1)[0]


class Progress:
    """Counts what ``listen`` did and logs it at INFO (``-v``).

    :param subscriptions: the channels subscribed to, in the order of the summary
    :param fallback: ``--replay-fallback``, if given
    """

    def __init__(self, subscriptions: Sequence[str], fallback: ReplayOption | None) -> None:
        #: Events printed.
        self.events = 0
        #: New sessions after the first one.
        self.reconnects = 0
        #: Tokens obtained after the first one.
        self.reauthentications = 0
        #: The replay id of the last event printed, per channel (``None``: no event yet).
        self.last_ids: dict[str, int | bytes | None] = dict.fromkeys(
            map(_channel_of, subscriptions)
        )
        self._fallback = fallback
        self._fell_back: set[str] = set()
        self._handshakes = 0
        self._tokens = 0
        self._token_url = ""
        self._connected = False

    # -- what listen tells -------------------------------------------------------------
    def emulator_started(self, url: str) -> None:
        """The in-process emulator of ``--emulator`` listens at *url*."""
        LOGGER.info("emulator started at %s", url)

    def logging_in(self, flow: str, token_url: str) -> None:
        """The first token request, with the *flow* grant, goes to *token_url*."""
        self._token_url = token_url
        LOGGER.info("logging in at %s (%s flow)", token_url, flow)

    def connected(self, api: str) -> None:
        """The client is open; *api* names the API and its address."""
        self._connected = True
        LOGGER.info("logged in; %s", api)

    def subscribed(self, subscription: str, start: Start) -> None:
        """*subscription* is in place; it was asked to begin at *start*."""
        if subscription in self._fell_back and self._fallback is not None:
            self._fell_back.discard(subscription)
            LOGGER.info(
                "subscribed to %s, replay %s instead of %s (--replay-fallback)",
                subscription,
                replay_word(self._fallback),
                start,
            )
        else:
            LOGGER.info("subscribed to %s, replay %s", subscription, start)

    def printed(self, channel: str, marker: ReplayMarker | None) -> None:
        """An event of *channel*, with *marker*, was written to stdout."""
        self.events += 1
        if marker is not None:  # an event without a replay id leaves the last one
            self.last_ids[channel] = marker.replay_id

    def summary(self) -> None:
        """Log the summary line, if a session was opened at all."""
        if not self._connected:
            return
        last = ", ".join(
            f"{channel} {'none' if replay_id is None else _shown(replay_id)}"
            for channel, replay_id in self.last_ids.items()
        )
        LOGGER.info(
            "summary: %d events, %d reconnects, %d re-authentications; last replay id: %s",
            self.events,
            self.reconnects,
            self.reauthentications,
            last,
        )

    # -- what the library tells ----------------------------------------------------------
    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Read the library's records while the block runs; restore its loggers after."""
        hooks = (
            (_TOKEN_OBTAINED[0], self._on_token),
            (_HANDSHAKE_DONE[0], self._on_handshake),
            (_REPLAY_FALLBACK[0], self._on_fallback),
            (_STREAM_ENDED[0], self._on_stream_ended),
            (_PUBSUB_FALLBACK[0], self._on_fallback),
        )
        saved = []
        for name, hook in hooks:
            library = logging.getLogger(name)
            saved.append((library, library.level, hook))
            # Two of the records are DEBUG ones: they must be made to be read. The
            # stderr handler's own level still decides what is shown.
            library.setLevel(logging.DEBUG)
            library.addFilter(hook)
        try:
            yield
        finally:
            for library, level, hook in saved:
                library.removeFilter(hook)
                library.setLevel(level)

    def _on_token(self, record: logging.LogRecord) -> bool:
        if record.msg == _TOKEN_OBTAINED[1]:
            self._tokens += 1
            if self._tokens > 1:
                self.reauthentications += 1
                LOGGER.info(
                    "re-authenticated at %s (%d so far)", self._token_url, self.reauthentications
                )
        return True

    def _on_handshake(self, record: logging.LogRecord) -> bool:
        if record.msg == _HANDSHAKE_DONE[1]:
            self._handshakes += 1
            if self._handshakes > 1:
                self.reconnects += 1
                LOGGER.info("reconnected: new session (%d so far)", self.reconnects)
        return True

    def _on_stream_ended(self, record: logging.LogRecord) -> bool:
        if record.msg in _PUBSUB_ENDINGS:
            return False
        args = record.args
        if (
            record.msg == _STREAM_ENDED[1]
            and isinstance(args, tuple)
            and len(args) == 3
            and args[2] in _STREAM_AGAIN
        ):
            self.reconnects += 1
            LOGGER.info("reconnecting: new stream of %s (%d so far)", args[0], self.reconnects)
        return True

    def _on_fallback(self, record: logging.LogRecord) -> bool:
        """Say the library's warning in the command's words: ``all``, not ``ALL_EVENTS``."""
        if record.msg not in (_REPLAY_FALLBACK[1], _PUBSUB_FALLBACK[1]) or self._fallback is None:
            return True
        args = record.args
        if not isinstance(args, tuple) or len(args) != 3:
            return True  # not the record expected: let it through as it is
        subscription, reason = str(args[0]), str(args[1])
        self._fell_back.add(subscription)
        LOGGER.warning(
            "replay id refused for %s (%s); subscribing with --replay-fallback %s instead",
            subscription,
            reason,
            replay_word(self._fallback),
        )
        return False
