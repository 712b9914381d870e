"""A third-party Bayeux client, CometD for JavaScript under Node, against our emulator.

The client (``clients/cometd_client.mjs``) logs in with a plain HTTP POST to the token
endpoint, handshakes with Salesforce's replay extension and subscribes from its handshake
listener, as Salesforce's samples do. It prints each step as a JSON line, which these
tests read while they drive the emulator (in this process, on ``localhost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import pytest

from aiosfstream.testing import SalesforceEmulator
from tests.helpers import require_tool
from tests.interop.conftest import INTEROP_DIR, NODE_MODULES, SHUTDOWN_TIMEOUT

pytestmark = pytest.mark.timeout(60)

SCRIPT = INTEROP_DIR / "clients" / "cometd_client.mjs"
CHANNEL = "/topic/InteropAccounts"
#: Seconds to wait for the client's next step.
STEP_TIMEOUT = 15.0

Step = dict[str, Any]


class NodeClient:
    """The node client process: started with its settings, read step by step, stopped."""

    def __init__(self, node: str, env: dict[str, str], log_path: Path) -> None:
        self.node = node
        self.env = env
        self.log_path = log_path
        #: Every step printed so far, in order.
        self.steps: list[Step] = []
        # Events read while looking for another step, not returned by next() yet: a
        # connect may be answered before the subscribe reply that asked for its events.
        self._unread_events: list[Step] = []
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        self._log = self.log_path.open("wb")
        self._process = await asyncio.create_subprocess_exec(
            self.node,
            str(SCRIPT),
            cwd=INTEROP_DIR,
            env=self.env,
            # Closing stdin tells the client to disconnect and exit.
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
        )

    async def next(self, step: str) -> Step:
        """Return the next step called *step*; events passed over on the way are kept
        for the next ``next("event")``, other steps only in :attr:`steps`."""
        assert self._process is not None and self._process.stdout is not None
        if step == "event" and self._unread_events:
            return self._unread_events.pop(0)
        while True:
            try:
                line = await asyncio.wait_for(self._process.stdout.readline(), STEP_TIMEOUT)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {step!r} within {STEP_TIMEOUT} s\n{self}") from None
            if not line:
                raise AssertionError(f"the client exited before {step!r}\n{self}")
            found: Step = json.loads(line)
            self.steps.append(found)
            if found["step"] == "failed":
                raise AssertionError(f"the client failed: {found['error']}\n{self}")
            if found["step"] == step:
                return found
            if found["step"] == "event":
                self._unread_events.append(found)

    async def events(self, count: int) -> list[int]:
        """Wait for *count* more events; return their replay ids."""
        return [(await self.next("event"))["data"]["event"]["replayId"] for _ in range(count)]

    async def stop(self) -> None:
        """Close stdin, then check that the client disconnected and exited cleanly."""
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            assert process.stdout is not None
            rest = await asyncio.wait_for(process.stdout.read(), SHUTDOWN_TIMEOUT)
            await asyncio.wait_for(process.wait(), SHUTDOWN_TIMEOUT)
        finally:
            self.kill()
        self.steps.extend(json.loads(line) for line in rest.splitlines())
        assert process.returncode == 0, str(self)
        assert self.steps[-1]["step"] == "disconnected", str(self)

    def kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def reap(self) -> None:
        """Kill the process if it runs, and wait for it: its pipes are closed after."""
        self.kill()
        if self._process is not None:
            with contextlib.suppress(asyncio.TimeoutError, OSError, ValueError):
                await asyncio.wait_for(self._process.communicate(), SHUTDOWN_TIMEOUT)

    def __str__(self) -> str:
        with contextlib.suppress(OSError):
            stderr = self.log_path.read_text(errors="replace")[-4000:]
            return f"steps: {self.steps}\nstderr: {stderr}"
        return f"steps: {self.steps}"


StartClient = Callable[[SalesforceEmulator, int], Awaitable[NodeClient]]


@pytest.fixture
async def emulator() -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(connect_timeout=2.0) as server:
        server.create_channel(CHANNEL)
        yield server


@pytest.fixture
async def start_client(tmp_path: Path) -> AsyncIterator[StartClient]:
    """Start the node client against an emulator, subscribing with replay option *replay*."""
    node = require_tool("node")
    for package in ("cometd", "cometd-nodejs-client"):
        if not (NODE_MODULES / package).is_dir():
            pytest.skip(f"npm package {package!r} is missing: run `npm ci --prefix tests/interop`")
    clients: list[NodeClient] = []

    async def start(emulator: SalesforceEmulator, replay: int) -> NodeClient:
        credentials = emulator.credentials
        env = {
            **os.environ,
            "SF_LOGIN_URL": emulator.url,
            "SF_CONSUMER_KEY": credentials.consumer_key,
            "SF_CONSUMER_SECRET": credentials.consumer_secret,
            "SF_USERNAME": credentials.username,
            "SF_PASSWORD": credentials.password,
            "SF_CHANNEL": CHANNEL,
            "SF_REPLAY": str(replay),
            "SF_API_VERSION": "66.0",
        }
        client = NodeClient(node, env, tmp_path / f"cometd-client-{len(clients)}.log")
        clients.append(client)
        await client.start()
        return client

    yield start
    for client in clients:
        await client.reap()


def subscribe_replays(emulator: SalesforceEmulator) -> list[Any]:
    """The replay extension's map of each ``/meta/subscribe`` the emulator received."""
    return [
        message.get("ext", {}).get("replay") for message in emulator.log.messages("/meta/subscribe")
    ]


