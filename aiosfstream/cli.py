"""The ``aiosfstream`` command: print a stream as JSON lines, or run the local emulator.

``aiosfstream listen CHANNEL...`` logs in, subscribes and writes every event to stdout as
one line of compact JSON, so that ``jq``, a log shipper or a program in any language can
consume it.  Each event's replay marker is stored only after its line was written and
flushed, so a run with ``--replay-store`` that stops, for any reason, resumes without
losing an event (at-least-once delivery).

``aiosfstream emulator`` runs the Salesforce emulator of :mod:`aiosfstream.testing` as a
standalone server, optionally publishing demo events.

Logs and errors go to stderr.  An error is reported in one line, without a traceback and
without any secret, and the exit status tells a script what happened (:class:`ExitCode`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import ipaddress
import itertools
import json
import logging
import math
import os
import shlex
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from aiosfstream._redaction import redact
from aiosfstream._version import __version__
from aiosfstream.auth import (
    AuthenticatorBase,
    ClientCredentialsAuthenticator,
    JWTBearerAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
)
from aiosfstream.client import Client
from aiosfstream.cometd.constants import DEFAULT_CONNECTION_TIMEOUT
from aiosfstream.cometd.messages import check_channel
from aiosfstream.exceptions import (
    AuthenticationError,
    ReplayError,
    ServerError,
    TransportError,
)
from aiosfstream.policy import DEFAULT_API_VERSION, check_api_version
from aiosfstream.replay import (
    ConstantReplayId,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from aiosfstream.stores import SQLiteReplayStorage

if TYPE_CHECKING:
    from aiosfstream.testing import SalesforceEmulator
    from aiosfstream.typing import Message

__all__ = [
    "ENVIRONMENT",
    "ExitCode",
    "ListenSettings",
    "LoginSettings",
    "ReplayStoreError",
    "UsageError",
    "build_authenticator",
    "build_parser",
    "listen_settings",
    "login_settings",
    "main",
    "open_replay_store",
    "parse_replay",
]

logger = logging.getLogger(__name__)

PROG = "aiosfstream"


class ExitCode(enum.IntEnum):
    """The exit statuses of the ``aiosfstream`` command."""

    #: Done: ``--count`` events printed, ``--timeout`` elapsed, or the emulator stopped.
    OK = 0
    #: An unexpected error (a bug: run again with ``-vv`` for the traceback).
    ERROR = 1
    #: Bad arguments, missing credentials or a bad setting (argparse's status).
    USAGE = 2
    #: Salesforce refused to log in (:class:`~aiosfstream.exceptions.AuthenticationError`).
    AUTHENTICATION = 3
    #: Salesforce refused a request, such as a subscription to an unknown channel
    #: (:class:`~aiosfstream.exceptions.ServerError`).
    SERVER = 4
    #: Salesforce could not be reached, or the connection was lost for longer than
    #: ``--connection-timeout`` (:class:`~aiosfstream.exceptions.TransportError`); for
    #: ``emulator``, the address cannot be listened on.
    NETWORK = 5
    #: The replay store cannot be opened, read or written.
    REPLAY_STORE = 6
    #: ``--timeout`` elapsed before ``--count`` events were printed.
    INCOMPLETE = 7
    #: Stopped by SIGINT (Ctrl+C): 128 + 2.
    SIGINT = 130
    #: stdout was closed by its reader (e.g. ``| head``), as after SIGPIPE: 128 + 13.
    BROKEN_PIPE = 141
    #: Stopped by SIGTERM: 128 + 15.
    SIGTERM = 143


#: The environment variable read for each setting; a command-line option wins over it.
ENVIRONMENT: dict[str, str] = {
    "auth": "SF_AUTH_FLOW",
    "consumer_key": "SF_CONSUMER_KEY",
    "consumer_secret": "SF_CONSUMER_SECRET",
    "username": "SF_USERNAME",
    "password": "SF_PASSWORD",
    "refresh_token": "SF_REFRESH_TOKEN",
    "private_key_file": "SF_PRIVATE_KEY_FILE",
    "login_url": "SF_LOGIN_URL",
    "sandbox": "SF_SANDBOX",
    "api_version": "SF_API_VERSION",
}

#: OAuth flows, and the settings each one needs.
AUTH_FLOWS: dict[str, tuple[str, ...]] = {
    "password": ("consumer_key", "consumer_secret", "username", "password"),
    "refresh-token": ("consumer_key", "consumer_secret", "refresh_token"),
    "jwt": ("consumer_key", "username", "private_key_file"),
    "client-credentials": ("consumer_key", "consumer_secret", "login_url"),
}

_OPTION_NAMES = {
    "consumer_key": "--consumer-key",
    "consumer_secret": "--consumer-secret",
    "username": "--username",
    "password": "--password",
    "refresh_token": "--refresh-token",
    "private_key_file": "--private-key-file",
    "login_url": "--login-url",
}

_REPLAY_WORDS = {"new": ReplayOption.NEW_EVENTS, "all": ReplayOption.ALL_EVENTS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Channel ``listen --emulator`` subscribes to when none is given.
DEMO_CHANNEL = "/topic/Demo"
#: Channels the ``emulator`` command creates (and publishes demo events on) by default.
DEMO_CHANNELS = ("/topic/Demo", "/data/AccountChangeEvent")
#: Events per second and channel that ``listen --emulator`` publishes.
LISTEN_DEMO_RATE = 2.0
#: Port of the ``emulator`` command unless ``--port`` is given.
EMULATOR_PORT = 7357


class UsageError(Exception):
    """A setting is missing or wrong: the command exits with :attr:`ExitCode.USAGE`."""


class _OutputClosed(Exception):
    """The reader of stdout went away."""


class ReplayStoreError(Exception):
    """The replay store cannot be opened: the command exits with :attr:`ExitCode.REPLAY_STORE`."""


# --- settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoginSettings:
    """How to log in; secrets are kept out of ``repr``."""

    flow: str
    consumer_key: str | None = None
    consumer_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    login_url: str | None = None
    sandbox: bool = False
    allow_insecure_http: bool = False

    def secrets(self) -> list[str]:
        """The values that must never be printed."""
        values = (self.consumer_secret, self.password, self.refresh_token)
        return [value for value in values if value]


@dataclass(frozen=True)
class ListenSettings:
    """Everything ``listen`` needs, checked."""

    channels: tuple[str, ...]
    #: ``None`` with ``--emulator``: the emulator's credentials are used.
    login: LoginSettings | None
    replay: int = ReplayOption.NEW_EVENTS
    replay_store: str | None = None
    replay_fallback: ReplayOption | None = None
    count: int | None = None
    timeout: float | None = None
    connection_timeout: float | None = DEFAULT_CONNECTION_TIMEOUT
    api_version: str = DEFAULT_API_VERSION

    @property
    def emulator(self) -> bool:
        """Whether to listen to an emulator started in-process."""
        return self.login is None


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything ``emulator`` needs."""

    host: str = "127.0.0.1"
    port: int = EMULATOR_PORT
    demo_rate: float = 0.0
    demo_channels: tuple[str, ...] = DEMO_CHANNELS


