"""``listen --replay-store redis://...``: replay markers kept in a real redis-server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.cli.replay_store import is_redis_url, shown_url, url_password
from aiosfstream.stores import RedisReplayStorage
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import require_tool
from tests.stores.conftest import RedisServer

from .support import CHANNEL, command, emulator_env, free_port, run, wait_subscribed

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

LISTEN = ("listen", "--allow-insecure-http")


@pytest.mark.parametrize(
    ("target", "redis"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("REDISS://cache.example.com/1", True),
        ("unix:///run/redis.sock", True),
        ("replay.db", False),
        ("/var/lib/replay.db", False),
        ("file://replay.db", False),
        ("redis.db", False),
    ],
)
def test_which_targets_are_redis(target: str, redis: bool) -> None:
    assert is_redis_url(target) is redis


def test_urls_are_shown_without_credentials() -> None:
    url = "redis://reader:hunter2-long@cache.example.com:6380/2?ssl_cert_reqs=none"
    assert url_password(url) == "hunter2-long"
    assert shown_url(url) == "redis://cache.example.com:6380/2"
    assert url_password("redis://cache.example.com/0") is None


async def stored_replay_id(url: str, channel: str) -> int | bytes | None:
    async with RedisReplayStorage(url) as storage:
        marker = await storage.get_replay_marker(channel)
    return None if marker is None else marker.replay_id


async def test_redis_store_resumes_after_the_last_printed_event(
    emulator: SalesforceEmulator, redis_server: RedisServer
) -> None:
    env = emulator_env(emulator)
    store = redis_server.url
    async with command(*LISTEN, "--replay-store", store, "--count", "2", CHANNEL, env=env) as first:
        await wait_subscribed(emulator, CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(2)]
        finished = await first.finish()
    assert finished.code == ExitCode.OK
    assert finished.events == published
    assert await stored_replay_id(store, CHANNEL) == published[-1]["data"]["event"]["replayId"]

    # Published while nobody listens: the next run starts after the stored marker.
    later = [emulator.publish(CHANNEL, {"Name": f"later{i}"}) for i in range(3)]
    second = await run(*LISTEN, "-v", "--replay-store", store, "--timeout", "0.5", CHANNEL, env=env)
    assert second.code == ExitCode.OK
    assert second.events == later
    stored = published[-1]["data"]["event"]["replayId"]
    assert f"subscribed to {CHANNEL}, replay after the stored id {stored}" in second.cli_log()
    assert await stored_replay_id(store, CHANNEL) == later[-1]["data"]["event"]["replayId"]
    second.assert_clean()


async def test_unreachable_redis_is_a_replay_store_error(emulator: SalesforceEmulator) -> None:
    port = free_port()
    password = "redis-secret-8d2e"
    finished = await run(
        *LISTEN,
        "--replay-store",
        f"redis://:{password}@127.0.0.1:{port}/0",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.REPLAY_STORE
    assert finished.stderr.startswith(
        f"aiosfstream: replay store: cannot open Redis at redis://127.0.0.1:{port}/0: "
    )
    assert "111" in finished.stderr or "refused" in finished.stderr.lower()
    assert finished.stderr.count("\n") == 1
    finished.assert_clean(password)
    # Nothing was sent to Salesforce: the store is opened before the login.
    assert emulator.client_ids == []


async def test_wrong_redis_password_is_told_without_it(emulator: SalesforceEmulator) -> None:
    server = RedisServer(require_tool("redis-server"), "--requirepass", "the-real-one-5a1c")
    try:
        password = "not-the-password-77b3"
        finished = await run(
            *LISTEN,
            "--replay-store",
            f"redis://default:{password}@127.0.0.1:{server.port}/0",
            CHANNEL,
            env=emulator_env(emulator),
        )
    finally:
        server.stop()
    assert finished.code == ExitCode.REPLAY_STORE
    assert finished.stderr.startswith(
        f"aiosfstream: replay store: cannot open Redis at redis://127.0.0.1:{server.port}/0: "
    )
    assert "password" in finished.stderr.lower()
    assert finished.stderr.count("\n") == 1
    finished.assert_clean(password)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; its port."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_redis_server_that_does_not_answer_is_given_up(
    emulator: SalesforceEmulator, silent_server: int
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    finished = await run(
        *LISTEN,
        "--connection-timeout",
        "0.5",
        "--replay-store",
        f"redis://127.0.0.1:{silent_server}/0",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert finished.code == ExitCode.REPLAY_STORE
    assert finished.stderr == (
        f"aiosfstream: replay store: cannot open Redis at redis://127.0.0.1:{silent_server}/0: "
        "no answer within 0.5 s\n"
    )
    assert loop.time() - started < 5


async def test_without_redis_py_the_error_says_what_to_install(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    # A package named redis that fails to import stands for redis-py not being there.
    fake = tmp_path / "redis"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named redis')\n")
    env = emulator_env(emulator, PYTHONPATH=str(tmp_path))
    finished = await run(*LISTEN, "--replay-store", "redis://127.0.0.1:1/0", CHANNEL, env=env)
    assert finished.code == ExitCode.USAGE
    assert finished.stderr.startswith(
        "aiosfstream listen: error: --replay-store with a Redis URL cannot run here: "
    )
    assert "pip install 'aiosfstream[redis]'" in finished.stderr
    assert finished.stderr.count("\n") == 1