def publish(emulator: SalesforceEmulator, count: int) -> None:
    for _ in range(count):
        emulator.publish(CHANNEL, {"Name": "Acme"})


async def test_login_handshake_and_a_live_event(
    emulator: SalesforceEmulator, start_client: StartClient
) -> None:
    client = await start_client(emulator, -1)
    login = await client.next("login")
    assert login == {"step": "login", "status": 200, "instance_url": emulator.url}
    handshake = await client.next("handshake")
    assert handshake["successful"] is True
    assert handshake["replay_enabled"] is True
    assert (await client.next("subscribe"))["successful"] is True
    publish(emulator, 1)
    event = await client.next("event")
    assert event["channel"] == CHANNEL
    assert event["data"]["event"]["replayId"] == 1
    assert event["data"]["sobject"]["Name"] == "Acme"
    await client.stop()
    assert emulator.stats.grants == {"password": 1}
    [sent] = emulator.log.messages("/meta/handshake")
    assert sent["ext"] == {"replay": True}
    assert subscribe_replays(emulator) == [{CHANNEL: -1}]
    assert emulator.stats.disconnects == 1


async def test_replay_all_retained_events(
    emulator: SalesforceEmulator, start_client: StartClient
) -> None:
    publish(emulator, 3)
    client = await start_client(emulator, -2)
    assert (await client.next("subscribe"))["successful"] is True
    assert await client.events(3) == [1, 2, 3]
    await client.stop()
    assert subscribe_replays(emulator) == [{CHANNEL: -2}]


async def test_resume_after_a_replay_id(
    emulator: SalesforceEmulator, start_client: StartClient
) -> None:
    publish(emulator, 3)
    client = await start_client(emulator, 2)
    assert (await client.next("subscribe"))["successful"] is True
    assert await client.events(1) == [3]
    publish(emulator, 1)
    assert await client.events(1) == [4]
    await client.stop()
    assert subscribe_replays(emulator) == [{CHANNEL: 2}]


async def test_expired_session_is_handshaken_again_and_resumed(
    emulator: SalesforceEmulator, start_client: StartClient
) -> None:
    publish(emulator, 2)
    client = await start_client(emulator, -2)
    first = await client.next("handshake")
    assert await client.events(2) == [1, 2]
    # The session dies, and an event comes while the client has none.
    assert emulator.expire_client() == [first["client_id"]]
    publish(emulator, 1)
    failed = await client.next("connect_failed")
    assert failed["error"] == "403::Unknown client"
    assert failed["advice"]["reconnect"] == "handshake"
    second = await client.next("handshake")
    assert second["successful"] is True
    assert second["client_id"] != first["client_id"]
    resubscribed = await client.next("subscribe")
    assert (resubscribed["successful"], resubscribed["replay"]) == (True, 2)
    # The event of the gap comes by replay, the next one live; none comes twice.
    assert await client.events(1) == [3]
    publish(emulator, 1)
    assert await client.events(1) == [4]
    await client.stop()
    assert subscribe_replays(emulator) == [{CHANNEL: -2}, {CHANNEL: 2}]
    replay_ids = [s["data"]["event"]["replayId"] for s in client.steps if s["step"] == "event"]
    assert replay_ids == [1, 2, 3, 4]
    assert emulator.stats.grants == {"password": 1}
