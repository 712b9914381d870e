"""A Redis restart between two commands costs no error: the pooled connection it closed
is replaced on the spot (a replica would otherwise take the error for a lost lease)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiosfstream import ReplayMarker
from aiosfstream.ha import RedisLease
from aiosfstream.stores import RedisReplayStorage
from tests.stores.test_replicas import RestartableRedis


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[RestartableRedis]:
    pytest.importorskip("redis", reason="redis-py is not installed")
    server = RestartableRedis(tmp_path)
    yield server
    server.stop()


async def test_a_store_and_a_renewal_after_a_restart_succeed(restartable: RestartableRedis) -> None:
    async with RedisLease(restartable.url, "orders", ttl=5.0) as lease:
        await lease.acquire(timeout=5)
        async with RedisReplayStorage(restartable.url, lease=lease) as storage:
            await storage.store_marker("/topic/a", ReplayMarker("", 1))
            restartable.restart()
            await storage.store_marker("/topic/a", ReplayMarker("", 2))
            marker = await storage.get_replay_marker("/topic/a")
            assert marker is not None and marker.replay_id == 2
            assert lease.held
