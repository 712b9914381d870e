"""``listen --lease``: replicas of the command, of which one prints events at a time.

Real processes, a real redis-server for the lease and the shared replay store, and the
emulator of the test process, which every replica logs in to.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.stores import RedisReplayStorage
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import require_tool
from tests.stores.conftest import RedisServer

from .support import (
    CHANNEL,
    STEP,
    Command,
    base_env,
    command,
    emulator_env,
    free_port,
    pubsub_args,
    run,
    wait_streaming,
    wait_subscribed,
    wait_until,
)

if TYPE_CHECKING:
    from aiosfstream.testing.pubsub import PubSubEmulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

NAME = "orders"
#: Short, so that a standby takes over quickly.
TTL = "1"


def replica_args(redis: RedisServer, *args: str) -> tuple[str, ...]:
    return (
        "listen", "--allow-insecure-http", "-v", "--replay-store", redis.url,
        "--lease", redis.url, "--lease-name", NAME, "--lease-ttl", TTL, *args, CHANNEL,
    )  # fmt: skip


async def wait_stored(redis: RedisServer, event: dict[str, Any]) -> None:
    """Wait until the shared store holds *event*'s replay id."""
    await wait_stored_at(redis.url, event)


async def wait_stored_at(url: str, event: dict[str, Any]) -> None:
    """Wait until the store at *url* holds *event*'s replay id."""
    replay_id = event["data"]["event"]["replayId"]

    async def stored() -> bool:
        async with RedisReplayStorage(url) as storage:
            marker = await storage.get_replay_marker(CHANNEL)
        return marker is not None and marker.replay_id == replay_id

    await wait_until(stored, f"replay id {replay_id} not stored")


async def no_line_within(running: Command, seconds: float) -> None:
    """Fail if *running* prints a line within *seconds*."""
    assert running.process.stdout is not None
    try:
        line = await asyncio.wait_for(running.process.stdout.readline(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"a standby printed {line!r}")


async def test_the_standby_takes_over_when_the_active_replica_is_killed(
    emulator: SalesforceEmulator, redis_server: RedisServer
) -> None:
    env = emulator_env(emulator)
    async with command(*replica_args(redis_server), env=env) as first:
        await wait_subscribed(emulator, CHANNEL)
        async with command(*replica_args(redis_server), env=env) as second:
            published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(3)]
            assert await first.events(3) == published
            await no_line_within(second, 0.5)
            # Only the active replica logged in.
            assert len(emulator.client_ids) == 1
            await wait_stored(redis_server, published[-1])

            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
            following = [emulator.publish(CHANNEL, {"Name": f"after{i}"}) for i in range(3)]
            # From the shared store: the events published since, none lost, none again.
            assert await second.events(3) == following
            second.process.send_signal(signal.SIGTERM)
            finished = await second.finish()
    assert finished.code == ExitCode.SIGTERM
    log = finished.cli_log()
    standing_by = f"standing by: waiting for lease 'aiosfstream:lease:{NAME}'"
    assert log[0] == standing_by
    assert log[1].startswith(f"active: holding lease 'aiosfstream:lease:{NAME}' (fencing token ")
    assert f"subscribed to {CHANNEL}, replay after the stored id " in log[4]
    finished.assert_clean()


