"""What the command was asked to do: the options, with the environment filling the gaps.

The functions here turn parsed arguments into frozen, checked settings objects, and
raise :class:`~aiosfstream.cli.errors.UsageError` for anything missing or wrong.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiosfstream.auth import is_loopback_host
from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.replay_store import is_redis_url, shown_url
from aiosfstream.cometd.constants import DEFAULT_CONNECTION_TIMEOUT
from aiosfstream.cometd.messages import check_channel
from aiosfstream.policy import DEFAULT_API_VERSION, check_api_version
from aiosfstream.replay import ReplayOption, check_replay_id

__all__ = [
    "AUTH_FLOWS",
    "DEFAULT_LEASE_TTL",
    "DEMO_CHANNEL",
    "EMULATOR_CHANNELS",
    "EMULATOR_PORT",
    "ENVIRONMENT",
    "FALSE_WORDS",
    "LISTEN_DEMO_RATE",
    "PUBSUB_DEMO_TOPIC",
    "PUBSUB_PREFIXES",
    "REPLAY_WORDS",
    "TRUE_WORDS",
    "EmulatorSettings",
    "LeaseSettings",
    "ListenSettings",
    "LoginSettings",
    "emulator_settings",
    "listen_settings",
    "login_settings",
    "parse_replay",
    "replay_word",
]

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
    "pubsub_endpoint": "SF_PUBSUB_ENDPOINT",
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

#: The words of ``--replay`` and ``--replay-fallback``, and the options they stand for.
REPLAY_WORDS = {"new": ReplayOption.NEW_EVENTS, "all": ReplayOption.ALL_EVENTS}
#: What ``SF_SANDBOX`` accepts for yes and for no (in any case); empty counts as no.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

#: Channel ``listen --emulator`` subscribes to when none is given.
DEMO_CHANNEL = "/topic/Demo"
#: Topic ``listen --emulator --pubsub`` subscribes to when none is given (the emulator's
#: platform event).
PUBSUB_DEMO_TOPIC = "/event/Order_Event__e"
#: What a Pub/Sub topic name starts with: platform events, change events and their
#: channels (the Pub/Sub API has no PushTopics and no generic streaming).
PUBSUB_PREFIXES = ("/event/", "/data/")
#: Channels the ``emulator`` command creates (and publishes demo events on) by default.
EMULATOR_CHANNELS = ("/topic/Demo", "/data/AccountChangeEvent")
#: Events per second and channel that ``listen --emulator`` publishes.
LISTEN_DEMO_RATE = 2.0
#: Port of the ``emulator`` command unless ``--port`` is given.
EMULATOR_PORT = 7357
#: Seconds a lease of ``listen --lease`` outlives its holder unless ``--lease-ttl`` is given.
DEFAULT_LEASE_TTL = 10.0


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
    #: Listen through the Pub/Sub API (``--pubsub``) rather than CometD.
    pubsub: bool = False
    #: ``host:port`` of the Pub/Sub API; ``None``: Salesforce's.
    pubsub_endpoint: str | None = None
    #: Talk to the Pub/Sub API without TLS (an emulator).
    pubsub_plaintext: bool = False
    #: Run as one replica of several (``--lease``); ``None``: consume alone.
    lease: LeaseSettings | None = None

    @property
    def emulator(self) -> bool:
        """Whether to listen to an emulator started in-process."""
        return self.login is None


@dataclass(frozen=True)
class LeaseSettings:
    """The lease of ``listen --lease``: the Redis server, the lease's name, its ttl."""

    url: str
    name: str
    ttl: float = DEFAULT_LEASE_TTL


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything ``emulator`` needs."""

    #: ``None``: the emulator's default, this machine only.
    host: str | None = None
    port: int = EMULATOR_PORT
    demo_rate: float = 0.0
    demo_channels: tuple[str, ...] = EMULATOR_CHANNELS


def parse_replay(text: str) -> int:
    """Read ``--replay``: ``new``, ``all`` or a replay id (``-1`` and ``-2`` included).

    :raises ValueError: anything else
    """
    word = text.strip().lower()
    if word in REPLAY_WORDS:
        return REPLAY_WORDS[word]
    try:
        replay_id = int(word)
    except ValueError:
        raise ValueError(f"expected new, all or a replay id, got {text!r}") from None
    return check_replay_id("--replay", replay_id)


def replay_word(replay_id: int) -> str:
    """Where *replay_id* starts, in the command's words: ``new``, ``all`` or ``after ID``."""
    for word, option in REPLAY_WORDS.items():
        if replay_id == option:
            return word
    return f"after {replay_id}"


