"""RedisReplayStorage fenced by a RedisLease: only the holder moves the position."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from aiosfstream import ReplayMarker
from aiosfstream.exceptions import LeaseLost, ReplayError
from aiosfstream.ha import RedisLease
from aiosfstream.stores import RedisReplayStorage

from .conftest import RedisServer
from .support import CHANNEL, marker

if TYPE_CHECKING:
    import redis.asyncio

TTL = 2.0
SHORT_TTL = 0.5
SLACK = 1.0

#: Each way of writing a marker, as (its name, a call storing *marker* on *CHANNEL*).
Write = Callable[[RedisReplayStorage, ReplayMarker], Awaitable[None]]
WRITES: list[tuple[str, Write]] = [
    ("store_marker", lambda storage, new: storage.store_marker(CHANNEL, new)),
    ("store_markers", lambda storage, new: storage.store_markers({CHANNEL: new})),
    ("set_replay_marker", lambda storage, new: storage.set_replay_marker(CHANNEL, new)),
]


@pytest.fixture
async def replicas(
    redis_url: str,
) -> AsyncIterator[list[tuple[RedisLease, RedisReplayStorage]]]:
    """Two replicas, each with its lease and its storage fenced by it.

    The renewals are rare (every 1.5 s), so a replica that lost its key keeps believing
    it holds the lease for a while, as a paused process would.
    """
    pairs = []
    for _ in range(2):
        lease = RedisLease(redis_url, "orders", ttl=TTL, renew_every=1.5, poll_interval=0.05)
        pairs.append((lease, RedisReplayStorage(redis_url, lease=lease)))
    yield pairs
    for lease, storage in pairs:
        await storage.close()
        await lease.close()


@pytest.mark.parametrize(("name", "write"), WRITES, ids=[name for name, _ in WRITES])
async def test_the_holder_writes(
    replicas: list[tuple[RedisLease, RedisReplayStorage]], name: str, write: Write
) -> None:
    lease, storage = replicas[0]
    await lease.acquire()
    await write(storage, marker(5))
    assert await storage.get_replay_marker(CHANNEL) == marker(5)


async def test_the_holder_still_keeps_the_newest(
    replicas: list[tuple[RedisLease, RedisReplayStorage]],
) -> None:
    lease, storage = replicas[0]
    await lease.acquire()
    await storage.store_marker(CHANNEL, marker(10))
    await storage.store_marker(CHANNEL, marker(4))
    assert await storage.get_replay_marker(CHANNEL) == marker(10)
    await storage.set_replay_marker(CHANNEL, marker(4))
    assert await storage.get_replay_marker(CHANNEL) == marker(4)


@pytest.mark.parametrize(("name", "write"), WRITES, ids=[name for name, _ in WRITES])
async def test_a_stale_holder_is_refused_by_redis(
    replicas: list[tuple[RedisLease, RedisReplayStorage]],
    raw: redis.asyncio.Redis,
    name: str,
    write: Write,
) -> None:
    (old, old_storage), (new, new_storage) = replicas
    await old.acquire()
    await old_storage.store_marker(CHANNEL, marker(1))
    # The old holder's key is gone (expired while it was paused, say), and the other
    # replica took the lease; the old one has not noticed yet.
    await raw.delete(old.key)
    await new.acquire(timeout=SLACK)
    await new_storage.store_marker(CHANNEL, marker(3))
    assert old.held
    for stale in (marker(2), marker(9)):  # neither backward nor forward
        with pytest.raises(LeaseLost, match="another holder has it") as caught:
            await write(old_storage, stale)
        assert "/topic/foo" in str(caught.value)
    assert await new_storage.get_replay_marker(CHANNEL) == marker(3)
    assert await raw.hget(old_storage.key(CHANNEL), "replay_id") == "3"


@pytest.mark.parametrize(("name", "write"), WRITES, ids=[name for name, _ in WRITES])
async def test_a_former_holder_is_refused_without_asking_redis(
    redis_url: str, raw: redis.asyncio.Redis, name: str, write: Write
) -> None:
    async with RedisLease(redis_url, "orders", ttl=SHORT_TTL, renew_every=0.1) as lease:
        # The storage's Redis cannot be reached: a LeaseLost proves no command was sent.
        unreachable = RedisReplayStorage("redis://127.0.0.1:1/0", lease=lease)
        with pytest.raises(LeaseLost, match="does not hold it"):
            await write(unreachable, marker(1))
        await unreachable.close()
        async with RedisReplayStorage(redis_url, lease=lease) as storage:
            await lease.acquire()
            await storage.store_marker(CHANNEL, marker(1))
            await raw.delete(lease.key)
            await lease.wait_lost()
            with pytest.raises(LeaseLost, match="does not hold it"):
                await write(storage, marker(2))
            assert await storage.get_replay_marker(CHANNEL) == marker(1)


async def test_a_stopped_holder_stores_nothing_after_it_resumes(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    # A real process, stopped with SIGSTOP for longer than the ttl while the other replica
    # takes over, then resumed: the write it was about to make is refused.
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, sys\n"
        "from aiosfstream import ReplayMarker\n"
        "from aiosfstream.exceptions import LeaseLost\n"
        "from aiosfstream.ha import RedisLease\n"
        "from aiosfstream.stores import RedisReplayStorage\n"
        "async def main():\n"
        f"    lease = RedisLease(sys.argv[1], 'orders', ttl={SHORT_TTL})\n"
        "    storage = RedisReplayStorage(sys.argv[1], lease=lease)\n"
        "    print(await lease.acquire(), flush=True)\n"
        "    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)\n"
        "    try:\n"
        f"        await storage.store_marker({CHANNEL!r}, ReplayMarker('', 99))\n"
        "    except LeaseLost:\n"
        "        print('refused', flush=True)\n"
        "    else:\n"
        "        print('stored', flush=True)\n"
        "    await storage.close()\n"
        "    await lease.close()\n"
        "asyncio.run(main())\n",
        redis_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdin is not None
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"1\n"
        holder.send_signal(signal.SIGSTOP)
        async with (
            RedisLease(redis_url, "orders", ttl=TTL, poll_interval=0.05) as lease,
            RedisReplayStorage(redis_url, lease=lease) as storage,
        ):
            assert await lease.acquire(timeout=SHORT_TTL + SLACK) == 2
            await storage.store_marker(CHANNEL, marker(7))
            holder.send_signal(signal.SIGCONT)
            holder.stdin.write(b"go\n")
            await holder.stdin.drain()
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"refused\n"
            assert await storage.get_replay_marker(CHANNEL) == marker(7)
    finally:
        if holder.returncode is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
        await holder.wait()


async def test_a_lease_on_another_database_refuses_every_write(
    redis_server: RedisServer,
) -> None:
    async with (
        RedisLease(redis_server.url, "orders", ttl=TTL) as lease,
        RedisReplayStorage(f"redis://127.0.0.1:{redis_server.port}/1", lease=lease) as storage,
    ):
        await lease.acquire()
        with pytest.raises(LeaseLost):
            await storage.store_marker(CHANNEL, marker(1))
        assert await storage.get_replay_marker(CHANNEL) is None


async def test_the_repr_names_the_lease(redis_url: str) -> None:
    async with (
        RedisLease(redis_url, "orders") as lease,
        RedisReplayStorage(redis_url, lease=lease) as storage,
    ):
        assert repr(storage).endswith("lease='aiosfstream:lease:orders'>")
        assert storage.lease is lease


@pytest.mark.parametrize("lease", [object(), "redis://127.0.0.1/0"])
def test_the_lease_must_be_a_lease(lease: object) -> None:
    pytest.importorskip("redis", reason="redis-py is not installed")
    with pytest.raises(TypeError, match="lease must be"):
        RedisReplayStorage("redis://127.0.0.1:1/0", lease=lease)  # type: ignore[arg-type]


async def test_a_closed_storage_says_so_before_the_lease(redis_url: str) -> None:
    async with RedisLease(redis_url, "orders") as lease:
        storage = RedisReplayStorage(redis_url, lease=lease)
        await storage.close()
        with pytest.raises(ReplayError, match="closed"):
            await storage.store_marker(CHANNEL, marker(1))