async def test_a_replica_paused_past_the_ttl_stands_by_again(
    emulator: SalesforceEmulator, redis_server: RedisServer
) -> None:
    env = emulator_env(emulator)
    async with command(*replica_args(redis_server), env=env) as first:
        await wait_subscribed(emulator, CHANNEL)
        async with command(*replica_args(redis_server), env=env) as second:
            published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(2)]
            assert await first.events(2) == published
            await wait_stored(redis_server, published[-1])

            first.process.send_signal(signal.SIGSTOP)
            try:
                # The lease runs out; the standby takes it and prints what follows.
                await asyncio.sleep(float(TTL) + 0.5)
                during = emulator.publish(CHANNEL, {"Name": "during"})
                assert await second.events(1) == [during]
            finally:
                first.process.send_signal(signal.SIGCONT)
            after = emulator.publish(CHANNEL, {"Name": "after"})
            assert await second.events(1) == [after]
            # The former holder prints nothing after it lost the lease.
            await no_line_within(first, float(TTL) + 0.5)
            await wait_stored(redis_server, after)
            for replica in (first, second):
                replica.process.send_signal(signal.SIGTERM)
            stopped, active = await first.finish(), await second.finish()
    assert stopped.code == active.code == ExitCode.SIGTERM
    assert stopped.stdout == ""
    log = stopped.cli_log()
    lost = [line for line in log if line.startswith("lost lease ")]
    assert len(lost) == 1, log
    # After the loss it went back to standing by.
    assert log[log.index(lost[0]) + 1] == (
        f"standing by: waiting for lease 'aiosfstream:lease:{NAME}'"
    )
    stopped.assert_clean()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--lease", "redis://127.0.0.1/0", "--replay-store", "redis://127.0.0.1/0"),
            "--lease needs --lease-name: the replicas that share it use one name",
        ),
        (("--lease-name", NAME), "--lease-name and --lease-ttl need --lease"),
        (
            ("--lease", "redis://127.0.0.1/0", "--lease-name", NAME, "--replay-store", "r.db"),
            "--lease needs --replay-store with a Redis URL: the replica that takes over must "
            "start where the previous one stopped, so they all keep their position in one "
            "shared store (an SQLite file, or none, is this replica's own)",
        ),
        (
            ("--lease", "redis://127.0.0.1/0", "--lease-name", NAME),
            "--lease needs --replay-store with a Redis URL",
        ),
        (
            ("--lease", "redis://127.0.0.1/1", "--lease-name", NAME,
             "--replay-store", "redis://127.0.0.1/0"),
            "--lease and --replay-store must name the same Redis server and database",
        ),
        (
            ("--lease", "lease.db", "--lease-name", NAME, "--replay-store", "redis://x/0"),
            "--lease takes a redis://, rediss:// or unix:// URL, got 'lease.db'",
        ),
    ],
)  # fmt: skip
async def test_lease_usage_errors(
    emulator: SalesforceEmulator, args: tuple[str, ...], message: str
) -> None:
    finished = await run("listen", *args, CHANNEL, env=emulator_env(emulator))
    assert finished.code == ExitCode.USAGE
    assert finished.stderr.startswith(f"aiosfstream listen: error: {message}")
    assert finished.stderr.count("\n") == 1


async def test_the_same_database_written_differently_is_accepted(
    emulator: SalesforceEmulator, redis_server: RedisServer
) -> None:
    lease = f"redis://127.0.0.1:{redis_server.port}?db=0"
    args = ("listen", "--allow-insecure-http", "--replay-store", redis_server.url)
    finished = await run(
        *args, "--lease", lease, "--lease-name", NAME, "--timeout", "0.3", CHANNEL,
        env=emulator_env(emulator),
    )  # fmt: skip
    assert finished.code == ExitCode.OK, finished.stderr


@pytest.mark.parametrize("ttl", ["0", "-1", "soon"])
async def test_the_ttl_is_a_positive_number_of_seconds(ttl: str) -> None:
    finished = await run("listen", "--lease-ttl", ttl, CHANNEL, env=base_env())
    assert finished.code == ExitCode.USAGE
    assert "argument --lease-ttl: " in finished.stderr


async def test_a_stopped_replica_hands_over_at_once(
    emulator: SalesforceEmulator, redis_server: RedisServer
) -> None:
    env = emulator_env(emulator)
    # A ttl far longer than the handover may take: the lease must be released, not expire.
    slow = ("--lease-ttl", "30")
    async with command(*replica_args(redis_server), *slow, env=env) as first:
        await wait_subscribed(emulator, CHANNEL)
        async with command(*replica_args(redis_server), *slow, env=env) as second:
            published = emulator.publish(CHANNEL, {"Name": "before"})
            assert await first.events(1) == [published]
            await wait_stored(redis_server, published)
            first.process.send_signal(signal.SIGTERM)
            stopped = await first.finish()
            following = emulator.publish(CHANNEL, {"Name": "after"})
            # Read within STEP (8 s), far less than the ttl.
            assert await second.events(1) == [following]
    assert stopped.code == ExitCode.SIGTERM
    assert stopped.stdout == ""


