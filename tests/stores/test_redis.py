"""Tests for aiosfstream.stores.redis, against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiosfstream import ReplayMarker, ReplayOption
from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import is_newer
from aiosfstream.stores import RedisReplayStorage
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import require_tool

from .conftest import RedisServer
from .support import CHANNEL, RAW_DATE_CASES, marker, replay_id, streaming_client

if TYPE_CHECKING:
    import redis.asyncio


@pytest.fixture
async def storage(redis_url: str) -> AsyncIterator[RedisReplayStorage]:
    async with RedisReplayStorage(redis_url) as opened:
        yield opened


# --- the storage interface ------------------------------------------------------------


async def test_round_trip(storage: RedisReplayStorage, raw: redis.asyncio.Redis) -> None:
    assert await storage.get_replay_marker(CHANNEL) is None
    await storage.set_replay_marker(CHANNEL, marker(7))
    await storage.set_replay_marker("/data/AccountChangeEvent", marker(9, ""))
    assert await storage.get_replay_marker(CHANNEL) == marker(7)
    assert await storage.get_replay_marker("/data/AccountChangeEvent") == ("", 9)
    assert await storage.get_replay_id(CHANNEL) == 7
    assert await raw.hgetall("aiosfstream:replay:/topic/foo") == {
        "date": marker(7).date,
        "replay_id": "7",
        "sort_date": marker(7).date,
    }


async def test_dates_are_kept_as_given(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis
) -> None:
    await storage.set_replay_marker(CHANNEL, ReplayMarker("2024-05-01T14:00:00.5+02:00", 3))
    assert await storage.get_replay_marker(CHANNEL) == ("2024-05-01T14:00:00.5+02:00", 3)
    assert await raw.hget(storage.key(CHANNEL), "sort_date") == "2024-05-01T12:00:00.500000+00:00"


@pytest.mark.parametrize("default_id", [ReplayOption.NEW_EVENTS, ReplayOption.ALL_EVENTS, 4242])
async def test_default_id(redis_url: str, default_id: int) -> None:
    async with RedisReplayStorage(redis_url, default_id=default_id) as storage:
        assert await storage.get_replay_id(CHANNEL) == default_id
        await storage.store_marker(CHANNEL, marker(5))
        assert await storage.get_replay_id(CHANNEL) == 5


async def test_store_marker_keeps_the_newest(storage: RedisReplayStorage) -> None:
    await storage.store_marker(CHANNEL, marker(10))
    await storage.store_marker(CHANNEL, marker(4))  # older date
    assert await storage.get_replay_marker(CHANNEL) == marker(10)
    same_date = marker(10).date
    await storage.store_marker(CHANNEL, ReplayMarker(same_date, 9))  # same date, lower id
    assert await storage.get_replay_marker(CHANNEL) == marker(10)
    await storage.store_marker(CHANNEL, ReplayMarker(same_date, 10))  # the same marker
    assert await storage.get_replay_marker(CHANNEL) == marker(10)
    await storage.store_marker(CHANNEL, ReplayMarker(same_date, 11))  # same date, higher id
    assert await storage.get_replay_marker(CHANNEL) == (same_date, 11)
    await storage.store_marker(CHANNEL, marker(3, ""))  # no date: counts as newer
    assert await storage.get_replay_marker(CHANNEL) == ("", 3)
    await storage.store_marker(CHANNEL, marker(2))  # the stored one has no date
    assert await storage.get_replay_marker(CHANNEL) == marker(2)


async def test_dates_compare_as_instants_not_as_text(storage: RedisReplayStorage) -> None:
    # 13:00+02:00 is before 12:00Z, although it sorts after it as text.
    await storage.store_marker(CHANNEL, ReplayMarker("2024-05-01T12:00:00Z", 1))
    await storage.store_marker(CHANNEL, ReplayMarker("2024-05-01T13:00:00+02:00", 2))
    assert await storage.get_replay_marker(CHANNEL) == ("2024-05-01T12:00:00Z", 1)
    # Epoch milliseconds, as older versions stored for Change Data Capture.
    await storage.store_marker(CHANNEL, ReplayMarker("1714564800001", 3))  # 12:00:00.001Z
    assert await storage.get_replay_marker(CHANNEL) == ("1714564800001", 3)


@pytest.mark.parametrize(("stored", "candidate", "replaced"), RAW_DATE_CASES)
async def test_raw_dates_of_mixed_forms_compare_as_instants(
    storage: RedisReplayStorage,
    raw: redis.asyncio.Redis,
    stored: ReplayMarker,
    candidate: ReplayMarker,
    replaced: bool,
) -> None:
    await storage.store_marker(CHANNEL, stored)
    await storage.store_marker(CHANNEL, candidate)
    expected = candidate if replaced else stored
    # The date comes back as it was given, not in another form.
    assert await storage.get_replay_marker(CHANNEL) == expected
    assert await raw.hget(storage.key(CHANNEL), "date") == expected.date
    await storage.set_replay_marker("/topic/batch", stored)
    await storage.store_markers({"/topic/batch": candidate})
    assert await storage.get_replay_marker("/topic/batch") == expected


@pytest.mark.parametrize(
    ("stored", "candidate", "replaced"),
    [
        (9, 10, True),
        (99, 100, True),  # more digits: not a text comparison
        (100, 99, False),
        (-1, 0, True),
        (-10, -9, True),
        (-9, -10, False),
        (2**53, 2**53 + 1, True),  # beyond a double's precision
        (10**30, 10**30 + 1, True),
    ],
)
async def test_equal_dates_compare_replay_ids_as_integers(
    storage: RedisReplayStorage, stored: int, candidate: int, replaced: bool
) -> None:
    date = "2024-05-01T12:00:00.000000+00:00"
    await storage.store_marker(CHANNEL, ReplayMarker(date, stored))
    await storage.store_marker(CHANNEL, ReplayMarker(date, candidate))
    expected = candidate if replaced else stored
    assert await storage.get_replay_marker(CHANNEL) == (date, expected)


_BASE = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
_dates = st.one_of(
    st.just(""),
    st.just("not a date"),
    st.integers(0, 2_000).map(
        lambda ms: (_BASE + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
    ),
    st.integers(0, 2_000).map(
        lambda ms: (
            (_BASE + timedelta(milliseconds=ms))
            .astimezone(timezone(timedelta(hours=2)))
            .isoformat(timespec="microseconds")
        )
    ),
    st.integers(0, 2_000).map(
        lambda ms: (_BASE + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    ),
    st.integers(0, 2_000).map(lambda ms: str(int(_BASE.timestamp() * 1000) + ms)),
)
_markers = st.builds(ReplayMarker, _dates, st.integers(-3, 3))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(current=_markers, candidate=_markers)
async def test_store_marker_agrees_with_is_newer(
    storage: RedisReplayStorage, current: ReplayMarker, candidate: ReplayMarker
) -> None:
    await storage.set_replay_marker(CHANNEL, current)
    await storage.store_marker(CHANNEL, candidate)
    expected = candidate if is_newer(candidate, current) else current
    assert await storage.get_replay_marker(CHANNEL) == expected


async def test_key_prefixes_keep_storages_apart(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async with (
        RedisReplayStorage(redis_url, key_prefix="app1:") as first,
        RedisReplayStorage(redis_url, key_prefix="app2:") as second,
    ):
        await first.store_marker(CHANNEL, marker(1))
        await second.store_marker(CHANNEL, marker(2))
        assert await first.get_replay_marker(CHANNEL) == marker(1)
        assert await second.get_replay_marker(CHANNEL) == marker(2)
        assert first.key(CHANNEL) == "app1:/topic/foo"
    assert sorted(await raw.keys("*")) == ["app1:/topic/foo", "app2:/topic/foo"]


async def test_storages_racing_keep_the_newest(redis_url: str) -> None:
    """Four storages (four connections) store a channel's markers concurrently.

    The newest marker of each channel is stored once, by one of them, at a random
    moment: a compare-then-set that is not atomic lets another storage overwrite it.
    """
    count, channels = 40, [f"/topic/t{i}" for i in range(25)]
    rng = random.Random(5)
    storages = [RedisReplayStorage(redis_url) for _ in range(4)]
    try:
        jobs = []
        for channel in channels:
            numbers = list(range(1, count + 1))
            rng.shuffle(numbers)
            jobs += [
                storages[i % len(storages)].store_marker(channel, marker(n))
                for i, n in enumerate(numbers)
            ]
        rng.shuffle(jobs)
        await asyncio.gather(*jobs)
        for channel in channels:
            assert await storages[0].get_replay_marker(channel) == marker(count), channel
    finally:
        for storage in storages:
            await storage.close()


async def test_the_compare_and_set_is_atomic(redis_url: str) -> None:
    """Storages racing with ascending and descending markers never move a marker back."""
    async with RedisReplayStorage(redis_url) as up, RedisReplayStorage(redis_url) as down:
        seen: list[int] = []

        async def watch() -> None:
            for _ in range(200):
                stored = await up.get_replay_marker(CHANNEL)
                if stored is not None:
                    assert isinstance(stored.replay_id, int)
                    seen.append(stored.replay_id)
                await asyncio.sleep(0)

        async def ascend() -> None:
            for n in range(1, 301):
                await up.store_marker(CHANNEL, marker(n))

        async def descend() -> None:
            for n in range(300, 0, -1):
                await down.store_marker(CHANNEL, marker(n))

        await asyncio.gather(ascend(), descend(), watch())
        assert await up.get_replay_marker(CHANNEL) == marker(300)
    assert seen == sorted(seen)


class SlowLink:
    """A TCP proxy to Redis that holds every request for *delay* seconds."""

    def __init__(self, port: int, delay: float) -> None:
        self.port, self.delay = port, delay
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        await self.server.wait_closed()
        await asyncio.gather(*self.tasks)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        await asyncio.gather(
            self._pipe(reader, upstream_writer, self.delay),
            self._pipe(upstream_reader, writer, 0.0),
        )

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, target: asyncio.StreamWriter, delay: float
    ) -> None:
        try:
            while data := await source.read(65536):
                await asyncio.sleep(delay)
                target.write(data)
                await target.drain()
        except ConnectionError:
            pass
        finally:
            target.close()
            with contextlib.suppress(ConnectionError):
                await target.wait_closed()


async def test_a_slow_writer_cannot_move_a_marker_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    """The comparison happens in Redis, when the write arrives.

    The slow storage's requests take 0.3 s to reach Redis. It stores an old marker at
    t=0; the fast one stores the newest at t=0.45. A read at t=0.3 followed by a write
    arriving at t=0.6 would put the old marker back.
    """
    async with (
        SlowLink(redis_server.port, delay=0.3) as slow_url,
        RedisReplayStorage(slow_url) as slow,
        RedisReplayStorage(redis_url) as fast,
    ):
        await slow.store_marker("/topic/warm-up", marker(1))  # connected, script loaded
        slow_store = asyncio.create_task(slow.store_marker(CHANNEL, marker(1)))
        await asyncio.sleep(0.45)
        await fast.store_marker(CHANNEL, marker(2))
        await slow_store
        assert await fast.get_replay_marker(CHANNEL) == marker(2)


PROCESS_WRITER = """
import asyncio, random, sys
from aiosfstream.replay import ReplayMarker
from aiosfstream.stores import RedisReplayStorage