def parse_replay(text: str) -> int:
    """Read ``--replay``: ``new``, ``all`` or a replay id (``-1`` and ``-2`` included).

    :raises ValueError: anything else
    """
    word = text.strip().lower()
    if word in _REPLAY_WORDS:
        return _REPLAY_WORDS[word]
    try:
        replay_id = int(word)
    except ValueError:
        raise ValueError(f"expected new, all or a replay id, got {text!r}") from None
    if replay_id < ReplayOption.ALL_EVENTS:
        raise ValueError(f"a replay id is -2, -1 or at least 0, got {replay_id}")
    if replay_id in (ReplayOption.NEW_EVENTS, ReplayOption.ALL_EVENTS):
        return ReplayOption(replay_id)
    return replay_id


def _replay_type(text: str) -> int:
    try:
        return parse_replay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be {'0 or more' if allow_zero else 'more than 0'}, got {text!r}"
            )
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected events per second, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _setting(args: argparse.Namespace, name: str, environ: Mapping[str, str]) -> str | None:
    """The option *name* if given, else its environment variable; blank counts as unset."""
    value = getattr(args, name, None)
    if value is None:
        value = environ.get(ENVIRONMENT[name])
    if value is None or not str(value).strip():
        return None
    return str(value)


def _flag(args: argparse.Namespace, name: str, environ: Mapping[str, str]) -> bool:
    if getattr(args, name, False):
        return True
    text = environ.get(ENVIRONMENT[name], "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE or not text:
        return False
    raise UsageError(f"{ENVIRONMENT[name]} must be 1 or 0 (true or false), got {text!r}")


def _describe(name: str) -> str:
    return f"{_OPTION_NAMES[name]} or {ENVIRONMENT[name]}"


def login_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> LoginSettings:
    """Collect the login settings from the options, falling back on *environ*.

    Without ``--auth`` (or ``SF_AUTH_FLOW``), the flow follows from what is given: a
    refresh token, else a password, else a private key file.

    :raises UsageError: unknown flow, or a setting the flow needs is missing
    """
    values = {name: _setting(args, name, environ) for name in _OPTION_NAMES}
    flow = _setting(args, "auth", environ)
    if flow is None:
        if values["refresh_token"]:
            flow = "refresh-token"
        elif values["password"]:
            flow = "password"
        elif values["private_key_file"]:
            flow = "jwt"
        else:
            raise UsageError(
                "no credentials: give a refresh token (SF_REFRESH_TOKEN), a password "
                "(SF_PASSWORD), a private key file for the JWT flow (SF_PRIVATE_KEY_FILE), "
                "or choose a flow with --auth"
            )
    flow = flow.strip().lower()
    if flow not in AUTH_FLOWS:
        raise UsageError(f"unknown auth flow {flow!r}; expected one of {', '.join(AUTH_FLOWS)}")
    missing = [_describe(name) for name in AUTH_FLOWS[flow] if not values[name]]
    if missing:
        raise UsageError(f"the {flow} flow needs {'; '.join(missing)}")
    return LoginSettings(
        flow=flow,
        sandbox=_flag(args, "sandbox", environ),
        allow_insecure_http=bool(getattr(args, "allow_insecure_http", False)),
        **values,
    )


def listen_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> ListenSettings:
    """Check the options of ``listen``; with ``--emulator``, credentials are not read.

    :raises UsageError: a setting is missing or wrong
    """
    channels = tuple(args.channels) or ((DEMO_CHANNEL,) if args.emulator else ())
    if not channels:
        raise UsageError("give at least one CHANNEL (or --emulator to try the demo)")
    for channel in channels:
        try:
            check_channel(channel)
        except ValueError as error:
            raise UsageError(str(error)) from None
    api_version = _setting(args, "api_version", environ) or DEFAULT_API_VERSION
    try:
        api_version = check_api_version(api_version)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return ListenSettings(
        channels=tuple(dict.fromkeys(channels)),
        login=None if args.emulator else login_settings(args, environ),
        replay=args.replay,
        replay_store=args.replay_store,
        replay_fallback=_REPLAY_WORDS.get(args.replay_fallback or ""),
        count=args.count,
        timeout=args.timeout,
        connection_timeout=args.connection_timeout or None,
        api_version=api_version,
    )


def emulator_settings(args: argparse.Namespace) -> EmulatorSettings:
    """Check the options of ``emulator``.

    :raises UsageError: a demo channel is not a streaming channel name
    """
    channels = tuple(dict.fromkeys(args.demo_channels or DEMO_CHANNELS))
    for channel in channels:
        if _channel_kind(channel) is None:
            raise UsageError(
                f"not a streaming channel: {channel!r} "
                "(expected /topic/..., /u/..., /event/... or /data/...)"
            )
    return EmulatorSettings(
        host=args.host, port=args.port, demo_rate=args.demo_rate, demo_channels=channels
    )


# --- the parser -----------------------------------------------------------------------

_LISTEN_EPILOG = """\
environment variables (an option wins over its variable):
  SF_AUTH_FLOW         --auth
  SF_CONSUMER_KEY      --consumer-key
  SF_CONSUMER_SECRET   --consumer-secret
  SF_USERNAME          --username
  SF_PASSWORD          --password (the security token appended, if needed)
  SF_REFRESH_TOKEN     --refresh-token
  SF_PRIVATE_KEY_FILE  --private-key-file
  SF_LOGIN_URL         --login-url
  SF_SANDBOX           --sandbox (1 or 0)
  SF_API_VERSION       --api-version

exit status:
  0 done (--count reached, --timeout elapsed)   1 unexpected error
  2 usage error or missing credentials          3 login refused
  4 request refused (e.g. unknown channel)      5 network failure
  6 replay store unusable                       7 --timeout before --count events
  130 SIGINT   141 stdout closed   143 SIGTERM

example:
  aiosfstream listen --emulator --count 5
"""

_EMULATOR_EPILOG = """\
The emulator's credentials are fake and public; it is meant for loopback use.
It stops on SIGINT (exit status 130) or SIGTERM (143).
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``aiosfstream`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Listen to the Salesforce Streaming API, or run a local emulator of it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more to stderr: -v for progress, -vv for debugging",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listen = commands.add_parser(
        "listen",
        parents=[common],
        help="print events as JSON lines",
        description=(
            "Subscribe to CHANNELs and print each event on stdout as one line of JSON.\n"
            "An event's replay marker is stored once its line is written, so a run with\n"
            "--replay-store continues where the previous one stopped."
        ),
        epilog=_LISTEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listen.set_defaults(subparser=listen)
    listen.add_argument(
        "channels",
        nargs="*",
        metavar="CHANNEL",
        help=f"e.g. /topic/Name, /event/Name__e, /data/AccountChangeEvent, /u/Name "
        f"(with --emulator: {DEMO_CHANNEL})",
    )
    events = listen.add_argument_group("events")
    events.add_argument(
        "--replay",
        type=_replay_type,
        default=ReplayOption.NEW_EVENTS,
        metavar="new|all|ID",
        help="where to start: new events only (default), all retained events, or the "
        "events after replay id ID; with --replay-store, only for channels it has no "
        "marker of",
    )
    events.add_argument(
        "--replay-store",
        metavar="PATH",
        help="SQLite file keeping the replay marker of each channel; a run continues "
        "after the last event the previous run printed",
    )
    events.add_argument(
        "--replay-fallback",
        choices=tuple(_REPLAY_WORDS),
        help="replay option to use when Salesforce rejects a stored replay id (it left "
        "the retention window); by default the run fails with status 4",
    )
    events.add_argument(
        "--count", type=_positive_int, metavar="N", help="exit (status 0) after N events"
    )
    events.add_argument(
        "--timeout",
        type=_seconds(allow_zero=False),
        metavar="SECONDS",
        help="exit SECONDS after the subscriptions are in place: status 0, or 7 if "
        "--count events have not all been printed",
    )
    events.add_argument(
        "--emulator",
        action="store_true",
        help="start a Salesforce emulator in this process, publishing demo events, and "
        "listen to it; credential options are ignored",
    )

    login = listen.add_argument_group(
        "login",
        "Prefer the environment variables for secrets: command-line arguments are\n"
        "visible to the other users of the machine.",
    )
    login.add_argument(
        "--auth",
        choices=tuple(AUTH_FLOWS),
        type=str.lower,
        help="OAuth flow; by default the first of refresh-token, password, jwt whose "
        "credentials are given",
    )
    login.add_argument("--consumer-key", metavar="KEY", help="connected app's consumer key")
    login.add_argument(
        "--consumer-secret", metavar="SECRET", help="connected app's consumer secret"
    )
    login.add_argument("--username", metavar="NAME", help="user to log in as")
    login.add_argument("--password", metavar="PASSWORD", help="password (+ security token)")
    login.add_argument("--refresh-token", metavar="TOKEN", help="refresh token")
    login.add_argument(
        "--private-key-file", metavar="PATH", help="PEM RSA private key for the jwt flow"
    )
    login.add_argument(
        "--login-url",
        metavar="URL",
        help="login host, e.g. a My Domain URL (https://login.salesforce.com by default)",
    )
    login.add_argument("--sandbox", action="store_true", help="log in at test.salesforce.com")
    login.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="accept http:// URLs (local emulators only)",
    )

    connection = listen.add_argument_group("connection")
    connection.add_argument(
        "--api-version",
        metavar="VERSION",
        help=f"Streaming API version (default {DEFAULT_API_VERSION})",
    )
    connection.add_argument(
        "--connection-timeout",
        type=_seconds(allow_zero=True),
        default=DEFAULT_CONNECTION_TIMEOUT,
        metavar="SECONDS",
        help="give up (status 5) when Salesforce cannot be reached for this long; 0 never "
        "gives up (default %(default)g)",
    )

    emulator = commands.add_parser(
        "emulator",
        parents=[common],
        help="run a local Salesforce emulator",
        description=(
            "Run the Salesforce emulator (OAuth token endpoint, Streaming API, admin API "
            "under /__admin__) until SIGINT or SIGTERM, and print its URL and credentials."
        ),
        epilog=_EMULATOR_EPILOG,
    )
    emulator.set_defaults(subparser=emulator)
    emulator.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    emulator.add_argument(
        "--port",
        type=_port,
        default=EMULATOR_PORT,
        help="port to listen on; 0 picks a free one (default %(default)s)",
    )
    emulator.add_argument(
        "--demo-rate",
        type=_rate,
        default=0.0,
        metavar="EVENTS_PER_SECOND",
        help="publish demo events at this rate on each demo channel (default: none)",
    )
    emulator.add_argument(
        "--demo-channel",
        dest="demo_channels",
        action="append",
        metavar="CHANNEL",
        help="create this channel and publish the demo events on it; repeatable "
        f"(default: {' and '.join(DEMO_CHANNELS)})",
    )
    return parser


# --- building blocks ----------------------------------------------------------------


def _given(value: str | None) -> str:
    # login_settings() checked that the flow's settings are there.
    assert value is not None
    return value


def build_authenticator(
    settings: LoginSettings, *, timeout: float | None = None
) -> AuthenticatorBase:
    """Return the authenticator of *settings*'s flow.

    :param timeout: seconds a token request may take (the authenticator's default if
        ``None``)
    :raises UsageError: a setting is rejected (a plain-http URL without
        ``--allow-insecure-http``, an unreadable key file, PyJWT missing...)
    """
    options: dict[str, Any] = {"allow_insecure_http": settings.allow_insecure_http}
    if timeout is not None:
        options["timeout"] = timeout
    if settings.flow != "client-credentials":
        options.update(login_url=settings.login_url, sandbox=settings.sandbox)
    try:
        if settings.flow == "password":
            return PasswordAuthenticator(
                _given(settings.consumer_key),
                _given(settings.consumer_secret),
                _given(settings.username),
                _given(settings.password),
                **options,
            )
        if settings.flow == "refresh-token":
            return RefreshTokenAuthenticator(
                _given(settings.consumer_key),
                _given(settings.consumer_secret),
                _given(settings.refresh_token),
                **options,
            )
        if settings.flow == "jwt":
            return JWTBearerAuthenticator(
                _given(settings.consumer_key),
                _given(settings.username),
                private_key_file=settings.private_key_file,
                **options,
            )
        if settings.flow == "client-credentials":
            return ClientCredentialsAuthenticator(
                _given(settings.consumer_key),
                _given(settings.consumer_secret),
                _given(settings.login_url),
                **options,
            )
    except ImportError as error:
        raise UsageError(f"the {settings.flow} flow cannot run here: {error}") from None
    except (TypeError, ValueError) as error:
        # The library names its keyword argument; here it is an option.
        message = str(error).replace("allow_insecure_http=True", "--allow-insecure-http")
        raise UsageError(message) from None
    raise UsageError(f"unknown auth flow {settings.flow!r}")


@contextlib.asynccontextmanager
async def open_replay_store(path: str, default_id: int) -> AsyncIterator[ReplayMarkerStorage]:
    """Open the SQLite replay store at *path*, for the time of the ``async with`` block.

    :param default_id: the replay id of the channels the store has no marker of
    :raises ReplayStoreError: the database cannot be opened
    """
    try:
        storage = SQLiteReplayStorage(path, default_id=default_id)
    except OSError as error:
        raise ReplayStoreError(f"cannot open {path!r}: {error.strerror or error}") from error
    try:
        # Opening the database now reports a bad file here rather than at the first event.
        await storage.__aenter__()
    except (OSError, sqlite3.Error, ReplayError) as error:
        with contextlib.suppress(Exception):
            await storage.close()
        raise ReplayStoreError(f"cannot open {path!r}: {error}") from error
    try:
        yield storage
    finally:
        await storage.close()


class JsonLinesWriter:
    """Writes each message as one line of compact JSON, in UTF-8, and flushes it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, message: Message) -> None:
        """Write and flush *message*.

        :raises _OutputClosed: the reader closed the pipe
        """
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                # A lone surrogate (possible in decoded JSON) becomes its JSON escape.
                buffer.write(text.encode("utf-8", errors="backslashreplace"))
                buffer.flush()
            else:
                self.stream.write(text)
                self.stream.flush()
        except BrokenPipeError as error:
            raise _OutputClosed from error