def _setting(args: argparse.Namespace, name: str, environ: Mapping[str, str]) -> str | None:
    """The option *name* if given, else its environment variable; blank counts as unset."""
    value = getattr(args, name, None)
    if value is None:
        value = environ.get(ENVIRONMENT[name])
    if value is None or not str(value).strip():
        return None
    return str(value)


def _sandbox(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """Where a request for the sandbox came from (``--sandbox`` or ``SF_SANDBOX=...``)."""
    if getattr(args, "sandbox", False):
        return "--sandbox"
    variable = ENVIRONMENT["sandbox"]
    text = environ.get(variable, "")
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return f"{variable}={text}"
    if word in FALSE_WORDS or not word:
        return None
    raise UsageError(
        f"{variable} must be one of {', '.join(TRUE_WORDS)} (a sandbox) or "
        f"{', '.join(FALSE_WORDS)} (not a sandbox), or empty; got {text!r}"
    )


def _describe(name: str) -> str:
    return f"{_OPTION_NAMES[name]} or {ENVIRONMENT[name]}"


def login_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> LoginSettings:
    """Collect the login settings from the options, falling back on *environ*.

    Without ``--auth`` (or ``SF_AUTH_FLOW``), the flow follows from what is given: a
    refresh token, else a password, else a private key file.

    :raises UsageError: unknown flow, a setting the flow needs is missing, or both a
        sandbox and a login URL say where to log in
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
    sandbox = _sandbox(args, environ)
    if sandbox is not None and values["login_url"]:
        # The library would quietly let the URL win; the user meant one of them.
        url = "--login-url" if getattr(args, "login_url", None) else ENVIRONMENT["login_url"]
        raise UsageError(f"{sandbox} and {url} both say where to log in; give only one")
    return LoginSettings(
        flow=flow,
        sandbox=sandbox is not None,
        allow_insecure_http=bool(getattr(args, "allow_insecure_http", False)),
        **values,
    )


def listen_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> ListenSettings:
    """Check the options of ``listen``; with ``--emulator``, credentials are not read.

    :raises UsageError: a setting is missing or wrong
    """
    demo = PUBSUB_DEMO_TOPIC if args.pubsub else DEMO_CHANNEL
    channels = tuple(args.channels) or ((demo,) if args.emulator else ())
    if not channels:
        raise UsageError("give at least one CHANNEL (or --emulator to try the demo)")
    for channel in channels:
        try:
            check_channel(channel)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if args.pubsub and not channel.startswith(PUBSUB_PREFIXES):
            raise UsageError(
                f"--pubsub listens to platform events and change events only "
                f"({' or '.join(f'{prefix}...' for prefix in PUBSUB_PREFIXES)}), "
                f"not {channel!r}"
            )
    api_version = _setting(args, "api_version", environ) or DEFAULT_API_VERSION
    try:
        api_version = check_api_version(api_version)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return ListenSettings(
        **_pubsub_settings(args, environ),
        lease=_lease_settings(args),
        channels=tuple(dict.fromkeys(channels)),
        login=None if args.emulator else login_settings(args, environ),
        replay=args.replay,
        replay_store=args.replay_store,
        replay_fallback=REPLAY_WORDS.get(args.replay_fallback or ""),
        count=args.count,
        timeout=args.timeout,
        connection_timeout=args.connection_timeout or None,
        api_version=api_version,
    )


def _pubsub_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``--pubsub`` settings of ``listen``.

    :raises UsageError: a Pub/Sub option without ``--pubsub``, or plaintext to another
        machine without ``--allow-insecure-http``
    """
    endpoint = _setting(args, "pubsub_endpoint", environ)
    if not args.pubsub:
        if args.pubsub_endpoint is not None or args.pubsub_plaintext:
            raise UsageError("--pubsub-endpoint and --pubsub-plaintext need --pubsub")
        return {}
    if args.pubsub_plaintext and not args.allow_insecure_http and not args.emulator:
        host = (endpoint or "").rpartition(":")[0]
        if not is_loopback_host(host):
            raise UsageError(
                f"--pubsub-plaintext sends the access token unencrypted to {host or 'Salesforce'}: "
                "add --allow-insecure-http if that machine is a test emulator"
            )
    return {
        "pubsub": True,
        "pubsub_endpoint": endpoint,
        "pubsub_plaintext": bool(args.pubsub_plaintext),
    }


def _redis_database(url: str) -> tuple[str, ...]:
    """Which server and database the Redis *url* names, however it is written."""
    parts = urlsplit(url)
    database = dict(parse_qsl(parts.query)).get("db", "0")
    if parts.scheme.lower() == "unix":
        return ("unix", parts.path, database)
    path_database = parts.path.strip("/") or database
    return ((parts.hostname or "localhost").lower(), str(parts.port or 6379), path_database)


def _lease_settings(args: argparse.Namespace) -> LeaseSettings | None:
    """The ``--lease`` settings of ``listen``.

    :raises UsageError: a lease option without ``--lease``, no ``--lease-name``, or a
        lease without a replay store on the same Redis database
    """
    if args.lease is None:
        if args.lease_name is not None or args.lease_ttl is not None:
            raise UsageError("--lease-name and --lease-ttl need --lease")
        return None
    if not is_redis_url(args.lease):
        raise UsageError(
            f"--lease takes a redis://, rediss:// or unix:// URL, got {shown_url(args.lease)!r}"
        )
    if not args.lease_name or not args.lease_name.strip():
        raise UsageError("--lease needs --lease-name: the replicas that share it use one name")
    store = args.replay_store
    if store is None or not is_redis_url(store):
        raise UsageError(
            "--lease needs --replay-store with a Redis URL: the replica that takes over must "
            "start where the previous one stopped, so they all keep their position in one "
            "shared store (an SQLite file, or none, is this replica's own)"
        )
    try:
        same = _redis_database(args.lease) == _redis_database(store)
    except ValueError as error:
        raise UsageError(f"--lease: {error}") from None
    if not same:
        raise UsageError(
            "--lease and --replay-store must name the same Redis server and database: "
            "the store writes a position only while the lease's key says this replica holds it"
        )
    ttl = DEFAULT_LEASE_TTL if args.lease_ttl is None else args.lease_ttl
    return LeaseSettings(url=args.lease, name=args.lease_name, ttl=ttl)


def emulator_settings(args: argparse.Namespace) -> EmulatorSettings:
    """Check the options of ``emulator``.

    :raises UsageError: a demo channel is not a streaming channel name
    """
    # The emulator's modules are loaded only by the commands that run one.
    from aiosfstream.testing.demo import is_demo_channel

    channels = tuple(dict.fromkeys(args.demo_channels or EMULATOR_CHANNELS))
    for channel in channels:
        if not is_demo_channel(channel):
            raise UsageError(
                f"not a streaming channel: {channel!r} "
                "(expected /topic/..., /u/..., /event/... or /data/..., without ? or *)"
            )
    return EmulatorSettings(
        host=args.host, port=args.port, demo_rate=args.demo_rate, demo_channels=channels
    )
