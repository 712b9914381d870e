"""``aiosfstream emulator``: the Salesforce emulator as a server of its own.

:func:`running_emulator` also starts the in-process emulator of ``listen --emulator``.
The emulator's modules are imported only here, when one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import socket
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiosfstream.auth import TOKEN_PATH, is_loopback_host
from aiosfstream.cli.errors import PROG, EmulatorAddressError, ExitCode
from aiosfstream.cli.settings import EmulatorSettings
from aiosfstream.cli.signals import Stopper
from aiosfstream.cli.writer import silence_stdout
from aiosfstream.policy import DEFAULT_API_VERSION, cometd_url

if TYPE_CHECKING:
    from aiosfstream.testing import SalesforceEmulator

__all__ = ["WILDCARD_HOSTS", "client_url", "in_background", "running_emulator", "serve_emulator"]

logger = logging.getLogger(__name__)

#: Hosts that mean "every interface": a server listens there, a client cannot connect there.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@contextlib.asynccontextmanager
async def running_emulator(
    host: str | None, port: int, channels: Sequence[str], demo_rate: float
) -> AsyncIterator[SalesforceEmulator]:
    """Start an emulator with *channels* and, if *demo_rate*, a demo publisher on them.

    :param host: where to listen; ``None`` is the emulator's default, this machine only
    :raises EmulatorAddressError: the address cannot be listened on
    """
    from aiosfstream.testing import SalesforceEmulator
    from aiosfstream.testing.demo import is_demo_channel, publish_demo

    emulator = (
        SalesforceEmulator(port=port) if host is None else SalesforceEmulator(host=host, port=port)
    )
    # A channel the emulator cannot have is left out: its subscription fails as it
    # would on Salesforce.
    names = [channel.split("?", 1)[0] for channel in channels]
    demo_channels = [name for name in dict.fromkeys(names) if is_demo_channel(name)]
    for name in demo_channels:
        emulator.create_channel(name)
    try:
        await emulator.start()
    except OSError as error:
        where = f"{host} port {port}" if host is not None else f"port {port}"
        raise EmulatorAddressError(
            f"cannot listen on {where}: {error.strerror or error}"
        ) from error
    demo = (
        publish_demo(emulator, demo_channels, demo_rate)
        if demo_rate > 0 and demo_channels
        else None
    )
    try:
        async with in_background(demo):
            yield emulator
    finally:
        await emulator.stop()


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, None] | None) -> AsyncIterator[None]:
    """Run *work* (if any) in a task for the time of the block; cancel it at the end."""
    if work is None:
        yield
        return
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def client_url(emulator: SalesforceEmulator, host: str | None) -> str:
    """The base URL clients should use to reach *emulator*, listening on *host*.

    On a wildcard address the emulator's own URL names that address, which no client
    can connect to; the machine's name works from this machine and from others.
    """
    if host in WILDCARD_HOSTS:
        return f"http://{socket.gethostname()}:{emulator.port}"
    return emulator.url


def _banner(emulator: SalesforceEmulator, settings: EmulatorSettings, url: str) -> str:
    credentials = emulator.credentials
    exports = {
        "SF_LOGIN_URL": url,
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
    # Plain http to this machine needs no opt-in; to a machine name it does.
    insecure = [] if is_loopback_host(urlsplit(url).hostname or "") else ["--allow-insecure-http"]
    where = []
    if settings.host in WILDCARD_HOSTS:
        where = [
            f"  Listening on all interfaces ({settings.host or 'any address'}): anyone who "
            "can reach this machine can use it"
        ]
    lines = [
        f"Salesforce emulator running at {url}",
        *where,
        f"  OAuth token endpoint: {url}{TOKEN_PATH}",
        f"  Streaming API:        {cometd_url(url, DEFAULT_API_VERSION)}",
        f"  Admin API:            {url}/__admin__",
        demo,
        "",
        "Its credentials are fake and the same for everyone. To try a client:",
        "",
        *(f"export {name}={shlex.quote(value)}" for name, value in exports.items()),
        " ".join([PROG, "listen", *insecure, shlex.quote(settings.demo_channels[0])]),
        "",
        "Stop with Ctrl+C.",
    ]
    return "\n".join(lines) + "\n"


async def _serve(settings: EmulatorSettings) -> ExitCode:
    if settings.host is not None and not is_loopback_host(settings.host):
        logger.warning(
            "listening on %s: the emulator's credentials are public, anyone who can reach "
            "it can use it",
            settings.host or "all interfaces",
        )
    async with running_emulator(
        settings.host, settings.port, settings.demo_channels, settings.demo_rate
    ) as emulator:
        url = client_url(emulator, settings.host)
        if url != emulator.url:
            # Token answers send clients to the instance URL: make it one they can reach.
            emulator.instance_url = url
        try:
            sys.stdout.write(_banner(emulator, settings, url))
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. "| head -n 1" to read the URL: keep serving
            silence_stdout()
        # Serve until the stopper cancels this task.
        await asyncio.Event().wait()
    return ExitCode.OK


def serve_emulator(settings: EmulatorSettings) -> ExitCode:
    """Run the ``emulator`` command until SIGINT or SIGTERM; return the exit status.

    :raises EmulatorAddressError: the address cannot be listened on
    """
    return asyncio.run(Stopper().run(lambda stopper: _serve(settings)))