# --- stopping cleanly -----------------------------------------------------------------


class _Stopper:
    """Runs one task and stops it on SIGINT, SIGTERM or a deadline.

    The stop cancels the task, except inside :meth:`critical` sections (writing an event
    and storing its marker), which are left to finish: the task then checks :attr:`code`.
    A second signal while stopping exits at once.
    """

    _SIGNALS = (
        (signal.SIGINT, ExitCode.SIGINT),
        (signal.SIGTERM, ExitCode.SIGTERM),
    )

    def __init__(self) -> None:
        #: Why the task is asked to stop, once it is.
        self.code: ExitCode | None = None
        self._task: asyncio.Task[ExitCode] | None = None
        self._critical = False
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, work: Callable[[_Stopper], Coroutine[Any, Any, ExitCode]]) -> ExitCode:
        """Run ``work(self)``; return its status, or the stop's if it was cancelled."""
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(work(self))
        self._task = task
        installed = []
        for signum, code in self._SIGNALS:
            try:
                loop.add_signal_handler(signum, self._on_signal, code)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, threads
                continue
            installed.append(signum)
        try:
            try:
                return await task
            except asyncio.CancelledError:
                if task.cancelled() and self.code is not None:
                    return self.code
                raise
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if self._timer is not None:
                self._timer.cancel()

    def _on_signal(self, code: ExitCode) -> None:
        if self.code is not None:
            logger.warning("second signal while stopping: exiting at once")
            os._exit(code)
        logger.info("received %s: stopping", code.name)
        self.stop(code)

    def stop(self, code: ExitCode) -> None:
        """Ask the task to stop, with exit status *code* (the first request wins)."""
        if self.code is not None:
            return
        self.code = code
        if self._task is not None and not self._critical and not self._task.done():
            self._task.cancel()

    def stop_after(self, seconds: float, code: ExitCode) -> None:
        """Stop with *code* in *seconds*."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self.stop, code)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A section a stop does not interrupt."""
        self._critical = True
        try:
            yield
        finally:
            self._critical = False

    def shield_rest(self) -> None:
        """From now on, a stop does not interrupt the task: it is cleaning up."""
        self._critical = True


