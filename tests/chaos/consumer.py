"""The consumer process of the chaos test.

Usage: python -m tests.chaos.consumer LOGIN_URL SHELF_PATH OUTPUT_PATH CHANNEL [STORAGE [QUIET...]]

Logs in as the emulator's default user, subscribes to CHANNEL with a shelf as replay
storage (``DefaultMappingStorage(shelf, ALL_EVENTS)``: everything retained on the very
first run, the stored marker afterwards) and to each QUIET channel (NEW_EVENTS until it
has a marker), and appends ``"<pid> <channel> <replayId>"`` to OUTPUT_PATH for every event,
until SIGTERM or SIGINT, after which it closes the client and exits 0.

STORAGE is ``shelf`` (the default: the shelf as the documentation shows it).

The at-least-once contract
--------------------------
The replay marker of an event must reach the shelf only *after* the event's line is
durable in OUTPUT_PATH. With the AUTOMATIC policy the marker is stored when ``receive()``
returns, before the line is written: a SIGKILL between the two leaves a marker for an event
that was never written, and the next process resumes *after* it, so the event is lost.
Hence the MANUAL policy: ``async with client.replay_storage(message)`` stores the marker
when the block exits, and the block writes, flushes and fsyncs the line. A SIGKILL before
the marker is stored replays the event in the next process (a cross-restart duplicate,
which at-least-once allows); a loss is impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shelve
import signal
import sys
from collections.abc import Collection, Coroutine
from typing import Any, TextIO

from aiosfstream import (
    DefaultMappingStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from tests.helpers import emulator_client

STORAGES = ("shelf",)


class QuietNewEvents(DefaultMappingStorage):
    """The shelf with ALL_EVENTS for channels without a marker, but NEW_EVENTS for *quiet*.

    A quiet channel has delivered nothing, so the client knows no replay id for it: the
    case where a lost poll must still not skip the events of the busy channel.
    """

    def __init__(self, mapping: shelve.Shelf[Any], quiet: Collection[str]) -> None:
        super().__init__(mapping, ReplayOption.ALL_EVENTS)
        self.quiet = frozenset(quiet)

    async def get_replay_id(self, subscription: str) -> int | bytes:
        if subscription in self.quiet and await self.get_replay_marker(subscription) is None:
            return int(ReplayOption.NEW_EVENTS)
        return await super().get_replay_id(subscription)


def replay_id_of(message: dict[str, Any]) -> int:
    """The replay id of an event."""
    replay_id = message["data"]["event"]["replayId"]
    assert isinstance(replay_id, int)
    return replay_id


def write_line(output: TextIO, line: str) -> None:
    """Append *line* to *output* durably: written, flushed and fsynced."""
    output.write(line)
    output.flush()
    os.fsync(output.fileno())


async def consume(
    login_url: str,
    shelf: shelve.Shelf[Any],
    output: TextIO,
    channel: str,
    storage: str,
    quiet: Collection[str] = (),
) -> None:
    pid = os.getpid()
    replay = QuietNewEvents(shelf, quiet)
    async with emulator_client(
        login_url,
        replay=replay,
        replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
        connection_timeout=None,
    ) as client:
        for name in (channel, *quiet):
            await client.subscribe(name)
        async for message in client:
            # The marker is stored when the block exits, after the line is durable.
            async with client.replay_storage(message):
                write_line(output, f"{pid} {message['channel']} {replay_id_of(message)}\n")


async def until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run *work* until SIGTERM or SIGINT cancels it."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    # Asked to stop: the client is closed by ``async with`` on the way out.
    with contextlib.suppress(asyncio.CancelledError):
        await work


def main(argv: list[str]) -> None:
    login_url, shelf_path, output_path, channel, *rest = argv
    storage = rest[0] if rest else "shelf"
    quiet = rest[1:]
    if storage not in STORAGES:
        raise SystemExit(f"unknown storage {storage!r}; expected one of {STORAGES}")
    with (
        shelve.open(shelf_path) as shelf,
        open(output_path, "a", encoding="utf-8") as output,
    ):
        asyncio.run(until_signalled(consume(login_url, shelf, output, channel, storage, quiet)))


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s",
    )
    main(sys.argv[1:])
