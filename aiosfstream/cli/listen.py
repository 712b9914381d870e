"""``aiosfstream listen``: log in, subscribe, and print each event as one line of JSON.

Each event's replay marker is stored only after its line was written and flushed, so a
run with ``--replay-store`` that stops, for any reason, resumes without losing an event
(at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiosfstream.cli.authenticator import build_authenticator
from aiosfstream.cli.emulator import running_emulator
from aiosfstream.cli.errors import ExitCode, IncompleteError
from aiosfstream.cli.progress import Progress, Start
from aiosfstream.cli.replay_store import open_replay_store, url_password
from aiosfstream.cli.settings import LISTEN_DEMO_RATE, ListenSettings, LoginSettings
from aiosfstream.cli.signals import Stopper
from aiosfstream.cli.writer import JsonLinesWriter
from aiosfstream.client import Client
from aiosfstream.cometd.constants import DEFAULT_CONNECTION_TIMEOUT
from aiosfstream.replay import ConstantReplayId, ReplayMarkerStorage, ReplayMarkerStoragePolicy

__all__ = ["listen"]


def listen(settings: ListenSettings, secrets: list[str]) -> ExitCode:
    """Run the ``listen`` command; return its exit status.

    :param secrets: the list the stderr log formatter hides; the login's secrets are
        added to it before anything can log them
    :raises IncompleteError: ``--timeout`` came before ``--count`` events
    :raises OutputClosed: the reader of stdout went away
    """
    progress = Progress(settings.channels, settings.replay_fallback)
    writer = JsonLinesWriter(sys.stdout)
    with progress.watching():
        code = asyncio.run(
            Stopper().run(lambda stopper: _listen(settings, stopper, writer, secrets, progress))
        )
    if code is ExitCode.INCOMPLETE:
        assert settings.count is not None and settings.timeout is not None
        raise IncompleteError(progress.events, settings.count, settings.timeout)
    return code


async def _listen(
    settings: ListenSettings,
    stopper: Stopper,
    writer: JsonLinesWriter,
    secrets: list[str],
    progress: Progress,
) -> ExitCode:
    async with contextlib.AsyncExitStack() as stack:
        login = settings.login
        if login is None:
            emulator = await stack.enter_async_context(
                running_emulator(None, 0, settings.channels, LISTEN_DEMO_RATE)
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
            progress.emulator_started(emulator.url)
        secrets.extend(login.secrets())
        authenticator = build_authenticator(login, timeout=settings.connection_timeout)

        storage: ReplayMarkerStorage
        if settings.replay_store is not None:
            password = url_password(settings.replay_store)
            if password:
                secrets.append(password)
            storage = await stack.enter_async_context(
                open_replay_store(
                    settings.replay_store,
                    settings.replay,
                    timeout=settings.connection_timeout or DEFAULT_CONNECTION_TIMEOUT,
                )
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
        # Unwound in reverse: the summary comes once the client said goodbye.
        stack.callback(progress.summary)
        stack.push_async_callback(client.close)
        progress.logging_in(login.flow, authenticator.token_url)
        await client.open()
        assert client.url is not None
        progress.connected(client.url)
        for channel in settings.channels:
            start = await _start_of(storage, channel, stored=settings.replay_store is not None)
            await client.subscribe(channel)
            progress.subscribed(channel, start)
        code = await _print_events(client, settings, stopper, writer, progress)
        stopper.shield_rest()
    return code


async def _start_of(storage: ReplayMarkerStorage, subscription: str, *, stored: bool) -> Start:
    """Where the subscription to *subscription* is about to start."""
    replay_id = await storage.get_replay_id(subscription)
    return Start(replay_id, stored=stored and replay_id != storage.default_id)


async def _print_events(
    client: Client,
    settings: ListenSettings,
    stopper: Stopper,
    writer: JsonLinesWriter,
    progress: Progress,
) -> ExitCode:
    if settings.timeout is not None:
        on_timeout = ExitCode.OK if settings.count is None else ExitCode.INCOMPLETE
        stopper.stop_after(settings.timeout, on_timeout)
    while settings.count is None or progress.events < settings.count:
        message = await client.receive()
        # The marker is stored after the line is out: a stop in between replays the
        # event next time rather than losing it.
        with stopper.critical():
            async with client.replay_storage(message):
                writer.write(message)
            progress.printed(message)
        if stopper.code is not None and (
            settings.count is None or progress.events < settings.count
        ):
            return stopper.code
    return ExitCode.OK