# --- listen ---------------------------------------------------------------------------


async def _listen(
    settings: ListenSettings, stopper: _Stopper, writer: JsonLinesWriter, redactor: _Redactor
) -> ExitCode:
    async with contextlib.AsyncExitStack() as stack:
        login = settings.login
        if login is None:
            emulator = await stack.enter_async_context(
                _running_emulator("127.0.0.1", 0, settings.channels, LISTEN_DEMO_RATE)
            )
            credentials = emulator.credentials
            login = LoginSettings(
                flow="password",
                consumer_key=credentials.consumer_key,
                consumer_secret=credentials.consumer_secret,
                username=credentials.username,
                password=credentials.password,
                login_url=emulator.url,
                allow_insecure_http=True,
            )
            logger.info("emulator started at %s", emulator.url)
        redactor.secrets.extend(login.secrets())
        authenticator = build_authenticator(login, timeout=settings.connection_timeout)

        storage: ReplayMarkerStorage
        if settings.replay_store is not None:
            storage = await stack.enter_async_context(
                open_replay_store(settings.replay_store, settings.replay)
            )
        else:
            storage = ConstantReplayId(settings.replay)
        client = Client(
            authenticator,
            replay=storage,
            replay_fallback=settings.replay_fallback,
            replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
            connection_timeout=settings.connection_timeout,
            api_version=settings.api_version,
        )
        stack.push_async_callback(client.close)
        await client.open()
        for channel in settings.channels:
            await client.subscribe(channel)
        logger.info("listening to %s", ", ".join(settings.channels))
        code = await _print_events(client, settings, stopper, writer)
        stopper.shield_rest()
    return code


