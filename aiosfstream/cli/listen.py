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
from aiosfstream.cli.clients import EventSource, PubSubAddress, cometd_source, pubsub_source
from aiosfstream.cli.emulator import running_emulator
from aiosfstream.cli.errors import ExitCode, IncompleteError
from aiosfstream.cli.progress import Progress, Start
from aiosfstream.cli.pubsub_emulator import running_pubsub_emulator
from aiosfstream.cli.replay_store import open_replay_store, url_password
from aiosfstream.cli.replica import open_lease, run_as_replica
from aiosfstream.cli.settings import LISTEN_DEMO_RATE, ListenSettings, LoginSettings
from aiosfstream.cli.signals import Stopper
from aiosfstream.cli.writer import JsonLinesWriter
from aiosfstream.cometd.constants import DEFAULT_CONNECTION_TIMEOUT
from aiosfstream.exceptions import LeaseLost
from aiosfstream.replay import ConstantReplayId, ReplayMarkerStorage

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
        login, address = (
            settings.login,
            PubSubAddress(settings.pubsub_endpoint, settings.pubsub_plaintext),
        )
        if login is None:
            login, address = await _start_emulators(settings, stack, progress)
        secrets.extend(login.secrets())
        authenticator = build_authenticator(login, timeout=settings.connection_timeout)
        for url in (settings.replay_store, settings.lease and settings.lease.url):
            password = url_password(url) if url else None
            if password:
                secrets.append(password)

        lease = None
        if settings.lease is not None:
            lease = await stack.enter_async_context(open_lease(settings.lease))
        storage: ReplayMarkerStorage
        if settings.replay_store is not None:
            storage = await stack.enter_async_context(
                open_replay_store(
                    settings.replay_store,
                    settings.replay,
                    timeout=settings.connection_timeout or DEFAULT_CONNECTION_TIMEOUT,
                    lease=lease,
                )
            )
        else:
            storage = ConstantReplayId(settings.replay)
        # Unwound in reverse: the summary comes once the client said goodbye.
        stack.callback(progress.summary)
        deadline_set = False

        async def session() -> ExitCode:
            nonlocal deadline_set
            if settings.pubsub:
                source = pubsub_source(settings, authenticator, storage, address, lease)
            else:
                source = cometd_source(settings, authenticator, storage, lease)
            try:
                progress.logging_in(login.flow, authenticator.token_url)
                await source.client.open()
                progress.connected(source.connected_to())
                for channel in settings.channels:
                    stored = settings.replay_store is not None
                    start = await _start_of(storage, channel, stored=stored)
                    await source.client.subscribe(channel)
                    progress.subscribed(channel, start)
                if settings.timeout is not None and not deadline_set:
                    # From the first subscriptions on, not from each replica's session.
                    stopper.stop_after(settings.timeout, _on_timeout(settings))
                    deadline_set = True
                return await _print_events(source, storage, settings, stopper, writer, progress)
            finally:
                await source.client.close()

        code = await (session() if lease is None else run_as_replica(lease, session))
        stopper.shield_rest()
    return code


def _on_timeout(settings: ListenSettings) -> ExitCode:
    """The status of a run that reached ``--timeout``: 0, or 7 if ``--count`` was not met."""
    return ExitCode.OK if settings.count is None else ExitCode.INCOMPLETE


async def _start_emulators(
    settings: ListenSettings, stack: contextlib.AsyncExitStack, progress: Progress
) -> tuple[LoginSettings, PubSubAddress]:
    """Start the emulator of ``--emulator`` (and its Pub/Sub API with ``--pubsub``), to be
    stopped by *stack*; return how to log in to it and where its Pub/Sub API is."""
    # With --pubsub the demo events go through the Pub/Sub emulator only.
    cometd_channels, rate = ((), 0.0) if settings.pubsub else (settings.channels, LISTEN_DEMO_RATE)
    emulator = await stack.enter_async_context(running_emulator(None, 0, cometd_channels, rate))
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
    address = PubSubAddress()
    if settings.pubsub:
        pubsub = await stack.enter_async_context(
            running_pubsub_emulator(emulator, settings.channels, LISTEN_DEMO_RATE)
        )
        progress.emulator_started(f"{pubsub.endpoint} (Pub/Sub API)")
        address = PubSubAddress(pubsub.endpoint, plaintext=True)
    return login, address


async def _start_of(storage: ReplayMarkerStorage, subscription: str, *, stored: bool) -> Start:
    """Where the subscription to *subscription* is about to start."""
    replay_id = await storage.get_replay_id(subscription)
    return Start(replay_id, stored=stored and replay_id != storage.default_id)


async def _print_events(
    source: EventSource,
    storage: ReplayMarkerStorage,
    settings: ListenSettings,
    stopper: Stopper,
    writer: JsonLinesWriter,
    progress: Progress,
) -> ExitCode:
    lease = source.client.lease

    def still_held() -> None:
        # A pause of the process (SIGSTOP) between receiving the event and writing it
        # can outlast the lease: the line must not go out then.
        if lease is not None and not lease.held:
            raise LeaseLost("the lease is not held any more")

    while settings.count is None or progress.events < settings.count:
        message = await source.client.receive()
        channel, marker = source.marker_of(message)
        # The marker is stored after the line is out: a stop in between replays the
        # event next time rather than losing it.
        with stopper.critical():
            writer.write(message, just_before=still_held)
            if marker is not None:
                await storage.store_marker(channel, marker)
            progress.printed(channel, marker)
        if stopper.code is not None and (
            settings.count is None or progress.events < settings.count
        ):
            return stopper.code
    return ExitCode.OK
