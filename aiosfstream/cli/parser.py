"""The command line: ``aiosfstream listen`` and ``aiosfstream emulator``, with their help."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

from aiosfstream._version import __version__
from aiosfstream.cli.errors import PROG, ExitCode, error_line
from aiosfstream.cli.settings import (
    AUTH_FLOWS,
    DEFAULT_LEASE_TTL,
    DEMO_CHANNEL,
    EMULATOR_CHANNELS,
    EMULATOR_PORT,
    FALSE_WORDS,
    REPLAY_WORDS,
    TRUE_WORDS,
    parse_replay,
)
from aiosfstream.cometd.constants import DEFAULT_CONNECTION_TIMEOUT
from aiosfstream.policy import DEFAULT_API_VERSION
from aiosfstream.replay import ReplayOption

__all__ = ["ArgumentParser", "build_parser", "parse_args"]


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose error lines have the command's one form."""

    def error(self, message: str) -> NoReturn:
        """Print this (sub)command's usage, then the error line, and exit with status 2."""
        # No secret is known yet, so there is nothing to redact.
        self.print_usage(sys.stderr)
        sys.stderr.write(error_line(f"error: {message}", prog=self.prog))
        self.exit(ExitCode.USAGE)


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


_LISTEN_EPILOG = f"""\
environment variables (an option wins over its variable):
  SF_AUTH_FLOW         --auth
  SF_CONSUMER_KEY      --consumer-key
  SF_CONSUMER_SECRET   --consumer-secret
  SF_USERNAME          --username
  SF_PASSWORD          --password (the security token appended, if needed)
  SF_REFRESH_TOKEN     --refresh-token
  SF_PRIVATE_KEY_FILE  --private-key-file
  SF_LOGIN_URL         --login-url
  SF_SANDBOX           --sandbox ({", ".join(TRUE_WORDS)}; or {", ".join(FALSE_WORDS)}, empty)
  SF_API_VERSION       --api-version
  SF_PUBSUB_ENDPOINT   --pubsub-endpoint

exit status:
  0 done (--count reached, --timeout elapsed)   1 unexpected error
  2 usage error or missing credentials          3 login refused
  4 request refused (e.g. unknown channel)      5 network failure
  6 replay store unusable                       7 --timeout before --count events
  130 SIGINT   141 stdout closed   143 SIGTERM

examples:
  {PROG} listen --emulator --count 5
  {PROG} listen --emulator --pubsub --count 5
"""

_EMULATOR_EPILOG = """\
The emulator's credentials are fake and public; it is meant for loopback use.
It stops on SIGINT (exit status 130) or SIGTERM (143).
"""


def build_parser() -> ArgumentParser:
    """Return the parser of the ``aiosfstream`` command."""
    parser = ArgumentParser(
        prog=PROG,
        description="Listen to the Salesforce Streaming API, or run a local emulator of it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more to stderr: -v for progress (login, subscriptions, reconnects, a "
        "summary at exit), -vv for debugging",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_listen(commands.add_parser, common)
    _add_emulator(commands.add_parser, common)
    return parser


def parse_args(parser: ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse *argv*; an unknown option is reported with its subcommand's usage.

    argparse hands the arguments a subcommand does not know back to the top-level
    parser, whose usage says nothing about the subcommand's options.

    :raises SystemExit: ``--help``, ``--version`` or a usage error
    """
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


_AddParser = Callable[..., ArgumentParser]


def _add_listen(add_parser: _AddParser, common: ArgumentParser) -> None:
    listen = add_parser(
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
        metavar="PATH|URL",
        help="SQLite file, or Redis server (redis://, rediss:// or unix:// URL), keeping "
        "the replay marker of each channel; a run continues after the last event the "
        "previous run printed",
    )
    events.add_argument(
        "--replay-fallback",
        choices=tuple(REPLAY_WORDS),
        help="where to start instead when Salesforce rejects a replay id (its event left "
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
        help="start a Salesforce emulator in this process (with --pubsub, its Pub/Sub API "
        "too), publishing demo events, and listen to it; credential options are ignored",
    )

    replicas = listen.add_argument_group(
        "replicas",
        "Several replicas with the same lease: one prints events, the others stand by and\n"
        "take over, from the shared --replay-store, when it stops.",
    )
    replicas.add_argument(
        "--lease",
        metavar="URL",
        help="Redis server (redis://, rediss:// or unix:// URL) holding the lease; the "
        "same server and database as --replay-store",
    )
    replicas.add_argument(
        "--lease-name", metavar="NAME", help="the lease's name, the same for every replica"
    )
    replicas.add_argument(
        "--lease-ttl",
        type=_seconds(allow_zero=False),
        metavar="SECONDS",
        help="how long the lease outlives a replica that stopped renewing it: the longest "
        f"pause before a standby takes over (default {DEFAULT_LEASE_TTL:g})",
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
        help="login host, e.g. a My Domain URL (https://login.salesforce.com by default); "
        "not with --sandbox",
    )
    login.add_argument(
        "--sandbox",
        action="store_true",
        help="log in at test.salesforce.com; not with --login-url",
    )
    login.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="accept http:// URLs to other hosts than this one (test emulators only)",
    )

    connection = listen.add_argument_group("connection")
    connection.add_argument(
        "--pubsub",
        action="store_true",
        help="listen through the Pub/Sub API (gRPC) instead of CometD; needs "
        "pip install 'aiosfstream[pubsub]'",
    )
    connection.add_argument(
        "--pubsub-endpoint",
        metavar="HOST:PORT",
        help="where the Pub/Sub API is (default api.pubsub.salesforce.com:7443)",
    )
    connection.add_argument(
        "--pubsub-plaintext",
        action="store_true",
        help="talk to the Pub/Sub API without TLS (test emulators only)",
    )
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


def _add_emulator(add_parser: _AddParser, common: ArgumentParser) -> None:
    emulator = add_parser(
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
        "--host",
        help="address to listen on (default: this machine only); 0.0.0.0 or :: listens "
        "on all interfaces",
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
        f"(default: {' and '.join(EMULATOR_CHANNELS)})",
    )