async def _print_events(
    client: Client, settings: ListenSettings, stopper: _Stopper, writer: JsonLinesWriter
) -> ExitCode:
    if settings.timeout is not None:
        on_timeout = ExitCode.OK if settings.count is None else ExitCode.INCOMPLETE
        stopper.stop_after(settings.timeout, on_timeout)
    printed = 0
    while settings.count is None or printed < settings.count:
        message = await client.receive()
        # The marker is stored after the line is out: a stop in between replays the
        # event next time rather than losing it.
        with stopper.critical():
            async with client.replay_storage(message):
                writer.write(message)
        printed += 1
        if stopper.code is not None and (settings.count is None or printed < settings.count):
            return stopper.code
    return ExitCode.OK


# --- the emulator ---------------------------------------------------------------------


def _channel_kind(channel: str) -> str | None:
    for prefix in ("/topic/", "/u/", "/event/", "/data/"):
        if channel.startswith(prefix) and len(channel) > len(prefix) and "*" not in channel:
            return prefix.strip("/")
    return None


_DEMO_ACCOUNTS = (
    ("Blue Heron Outfitters", "Retail", "Portland", 42),
    ("Copperline Logistics", "Transportation", "Memphis", 310),
    ("Greenfield Dairy Co-op", "Agriculture", "Madison", 85),
    ("Harbor Point Clinics", "Healthcare", "Halifax", 520),
    ("Quarry Lane Software", "Technology", "Leeds", 64),
    ("Saltmarsh Energy", "Energy", "Perth", 1200),
)
_SEVERITIES = ("Low", "Medium", "High")


