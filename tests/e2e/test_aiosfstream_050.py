"""aiosfstream 0.5.0 itself, unmodified, streams from our standalone emulator.

0.5.0 does not run on the Pythons we support, so these tests run it on Python 3.9 from a
virtual environment named by ``AIOSFSTREAM_050_PYTHON`` (``.ci/run`` creates it with
``pip install aiosfstream==0.5.0``). Without it the tests skip, which CI counts as a failure.
The emulator is our command, ``python -m aiosfstream emulator``, in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shelve
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiosfstream import DefaultMappingStorage, ReplayOption
from tests.helpers import emulator_client, free_port

CONSUMER = Path(__file__).with_name("legacy_consumer.py")
CHANNEL = "/topic/LegacyAccounts"
STARTUP_SECONDS = 20.0
RUN_SECONDS = 60.0


def legacy_python() -> str:
    path = os.environ.get("AIOSFSTREAM_050_PYTHON")
    if not path or not Path(path).exists():
        pytest.skip("AIOSFSTREAM_050_PYTHON does not name a Python with aiosfstream 0.5.0")
    return path


class StandaloneEmulator:
    """``python -m aiosfstream emulator`` on a free port, driven through its admin API."""

    def __init__(self, port: int, session: aiohttp.ClientSession) -> None:
        self.url = f"http://localhost:{port}"
        self.token_url = f"{self.url}/services/oauth2/token"
        self._session = session

    async def admin(self, path: str, body: dict[str, Any]) -> Any:
        async with self._session.post(f"{self.url}/__admin__{path}", json=body) as response:
            assert response.status < 300, await response.text()
            return await response.json()

    async def publish(self, number: int) -> int:
        message = await self.admin(
            "/publish", {"channel": CHANNEL, "payload": {"Name": f"Account {number}"}}
        )
        replay_id: int = message["data"]["event"]["replayId"]
        return replay_id


@pytest.fixture
async def emulator() -> AsyncIterator[StandaloneEmulator]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiosfstream", "emulator", "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            server = StandaloneEmulator(port, session)
            await _wait_until_up(server, session)
            await server.admin("/channels", {"name": CHANNEL})
            yield server
    finally:
        process.terminate()
        await process.wait()


async def _wait_until_up(server: StandaloneEmulator, session: aiohttp.ClientSession) -> None:
    async def poll() -> None:
        while True:
            try:
                async with session.get(f"{server.url}/__admin__"):
                    return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), STARTUP_SECONDS)


async def run_legacy_consumer(
    python: str, emulator: StandaloneEmulator, shelf: Path, publish: list[int], count: int = 0
) -> list[dict[str, Any]]:
    """Run the 0.5.0 consumer until it printed *count* events (default: one per *publish*).

    The numbered events in *publish* are published once it has subscribed.
    """
    process = await asyncio.create_subprocess_exec(
        python, str(CONSUMER), emulator.token_url, CHANNEL, str(count or len(publish)), str(shelf),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), RUN_SECONDS)
        if first != b"subscribed\n":
            errors = await process.stderr.read()
            pytest.fail(f"0.5.0 did not subscribe: {first!r}\n{errors.decode()}")
        for number in publish:
            await emulator.publish(number)
        output, errors = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, errors.decode()
    return [json.loads(line) for line in output.decode().splitlines()]


async def test_050_streams_from_the_standalone_emulator(
    emulator: StandaloneEmulator, tmp_path: Path
) -> None:
    python = legacy_python()
    events = await run_legacy_consumer(python, emulator, tmp_path / "replay", [1, 2, 3])
    assert [event["channel"] for event in events] == [CHANNEL] * 3
    assert [event["data"]["Name"] for event in events] == ["Account 1", "Account 2", "Account 3"]


async def test_050_resumes_from_its_shelve_after_a_restart(
    emulator: StandaloneEmulator, tmp_path: Path
) -> None:
    python = legacy_python()
    shelf = tmp_path / "replay"
    first = await run_legacy_consumer(python, emulator, shelf, [1, 2])
    # Published while no consumer runs: the restarted one replays them from its shelve.
    missed = [await emulator.publish(number) for number in (3, 4)]
    second = await run_legacy_consumer(python, emulator, shelf, [5], count=3)
    names = [event["data"]["Name"] for event in first + second]
    assert names == [f"Account {number}" for number in range(1, 6)]
    assert [event["replayId"] for event in second][:2] == missed


async def test_our_client_resumes_from_a_shelve_written_by_050(
    emulator: StandaloneEmulator, tmp_path: Path
) -> None:
    python = legacy_python()
    shelf_path = tmp_path / "replay"
    first = await run_legacy_consumer(python, emulator, shelf_path, [1, 2])
    missed = await emulator.publish(3)
    with shelve.open(str(shelf_path)) as shelf:
        async with emulator_client(
            emulator.url, replay=DefaultMappingStorage(shelf, ReplayOption.NEW_EVENTS)
        ) as client:
            await client.subscribe(CHANNEL)
            message = await asyncio.wait_for(client.receive(), RUN_SECONDS)
    assert first[-1]["data"]["Name"] == "Account 2"
    assert message["data"]["event"]["replayId"] == missed
