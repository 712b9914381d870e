"""A consumer process for the restart tests: reads N events into a shelf-backed client.

Usage: python -m tests.e2e.consumer LOGIN_URL SHELF_PATH COUNT [default]

Credentials are those of the emulator's default user. Prints one record name per line.
With ``default``, the shelf is wrapped in ``DefaultMappingStorage(shelf, ALL_EVENTS)``.
"""

from __future__ import annotations

import asyncio
import shelve
import sys

from aiosfstream import DefaultMappingStorage, ReplayOption
from aiosfstream.replay import ReplayMarkerStorage
from tests.helpers import emulator_client


async def consume(login_url: str, shelf_path: str, count: int, default: bool) -> None:
    with shelve.open(shelf_path) as shelf:
        replay: shelve.Shelf[object] | ReplayMarkerStorage = shelf
        if default:
            replay = DefaultMappingStorage(shelf, ReplayOption.ALL_EVENTS)
        async with emulator_client(
            login_url,
            replay=replay,
        ) as client:
            await client.subscribe("/topic/foo")
            for _ in range(count):
                message = await asyncio.wait_for(client.receive(), 10)
                print(message["data"]["sobject"]["Name"], flush=True)


if __name__ == "__main__":
    asyncio.run(consume(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:] == ["default"]))