def demo_event(channel: str, number: int) -> tuple[Any, str | None]:
    """Return the payload and event type of demo event *number* (from 1) on *channel*.

    Accounts come in turn; each is created the first time it comes up and updated later.
    """
    from aiosfstream.testing.events import salesforce_id

    index = (number - 1) % len(_DEMO_ACCOUNTS)
    first = number <= len(_DEMO_ACCOUNTS)
    name, industry, city, employees = _DEMO_ACCOUNTS[index]
    record_id = salesforce_id("001", 7000 + index)
    revenue = employees * 95_000 + number * 1_000
    kind = _channel_kind(channel)
    if kind == "topic":
        fields: dict[str, Any] = {"Id": record_id, "Name": name, "AnnualRevenue": revenue}
        if first:
            fields.update(Industry=industry, BillingCity=city, NumberOfEmployees=employees)
        return fields, "created" if first else "updated"
    if kind == "data":
        header = {"recordIds": [record_id]}
        if first:
            created = {"Name": name, "Industry": industry, "BillingCity": city}
            return {"ChangeEventHeader": header, **created, "AnnualRevenue": revenue}, "CREATE"
        return {"ChangeEventHeader": header, "AnnualRevenue": revenue}, "UPDATE"
    if kind == "event":
        severity = _SEVERITIES[number % len(_SEVERITIES)]
        return {
            "Account_Id__c": record_id,
            "Message__c": f"Order {number:05d} for {name} is ready to ship",
            "Severity__c": severity,
        }, None
    return f"Demo notification {number}: {name} ({city})", None


