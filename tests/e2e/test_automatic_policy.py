"""When the AUTOMATIC policy stores markers, and what happens when storing fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiosfstream import Client, ReplayMarker
from aiosfstream.client import AUTOMATIC_STORE_INTERVAL
from aiosfstream.testing import SalesforceEmulator
from tests.e2e.conftest import CHANNEL, make_client, name_of, publish


async def wait_for_pending(client: Client, count: int) -> None:
    for _ in range(200):
        if client.pending_count >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} messages never arrived")


async def test_markers_are_stored_every_interval_while_behind(
    emulator: SalesforceEmulator,
) -> None:
    replay: dict[str, ReplayMarker] = {}
    total = 2 * AUTOMATIC_STORE_INTERVAL + 50
    async with make_client(emulator, replay=replay, max_pending_count=0) as client:
        await client.subscribe(CHANNEL)
        ids = publish(emulator, *(f"e{index}" for index in range(total)))
        await wait_for_pending(client, total)
        for _ in range(AUTOMATIC_STORE_INTERVAL):
            await client.receive()
        assert CHANNEL not in replay  # behind: not stored yet
        await client.receive()  # asking for one more: the first ones are done with
        assert replay[CHANNEL].replay_id == ids[AUTOMATIC_STORE_INTERVAL - 1]
        for _ in range(total - AUTOMATIC_STORE_INTERVAL - 1):
            await client.receive()
        assert replay[CHANNEL].replay_id == ids[2 * AUTOMATIC_STORE_INTERVAL - 1]
        # The queue ran dry: asking for more stores everything handed over first.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.receive(), 0.3)
        assert replay[CHANNEL].replay_id == ids[-1]


async def test_the_message_being_processed_is_not_stored_yet(
    emulator: SalesforceEmulator,
) -> None:
    # A crash while the message is processed delivers it again: at least once.
    replay: dict[str, ReplayMarker] = {}
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        (first,) = publish(emulator, "a")
        assert name_of(await asyncio.wait_for(client.receive(), 10)) == "a"
        assert CHANNEL not in replay
        publish(emulator, "b")
        assert name_of(await asyncio.wait_for(client.receive(), 10)) == "b"
        assert replay[CHANNEL].replay_id == first  # a is done with; b is not yet


async def test_close_stores_what_was_handed_over(emulator: SalesforceEmulator) -> None:
    replay: dict[str, ReplayMarker] = {}
    async with make_client(emulator, replay=replay, max_pending_count=0) as client:
        await client.subscribe(CHANNEL)
        ids = publish(emulator, *(f"e{index}" for index in range(20)))
        await wait_for_pending(client, 20)
        for _ in range(5):
            await client.receive()
        assert CHANNEL not in replay
    assert replay[CHANNEL].replay_id == ids[4]


class FlakyMapping(dict[str, Any]):
    """A mapping whose writes fail while ``broken`` is set."""

    broken = False

    def __setitem__(self, key: str, value: Any) -> None:
        if self.broken:
            raise OSError("disk full")
        super().__setitem__(key, value)


async def test_a_failed_store_is_raised_by_the_next_receive_and_retried(
    emulator: SalesforceEmulator,
) -> None:
    replay = FlakyMapping()
    async with make_client(emulator, replay=replay) as client:
        await client.subscribe(CHANNEL)
        (first,) = publish(emulator, "a")
        assert name_of(await asyncio.wait_for(client.receive(), 10)) == "a"
        replay.broken = True
        # Asking for more stores a's marker first, which fails: the error is raised and
        # the marker stays pending.
        with pytest.raises(OSError, match="disk full"):
            await asyncio.wait_for(client.receive(), 10)
        replay.broken = False
        publish(emulator, "b")
        assert name_of(await asyncio.wait_for(client.receive(), 10)) == "b"
        assert replay[CHANNEL].replay_id == first