class RestartableRedis:
    """A redis-server on a fixed port of 127.0.0.1 that keeps its data across restarts."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [require_tool("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + STEP
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=STEP)
            self.process = None


async def read_events(replicas: list[Command], count: int) -> list[list[dict[str, Any]]]:
    """Read lines from every replica until *count* were printed in all; what each printed."""
    printed: list[list[dict[str, Any]]] = [[] for _ in replicas]
    readers = {}
    for index, replica in enumerate(replicas):
        assert replica.process.stdout is not None
        readers[asyncio.ensure_future(replica.process.stdout.readline())] = index
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    try:
        while sum(map(len, printed)) < count:
            done, _ = await asyncio.wait(
                readers, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            assert done, f"{sum(map(len, printed))} of {count} events within {STEP} s"
            for reader in done:
                index = readers.pop(reader)
                line = reader.result()
                if not line:
                    ended = await replicas[index].finish()
                    raise AssertionError(f"replica {index} exited {ended.code}: {ended.stderr}")
                printed[index].append(json.loads(line))
                stdout = replicas[index].process.stdout
                assert stdout is not None
                readers[asyncio.ensure_future(stdout.readline())] = index
    finally:
        for reader in readers:
            reader.cancel()
        # Until a cancelled readline has run, its stream counts as being read: a read()
        # right after would fail with "another coroutine is already waiting".
        await asyncio.gather(*readers, return_exceptions=True)
    return printed


async def test_replicas_go_on_after_redis_restarts(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    redis = RestartableRedis(tmp_path)
    redis.start()
    try:
        env = emulator_env(emulator)
        args = (
            "listen", "--allow-insecure-http", "-v", "--replay-store", redis.url,
            "--lease", redis.url, "--lease-name", NAME, "--lease-ttl", TTL, CHANNEL,
        )  # fmt: skip
        async with command(*args, env=env) as first, command(*args, env=env) as second:
            await wait_subscribed(emulator, CHANNEL)
            before = emulator.publish(CHANNEL, {"Name": "before"})
            assert sorted(await read_events([first, second], 1), key=len) == [[], [before]]

            redis.stop()
            await asyncio.sleep(float(TTL) * 2)
            redis.start()
            # Whichever replica holds the lease now prints what follows, from the store.
            await wait_subscribed(emulator, CHANNEL)
            after = [emulator.publish(CHANNEL, {"Name": f"after{i}"}) for i in range(3)]
            printed = await read_events([first, second], 3)
            assert first.process.returncode is None and second.process.returncode is None
            for replica in (first, second):
                replica.process.send_signal(signal.SIGTERM)
            finished = [await first.finish(), await second.finish()]
    finally:
        redis.stop()
    # One replica printed them all, in order: none lost, none twice.
    assert sorted(printed, key=len) == [[], after]
    assert [result.code for result in finished] == [ExitCode.SIGTERM] * 2
    assert all(result.stdout == "" for result in finished)


async def test_a_store_that_cannot_reach_redis_hands_over(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    redis = RestartableRedis(tmp_path)
    redis.start()
    try:
        env = emulator_env(emulator)
        # Longer than Redis is away: the lease itself is not lost, the store fails.
        args = (
            "listen", "--allow-insecure-http", "-v", "--replay-store", redis.url,
            "--lease", redis.url, "--lease-name", NAME, "--lease-ttl", "3", CHANNEL,
        )  # fmt: skip
        async with command(*args, env=env) as first:
            await wait_subscribed(emulator, CHANNEL)
            async with command(*args, env=env) as second:
                before = emulator.publish(CHANNEL, {"Name": "before"})
                assert await first.events(1) == [before]
                await wait_stored_at(redis.url, before)
                redis.stop()
                during = emulator.publish(CHANNEL, {"Name": "during"})
                assert await first.events(1) == [during]
                redis.start()
                # Its marker could not be stored: the next holder prints it again.
                printed = await read_events([first, second], 1)
                assert sum(map(len, printed)) == 1
                assert [event for events in printed for event in events] == [during]
                await wait_stored_at(redis.url, during)
                after = emulator.publish(CHANNEL, {"Name": "after"})
                assert [event for events in await read_events([first, second], 1)
                        for event in events] == [after]  # fmt: skip
                for replica in (first, second):
                    replica.process.send_signal(signal.SIGTERM)
                stopped = await first.finish()
                await second.finish()
    finally:
        redis.stop()
    assert stopped.code == ExitCode.SIGTERM
    assert any(
        line.startswith(f"lost lease 'aiosfstream:lease:{NAME}': ") and "Redis" in line
        for line in stopped.cli_log()
    ), stopped.log


async def test_pubsub_replicas_hand_over(
    emulator: SalesforceEmulator, pubsub: PubSubEmulator, redis_server: RedisServer
) -> None:
    from aiosfstream.testing.pubsub import PLATFORM_EVENT_TOPIC as TOPIC

    env = emulator_env(emulator)
    args = pubsub_args(
        pubsub, "--replay-store", redis_server.url, "--lease", redis_server.url,
        "--lease-name", NAME, "--lease-ttl", TTL, TOPIC,
    )  # fmt: skip
    async with command(*args, env=env) as first:
        await wait_streaming(pubsub, TOPIC)
        async with command(*args, env=env) as second:
            published = [pubsub.publish(TOPIC, {"OrderNumber__c": f"n{i}"}) for i in range(2)]
            assert [event["replay_id"] for event in await first.events(2)] == [
                replay_id.hex() for replay_id in published
            ]
            await no_line_within(second, 0.5)

            async def stored() -> bool:
                async with RedisReplayStorage(redis_server.url) as storage:
                    marker = await storage.get_replay_marker(TOPIC)
                return marker is not None and marker.replay_id == published[-1]

            await wait_until(stored, "the last replay id not stored")
            first.process.send_signal(signal.SIGKILL)
            following = [pubsub.publish(TOPIC, {"OrderNumber__c": f"m{i}"}) for i in range(2)]
            assert [event["replay_id"] for event in await second.events(2)] == [
                replay_id.hex() for replay_id in following
            ]
