"""0.5.0's MANUAL policy, end to end against the emulator: store what was processed, resume.

0.5.0's guide stores a processed message's marker either with ``async with
client.replay_storage(message):`` or with ``await
client.replay_storage.extract_replay_id(message)``; a restarted client then starts after
the last marker stored, so a message whose processing failed comes again.
"""

from __future__ import annotations

import asyncio
import shelve
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import ReplayMarker, ReplayMarkerStoragePolicy, SalesforceStreamingClient
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import emulator_client

CHANNEL = "/topic/foo"


class ProcessingFailed(Exception):
    pass


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=2.0) as server:
        server.create_channel(CHANNEL)
        yield server


def manual_client(emulator: SalesforceEmulator, replay: Any) -> SalesforceStreamingClient:
    return emulator_client(
        emulator.url, replay=replay, replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL
    )


def publish(emulator: SalesforceEmulator, name: str) -> dict[str, Any]:
    return emulator.publish(CHANNEL, {"Name": name})


async def receive(client: SalesforceStreamingClient) -> dict[str, Any]:
    return await asyncio.wait_for(client.receive(), 10)


async def test_a_restarted_client_resumes_after_the_last_stored_marker(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    path = str(tmp_path / "replay.db")
    with shelve.open(path) as replay:
        async with manual_client(emulator, replay) as client:
            await client.subscribe(CHANNEL)
            a, b, c = (publish(emulator, name) for name in "abc")

            message = await receive(client)
            async with client.replay_storage(message):
                assert CHANNEL not in replay  # receive() stored nothing
            assert replay[CHANNEL] == ReplayMarker(
                a["data"]["event"]["createdDate"], a["data"]["event"]["replayId"]
            )

            message = await receive(client)
            await client.replay_storage.extract_replay_id(message)
            stored = ReplayMarker(b["data"]["event"]["createdDate"], b["data"]["event"]["replayId"])
            assert replay[CHANNEL] == stored

            message = await receive(client)
            assert message["data"]["sobject"]["Name"] == "c"
            with pytest.raises(ProcessingFailed):
                async with client.replay_storage(message):
                    raise ProcessingFailed
        assert replay[CHANNEL] == stored  # neither the failure nor close() stored c

    d = publish(emulator, "d")  # while no client runs
    with shelve.open(path) as replay:
        async with manual_client(emulator, replay) as client:
            await client.subscribe(CHANNEL)
            again = [await receive(client) for _ in range(2)]
            for message in again:
                await client.replay_storage.extract_replay_id(message)
        assert [m["data"]["event"]["replayId"] for m in again] == [
            c["data"]["event"]["replayId"],
            d["data"]["event"]["replayId"],
        ]
        assert replay[CHANNEL].replay_id == d["data"]["event"]["replayId"]