async def main() -> None:
    url, count, parity = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    numbers = [n for n in range(1, count + 1) if n % 2 == parity]
    random.Random(parity).shuffle(numbers)
    async with RedisReplayStorage(url) as storage:
        await storage.get_replay_marker("/topic/t0")  # connected
        print("ready", flush=True)
        sys.stdin.readline()
        for n in numbers:
            date = f"2024-05-01T12:00:{n // 1_000_000:02d}.{n % 1_000_000:06d}+00:00"
            await asyncio.gather(*(
                storage.store_marker(f"/topic/t{i}", ReplayMarker(date, n)) for i in range(10)
            ))

asyncio.run(main())
"""


async def test_processes_share_markers(redis_url: str) -> None:
    """Two processes store the odd and the even markers, shuffled, at the same time.

    The newest marker is stored once; the other process must not overwrite it.
    """
    count = 400
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROCESS_WRITER,
            redis_url,
            str(count),
            parity,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for parity in ("0", "1")
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert await writer.stdout.readline() == b"ready\n"
    for writer in writers:  # start both at once
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        await writer.stdin.drain()
    outputs = [(await writer.communicate())[0] for writer in writers]
    assert outputs == [b"", b""]
    assert [writer.returncode for writer in writers] == [0, 0]
    async with RedisReplayStorage(redis_url) as storage:
        for i in range(10):
            assert await storage.get_replay_marker(f"/topic/t{i}") == marker(count)


async def test_markers_survive_a_new_instance(redis_url: str) -> None:
    async with RedisReplayStorage(redis_url) as storage:
        await storage.store_marker(CHANNEL, marker(12))
    async with RedisReplayStorage(redis_url, default_id=ReplayOption.ALL_EVENTS) as storage:
        assert await storage.get_replay_marker(CHANNEL) == marker(12)
        assert await storage.get_replay_id("/topic/other") == ReplayOption.ALL_EVENTS


# --- clients -----------------------------------------------------------------------------


async def test_a_client_passed_in_is_used_and_left_open(redis_url: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with RedisReplayStorage(client) as storage:
            assert storage.client is client
            await storage.store_marker(CHANNEL, marker(3))
            assert await storage.get_replay_marker(CHANNEL) == marker(3)
        assert storage.closed
        assert await client.ping()
        assert await client.hget(storage.key(CHANNEL), "replay_id") == "3"
    finally:
        await client.aclose()


async def test_a_client_it_created_is_closed(redis_url: str) -> None:
    storage = RedisReplayStorage(redis_url)
    await storage.store_marker(CHANNEL, marker(3))
    await storage.close()
    await storage.close()  # twice is fine
    with pytest.raises(ReplayError, match="closed"):
        await storage.get_replay_marker(CHANNEL)
    with pytest.raises(ReplayError, match="closed"):
        await storage.store_marker(CHANNEL, marker(4))


# --- errors ------------------------------------------------------------------------------


def test_missing_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    monkeypatch.setitem(sys.modules, "redis.exceptions", None)
    with pytest.raises(ImportError, match=r"pip install 'aiosfstream\[redis\]'") as caught:
        RedisReplayStorage("redis://127.0.0.1:6379/0")
    assert caught.value.name == "redis"


@pytest.fixture
def redis_py() -> None:
    """Skip when redis-py is missing; no server needed."""
    pytest.importorskip("redis", reason="redis-py is not installed")


@pytest.mark.usefixtures("redis_py")
@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((3,), {}, TypeError),
        ((b"redis://127.0.0.1",), {}, TypeError),
        (("http://127.0.0.1:6379",), {}, ValueError),
        (("redis://127.0.0.1",), {"key_prefix": b"x"}, TypeError),
        (("redis://127.0.0.1",), {"default_id": -3}, ValueError),
        (("redis://127.0.0.1",), {"default_id": 1.5}, TypeError),
    ],
)
def test_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        RedisReplayStorage(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.usefixtures("redis_py")
async def test_repr_and_errors_hide_the_password() -> None:
    url = "redis://alice:s3cr3t-pw@127.0.0.1:1/0?password=s3cr3t-pw"
    storage = RedisReplayStorage(url)
    try:
        assert "s3cr3t" not in repr(storage)
        assert repr(storage) == (
            "<RedisReplayStorage redis://alice:***@127.0.0.1:1/0 "
            "key_prefix='aiosfstream:replay:' default_id=<ReplayOption.NEW_EVENTS: -1>>"
        )
        with pytest.raises(ReplayError) as caught:
            await storage.get_replay_marker(CHANNEL)  # nothing listens on port 1
        assert "s3cr3t" not in str(caught.value)
        assert "127.0.0.1:1" in str(caught.value)
    finally:
        await storage.close()
    with pytest.raises(ValueError, match="not a Redis URL") as bad:
        RedisReplayStorage("http://bob:s3cr3t-pw@127.0.0.1/0")
    assert "s3cr3t" not in str(bad.value)


async def test_redis_errors_become_replay_errors(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis
) -> None:
    import redis.exceptions

    await raw.set(storage.key(CHANNEL), "a string, not a hash")
    with pytest.raises(ReplayError, match="WRONGTYPE") as caught:
        await storage.store_marker(CHANNEL, marker(1))
    assert isinstance(caught.value.__cause__, redis.exceptions.RedisError)


async def test_a_key_that_is_not_a_marker(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis
) -> None:
    await raw.hset(storage.key(CHANNEL), mapping={"date": "2024", "replay_id": "twelve"})
    with pytest.raises(ReplayError, match="does not hold a replay marker"):
        await storage.get_replay_marker(CHANNEL)


async def test_bad_markers_are_type_errors(storage: RedisReplayStorage) -> None:
    with pytest.raises(TypeError):
        await storage.store_marker(CHANNEL, ("2024", "12"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await storage.set_replay_marker(CHANNEL, ReplayMarker("2024", True))
    with pytest.raises(TypeError):
        await storage.get_replay_marker(b"/topic/foo")  # type: ignore[arg-type]


@pytest.fixture
def password_server() -> Iterator[RedisServer]:
    """A redis-server that requires the password ``s3cr3t-pw``."""
    pytest.importorskip("redis", reason="redis-py is not installed")
    server = RedisServer(require_tool("redis-server"), "--requirepass", "s3cr3t-pw")
    yield server
    server.stop()


async def test_a_password_never_shows_in_errors_or_logs(
    password_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = password_server.port
    async with RedisReplayStorage(f"redis://:s3cr3t-pw@127.0.0.1:{port}/0") as storage:
        await storage.store_marker(CHANNEL, marker(1))
        assert await storage.get_replay_marker(CHANNEL) == marker(1)
        assert "s3cr3t" not in repr(storage)
    storage = RedisReplayStorage(f"redis://:wr0ng-pw@127.0.0.1:{port}/0")
    with pytest.raises(ReplayError) as caught:
        async with storage:
            pytest.fail("entering checks the credentials")
    with pytest.raises(ReplayError) as caught_later:
        await storage.store_marker(CHANNEL, marker(2))
    await storage.close()
    assert "wr0ng" not in str(caught.value)
    assert "wr0ng" not in str(caught_later.value)
    assert "s3cr3t" not in caplog.text
    assert "wr0ng" not in caplog.text


# --- end to end, with the client and the emulator --------------------------------------


async def test_a_new_client_continues_after_the_last_consumed_event(
    emulator: SalesforceEmulator, redis_url: str
) -> None:
    emulator.create_channel(CHANNEL)
    async with (
        RedisReplayStorage(redis_url) as storage,
        streaming_client(emulator, storage) as client,
    ):
        await client.subscribe(CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(5)]
        consumed = [replay_id(await client.receive()) for _ in range(3)]
    ids = [replay_id(message) for message in published]
    assert consumed == ids[:3]

    ids += [replay_id(emulator.publish(CHANNEL, {"Name": f"n{i}"})) for i in range(5, 7)]
    # Another "process": a new storage with its own connection, on the same Redis.
    async with (
        RedisReplayStorage(redis_url) as storage,
        streaming_client(emulator, storage) as client,
    ):
        assert (await storage.get_replay_marker(CHANNEL) or marker(0)).replay_id == ids[2]
        await client.subscribe(CHANNEL)
        assert [replay_id(await client.receive()) for _ in range(4)] == ids[3:]
        ids.append(replay_id(emulator.publish(CHANNEL, {"Name": "live"})))
        assert replay_id(await client.receive()) == ids[-1]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.receive(), 0.2)
        assert (await storage.get_replay_marker(CHANNEL) or marker(0)).replay_id == ids[-1]


# --- replay ids past 64 bits, ids Redis cannot hold, and type errors ------------------

_SAME_DATE = "2024-05-01T12:00:00.000000+00:00"


@pytest.mark.parametrize(
    ("stored", "candidate", "replaced"),
    [
        (2**63 - 1, 2**63, True),
        (2**63 + 1, 2**63, False),
        (2**64, 2**64 + 1, True),
        (-(2**63) - 1, -(2**63), True),
        (-(2**63), -(2**63) - 1, False),
        (2**53 + 1, 2**53, False),  # one apart where doubles are two apart
        (10**639, 10**640 - 1, True),  # the largest id it holds
        (-(10**640) + 1, -(10**639), True),
    ],
)
@pytest.mark.parametrize("batch", [False, True], ids=["store_marker", "store_markers"])
async def test_big_replay_ids_compare_exactly(
    storage: RedisReplayStorage,
    raw: redis.asyncio.Redis,
    stored: int,
    candidate: int,
    replaced: bool,
    batch: bool,
) -> None:
    await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, stored))
    if batch:
        await storage.store_markers({CHANNEL: ReplayMarker(_SAME_DATE, candidate)})
    else:
        await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, candidate))
    expected = candidate if replaced else stored
    assert await storage.get_replay_marker(CHANNEL) == (_SAME_DATE, expected)
    assert await raw.hget(storage.key(CHANNEL), "replay_id") == str(expected)


@pytest.mark.parametrize(
    ("bad_id", "shown"),
    [
        (10**640, "<a 2127-bit integer>"),
        (-(10**640), "<a negative 2127-bit integer>"),
        (10**5000, "<a 16610-bit integer>"),  # too long for Python to write out
    ],
    ids=["10**640", "-10**640", "10**5000"],
)
async def test_a_replay_id_of_more_than_640_digits_is_a_replay_error(
    redis_url: str, raw: redis.asyncio.Redis, bad_id: int, shown: str
) -> None:
    # The old code stored 10**640 and raised ValueError ("Exceeds the limit (4300
    # digits)") for 10**5000, from set_replay_marker, store_marker and store_markers.
    storage = RedisReplayStorage(redis_url)
    await storage.store_marker("/topic/good", marker(1))
    expected = (
        f"RedisReplayStorage {redis_url} cannot hold the replay id {shown} of channel "
        "'/topic/big': it holds replay ids of at most 640 decimal digits"
    )
    bad = ReplayMarker(_SAME_DATE, bad_id)
    attempts: list[Callable[[], Awaitable[None]]] = [
        lambda: storage.set_replay_marker("/topic/big", bad),
        lambda: storage.store_marker("/topic/big", bad),
        lambda: storage.store_markers({"/topic/other": marker(5), "/topic/big": bad}),
    ]
    for attempt in attempts:
        with pytest.raises(ReplayError) as caught:
            await attempt()
        assert str(caught.value) == expected
    # Nothing of the refused calls was written, not even the batch's good marker.
    assert sorted(await raw.keys("*")) == [storage.key("/topic/good")]
    await storage.store_markers({"/topic/good": marker(2)})
    assert await storage.get_replay_marker("/topic/good") == marker(2)
    await storage.close()
    assert storage.closed


@pytest.mark.parametrize("text", ["007", "+7", " 7", "7 ", "0_7", "-0", "\u0667"])
async def test_a_stored_id_the_script_cannot_order_is_an_error(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis, text: str
) -> None:
    # int() takes all of these (as 7 or 0), but the script compares ids as decimal text:
    # "007" is longer than "10" and would beat it.  The old code read them as ints and
    # compared them silently.
    key = storage.key(CHANNEL)
    await raw.hset(key, mapping={"date": _SAME_DATE, "replay_id": text, "sort_date": _SAME_DATE})
    with pytest.raises(ReplayError) as caught:
        await storage.get_replay_marker(CHANNEL)
    assert str(caught.value) == f"Redis key {key!r} does not hold a replay marker"
    with pytest.raises(ReplayError, match="is not a decimal integer") as caught:
        await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, 10))
    assert key in str(caught.value)
    assert await raw.hget(key, "replay_id") == text  # left as it was


async def test_type_errors_name_the_argument_and_the_type_received(
    storage: RedisReplayStorage,
) -> None:
    cases: list[tuple[Callable[[], Awaitable[None]], str]] = [
        # The old code named set_replay_marker's argument in store_marker's errors.
        (
            lambda: storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, True)),
            "marker.replay_id must be an int or bytes, got bool",
        ),
        (
            lambda: storage.set_replay_marker(CHANNEL, ReplayMarker(b"2024", 1)),  # type: ignore[arg-type]
            "replay_marker.date must be a str, got bytes",
        ),
        # The old code said "got tuple": a tuple, but not of two items.
        (
            lambda: storage.store_marker(CHANNEL, ("2024",)),  # type: ignore[arg-type]
            "marker must be a ReplayMarker, got a tuple of length 1",
        ),
        (
            lambda: storage.store_markers({CHANNEL: ("2024", "1")}),  # type: ignore[dict-item]
            "markers['/topic/foo'].replay_id must be an int or bytes, got str",
        ),
        # The old code raised AttributeError: 'list' object has no attribute 'items'.
        (
            lambda: storage.store_markers([(CHANNEL, marker(1))]),  # type: ignore[arg-type]
            "markers must be a Mapping, got list",
        ),
    ]
    for call, message in cases:
        with pytest.raises(TypeError) as caught:
            await call()
        assert str(caught.value) == message
    assert await storage.get_replay_marker(CHANNEL) is None


# --- bytes replay ids (Pub/Sub), and hashes written by 1.0.0.dev0 -----------------------

_PUBSUB_ID = (18098167).to_bytes(8, "big")


async def test_a_bytes_id_is_written_as_hex(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis
) -> None:
    await storage.store_marker("/event/Order_Event__e", ReplayMarker(_SAME_DATE, _PUBSUB_ID))
    await storage.set_replay_marker("/event/Other__e", ReplayMarker("", b"\x00\xff"))
    assert await raw.hgetall(storage.key("/event/Order_Event__e")) == {
        "date": _SAME_DATE,
        "replay_id": "hex:00000000011427f7",
        "sort_date": _SAME_DATE,
    }
    assert await raw.hget(storage.key("/event/Other__e"), "replay_id") == "hex:00ff"
    found = await storage.get_replay_marker("/event/Order_Event__e")
    assert found is not None
    assert type(found.replay_id) is bytes
    assert found == (_SAME_DATE, _PUBSUB_ID)


async def test_a_hash_written_by_dev0_is_read_and_ordered_as_before(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis
) -> None:
    # What 1.0.0.dev0 wrote: the id in decimal, and the normalised date.
    key = storage.key(CHANNEL)
    await raw.hset(
        key,
        mapping={
            "date": "2024-05-01T12:00:00.000Z",
            "replay_id": "9223372036854775808",
            "sort_date": _SAME_DATE,
        },
    )
    assert await storage.get_replay_marker(CHANNEL) == ("2024-05-01T12:00:00.000Z", 2**63)
    await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, 2**63 - 1))  # lower id
    assert await storage.get_replay_id(CHANNEL) == 2**63
    await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, 2**63 + 1))
    assert await raw.hget(key, "replay_id") == "9223372036854775809"
    # The channel moves to Pub/Sub: the bytes marker replaces it, its date older or not.
    await storage.store_marker(CHANNEL, ReplayMarker("2024-05-01T11:00:00Z", _PUBSUB_ID))
    assert await storage.get_replay_id(CHANNEL) == _PUBSUB_ID


@pytest.mark.parametrize(
    "text",
    ["hex:", "hex:0", "hex:ABCD", "hex:zz", "hex: 00", "HEX:00", "0x00", "hex:00\n"],
)
async def test_a_stored_bytes_id_in_another_form_is_an_error(
    storage: RedisReplayStorage, raw: redis.asyncio.Redis, text: str
) -> None:
    # Only the form the storage writes; anything else is an error rather than a guess.
    key = storage.key(CHANNEL)
    await raw.hset(key, mapping={"date": _SAME_DATE, "replay_id": text, "sort_date": _SAME_DATE})
    with pytest.raises(ReplayError) as caught:
        await storage.get_replay_marker(CHANNEL)
    assert str(caught.value) == f"Redis key {key!r} does not hold a replay marker"
    for candidate in (10, b"\x01"):
        with pytest.raises(ReplayError, match="is not a decimal integer, nor hex: and bytes"):
            await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, candidate))
    assert await raw.hget(key, "replay_id") == text  # left as it was


async def test_a_bytes_marker_replaces_an_int_one_with_a_later_date(
    storage: RedisReplayStorage,
) -> None:
    # In the script: a later stored date, which would win between ints, does not keep a
    # bytes marker out, and a bytes marker does not keep a CometD one out either.
    await storage.store_marker(CHANNEL, ReplayMarker("2024-05-01T13:00:00Z", 5))
    await storage.store_markers({CHANNEL: ReplayMarker("2024-05-01T12:00:00Z", b"\x05")})
    assert await storage.get_replay_marker(CHANNEL) == ("2024-05-01T12:00:00Z", b"\x05")
    await storage.store_marker(CHANNEL, ReplayMarker("2024-05-01T11:00:00Z", 4))
    assert await storage.get_replay_marker(CHANNEL) == ("2024-05-01T11:00:00Z", 4)


_any_markers = st.builds(
    ReplayMarker, _dates, st.one_of(st.integers(-3, 3), st.binary(min_size=1, max_size=4))
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(current=_any_markers, candidate=_any_markers)
async def test_store_marker_agrees_with_is_newer_for_both_kinds(
    storage: RedisReplayStorage, current: ReplayMarker, candidate: ReplayMarker
) -> None:
    await storage.set_replay_marker(CHANNEL, current)
    await storage.store_marker(CHANNEL, candidate)
    expected = candidate if is_newer(candidate, current) else current
    found = await storage.get_replay_marker(CHANNEL)
    assert found == expected
    assert found is not None and type(found.replay_id) is type(expected.replay_id)