async def _publish_demo(emulator: SalesforceEmulator, channels: Sequence[str], rate: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for number in itertools.count(1):
        await asyncio.sleep(max(0.0, start + number / rate - loop.time()))
        for channel in channels:
            payload, event_type = demo_event(channel, number)
            emulator.publish(channel, payload, event_type=event_type)


@contextlib.asynccontextmanager
async def _running_emulator(
    host: str, port: int, channels: Sequence[str], demo_rate: float
) -> AsyncIterator[SalesforceEmulator]:
    """Start an emulator with *channels* and, if *demo_rate*, a demo publisher on them."""
    from aiosfstream.testing import SalesforceEmulator

    emulator = SalesforceEmulator(host=host, port=port)
    demo_channels = []
    for channel in channels:
        name = channel.split("?", 1)[0]
        if _channel_kind(name) is None:
            continue  # the subscription will fail as it would on Salesforce
        emulator.create_channel(name)
        demo_channels.append(name)
    try:
        await emulator.start()
    except OSError as error:
        raise _ListenFailed(
            f"cannot listen on {host} port {port}: {error.strerror or error}"
        ) from error
    publisher = None
    if demo_rate > 0 and demo_channels:
        publisher = asyncio.create_task(
            _publish_demo(emulator, list(dict.fromkeys(demo_channels)), demo_rate)
        )
    try:
        yield emulator
    finally:
        if publisher is not None:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        await emulator.stop()


class _ListenFailed(Exception):
    """The emulator cannot listen on its address."""


def _emulator_banner(emulator: SalesforceEmulator, settings: EmulatorSettings) -> str:
    credentials = emulator.credentials
    exports = {
        "SF_LOGIN_URL": emulator.url,
        "SF_CONSUMER_KEY": credentials.consumer_key,
        "SF_CONSUMER_SECRET": credentials.consumer_secret,
        "SF_USERNAME": credentials.username,
        "SF_PASSWORD": credentials.password,
    }
    channels = ", ".join(settings.demo_channels)
    if settings.demo_rate > 0:
        demo = f"Demo events: {settings.demo_rate:g} per second on {channels}"
    else:
        demo = f"Channels: {channels} (no demo events; see --demo-rate)"
    lines = [
        f"Salesforce emulator running at {emulator.url}",
        f"  OAuth token endpoint: {emulator.token_url}",
        f"  Streaming API:        {emulator.cometd_url()}",
        f"  Admin API:            {emulator.url}/__admin__",
        demo,
        "",
        "Its credentials are fake and the same for everyone. To try a client:",
        "",
        *(f"export {name}={shlex.quote(value)}" for name, value in exports.items()),
        f"{PROG} listen --allow-insecure-http {shlex.quote(settings.demo_channels[0])}",
        "",
        "Stop with Ctrl+C.",
    ]
    return "\n".join(lines) + "\n"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve_emulator(settings: EmulatorSettings, stopper: _Stopper) -> ExitCode:
    if not _is_loopback(settings.host):
        logger.warning(
            "listening on %s: the emulator's credentials are public, anyone who can reach "
            "it can use it",
            settings.host,
        )
    rate = settings.demo_rate
    async with _running_emulator(
        settings.host, settings.port, settings.demo_channels, rate
    ) as emulator:
        try:
            sys.stdout.write(_emulator_banner(emulator, settings))
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. "| head -n 1" to read the URL: keep serving
            _silence_stdout()
        # Serve until the stopper cancels this task.
        await asyncio.Event().wait()
    return ExitCode.OK


# --- main -----------------------------------------------------------------------------


class _Redactor(logging.Formatter):
    """Formats log records to stderr, with every known secret replaced."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secrets: list[str] = []

    def redact(self, text: str) -> str:
        """Replace each secret in *text*."""
        return redact(text, self.secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


_ERRORS: tuple[tuple[type[BaseException], ExitCode, str], ...] = (
    (AuthenticationError, ExitCode.AUTHENTICATION, "login refused"),
    (ServerError, ExitCode.SERVER, "Salesforce refused"),
    (TransportError, ExitCode.NETWORK, "network failure"),
    (_ListenFailed, ExitCode.NETWORK, "emulator"),
    (ReplayStoreError, ExitCode.REPLAY_STORE, "replay store"),
    (ReplayError, ExitCode.REPLAY_STORE, "replay store"),
)


def _report(redactor: _Redactor, message: str, *, prog: str = PROG) -> None:
    """Write *message* to stderr as one line, secrets replaced."""
    line = " ".join(redactor.redact(message).split())
    sys.stderr.write(f"{prog}: {line}\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _run(args: argparse.Namespace, redactor: _Redactor) -> ExitCode:
    stopper = _Stopper()
    if args.command == "listen":
        listen = listen_settings(args, os.environ)
        writer = JsonLinesWriter(sys.stdout)
        return asyncio.run(stopper.run(lambda stopper: _listen(listen, stopper, writer, redactor)))
    emulator = emulator_settings(args)
    return asyncio.run(stopper.run(lambda stopper: _serve_emulator(emulator, stopper)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiosfstream`` command with *argv* (``sys.argv[1:]``); return its status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version or a usage error
        return exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE

    redactor = _Redactor()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(redactor)
    root = logging.getLogger()
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        return _run(args, redactor)
    except UsageError as error:
        prog = args.subparser.prog
        _report(redactor, f"error: {error} (see '{prog} --help')", prog=prog)
        return ExitCode.USAGE
    except _OutputClosed:
        _silence_stdout()
        return ExitCode.BROKEN_PIPE
    except KeyboardInterrupt:  # before the signal handlers were in place
        return ExitCode.SIGINT
    except Exception as error:
        for kind, code, label in _ERRORS:
            if isinstance(error, kind):
                _report(redactor, f"{label}: {error}")
                return code
        logger.debug("unexpected error", exc_info=True)
        _report(redactor, f"unexpected error: {type(error).__name__}: {error} (-vv shows more)")
        return ExitCode.ERROR
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
