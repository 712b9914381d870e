"""Tests for aiosfstream.stores.sqlite, on real database files."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aiosfstream import ReplayMarker, ReplayOption
from aiosfstream.exceptions import ReplayError
from aiosfstream.stores import SQLiteReplayStorage
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.typing import Payload

from .support import CHANNEL, RAW_DATE_CASES, marker, replay_id, streaming_client


def rows(path: Path, table: str = "replay_markers") -> dict[str, tuple[str, int | bytes]]:
    """What another connection sees in the database."""
    with sqlite3.connect(path) as connection:
        found = connection.execute(f"SELECT subscription, date, replay_id FROM {table}")
        result = {subscription: (date, replay_id) for subscription, date, replay_id in found}
    connection.close()
    return result


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "replay.db"


# --- the storage interface ------------------------------------------------------------


async def test_round_trip(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        assert await storage.get_replay_marker(CHANNEL) is None
        await storage.set_replay_marker(CHANNEL, marker(7))
        await storage.set_replay_marker("/data/AccountChangeEvent", marker(9, ""))
        assert await storage.get_replay_marker(CHANNEL) == marker(7)
        assert await storage.get_replay_marker("/data/AccountChangeEvent") == ("", 9)
        assert await storage.get_replay_id(CHANNEL) == 7
    assert rows(db_path) == {
        CHANNEL: (marker(7).date, 7),
        "/data/AccountChangeEvent": ("", 9),
    }


async def test_set_replay_marker_overwrites_even_with_older(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.set_replay_marker(CHANNEL, marker(7))
        await storage.set_replay_marker(CHANNEL, marker(3))
        assert await storage.get_replay_marker(CHANNEL) == marker(3)


@pytest.mark.parametrize(
    ("default_id", "expected"),
    [
        (ReplayOption.NEW_EVENTS, ReplayOption.NEW_EVENTS),
        (ReplayOption.ALL_EVENTS, ReplayOption.ALL_EVENTS),
        (-2, ReplayOption.ALL_EVENTS),
        (4242, 4242),
    ],
)
async def test_default_id(db_path: Path, default_id: int, expected: int) -> None:
    async with SQLiteReplayStorage(db_path, default_id=default_id) as storage:
        assert storage.default_id == expected
        assert await storage.get_replay_id(CHANNEL) == expected
        await storage.set_replay_marker(CHANNEL, marker(5))
        assert await storage.get_replay_id(CHANNEL) == 5


async def test_default_id_is_new_events(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        assert storage.default_id is ReplayOption.NEW_EVENTS


async def test_subscribe_message_gets_stored_or_default_id(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path, default_id=ReplayOption.ALL_EVENTS) as storage:
        await storage.set_replay_marker(CHANNEL, marker(5))
        payload: Payload = [
            {"channel": "/meta/subscribe", "subscription": CHANNEL},
            {"channel": "/meta/subscribe", "subscription": "/topic/bar"},
        ]
        await storage.outgoing(payload, {})
    assert payload[0]["ext"] == {"replay": {CHANNEL: 5}}
    assert payload[1]["ext"] == {"replay": {"/topic/bar": -2}}


@pytest.mark.parametrize("commit_interval", [None, 30.0])
async def test_store_marker_keeps_the_newest(db_path: Path, commit_interval: float | None) -> None:
    async with SQLiteReplayStorage(db_path, commit_interval=commit_interval) as storage:
        await storage.store_marker(CHANNEL, marker(10))
        await storage.store_marker(CHANNEL, marker(4))  # older date
        assert await storage.get_replay_marker(CHANNEL) == marker(10)
        same_date = marker(10).date
        await storage.store_marker(CHANNEL, ReplayMarker(same_date, 9))  # same date, lower id
        assert await storage.get_replay_marker(CHANNEL) == marker(10)
        await storage.store_marker(CHANNEL, ReplayMarker(same_date, 11))  # same date, higher id
        assert await storage.get_replay_marker(CHANNEL) == (same_date, 11)
        await storage.store_marker(CHANNEL, marker(3, ""))  # no date: counts as newer
        assert await storage.get_replay_marker(CHANNEL) == ("", 3)
        await storage.store_marker(CHANNEL, marker(2))  # the stored one has no date
        assert await storage.get_replay_marker(CHANNEL) == marker(2)
    assert rows(db_path)[CHANNEL] == (marker(2).date, 2)


@pytest.mark.parametrize("commit_interval", [None, 30.0])
@pytest.mark.parametrize(("stored", "candidate", "replaced"), RAW_DATE_CASES)
async def test_raw_dates_of_mixed_forms_compare_as_instants(
    db_path: Path,
    commit_interval: float | None,
    stored: ReplayMarker,
    candidate: ReplayMarker,
    replaced: bool,
) -> None:
    async with SQLiteReplayStorage(db_path, commit_interval=commit_interval) as storage:
        await storage.store_marker(CHANNEL, stored)
        await storage.store_marker(CHANNEL, candidate)
        # The date comes back as it was given, not in another form.
        assert await storage.get_replay_marker(CHANNEL) == (candidate if replaced else stored)
        await storage.set_replay_marker("/topic/batch", stored)
        await storage.store_markers({"/topic/batch": candidate})
        assert await storage.get_replay_marker("/topic/batch") == (
            candidate if replaced else stored
        )
    assert rows(db_path)[CHANNEL] == (candidate if replaced else stored)


async def test_extract_replay_id_keeps_the_date_as_the_event_wrote_it(db_path: Path) -> None:
    message = {
        "channel": CHANNEL,
        "data": {"event": {"createdDate": "2024-05-01T12:00:00.000Z", "replayId": 31}},
    }
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.extract_replay_id(message)
        assert await storage.get_replay_marker(CHANNEL) == ("2024-05-01T12:00:00.000Z", 31)
    assert rows(db_path)[CHANNEL] == ("2024-05-01T12:00:00.000Z", 31)


async def test_markers_survive_a_new_instance(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.store_marker(CHANNEL, marker(12))
    async with SQLiteReplayStorage(db_path, default_id=ReplayOption.ALL_EVENTS) as storage:
        assert await storage.get_replay_marker(CHANNEL) == marker(12)
        assert await storage.get_replay_id(CHANNEL) == 12
        assert await storage.get_replay_id("/topic/other") == ReplayOption.ALL_EVENTS


async def test_database_is_in_wal_mode_with_the_documented_schema(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.set_replay_marker(CHANNEL, marker(1))
        with sqlite3.connect(db_path) as connection:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            columns = connection.execute("PRAGMA table_info(replay_markers)").fetchall()
        connection.close()
    assert mode == "wal"
    # (name, type, not null, primary key)
    assert [(c[1], c[2], c[3], c[5]) for c in columns] == [
        ("subscription", "TEXT", 1, 1),
        ("date", "TEXT", 1, 0),
        ("replay_id", "BLOB", 1, 0),
    ]


async def test_tables_of_one_file_are_separate(db_path: Path) -> None:
    async with (
        SQLiteReplayStorage(db_path) as first,
        SQLiteReplayStorage(db_path, table="other_app") as second,
    ):
        await first.set_replay_marker(CHANNEL, marker(1))
        await second.set_replay_marker(CHANNEL, marker(2))
        assert await first.get_replay_marker(CHANNEL) == marker(1)
        assert await second.get_replay_marker(CHANNEL) == marker(2)
    assert rows(db_path, "other_app") == {CHANNEL: (marker(2).date, 2)}


async def test_concurrent_stores_from_many_tasks(db_path: Path) -> None:
    numbers = list(range(1, 301))
    random.Random(7).shuffle(numbers)
    channels = [f"/topic/t{i}" for i in range(3)]
    async with SQLiteReplayStorage(db_path) as storage:
        await asyncio.gather(
            *(storage.store_marker(channel, marker(n)) for n in numbers for channel in channels)
        )
        for channel in channels:
            assert await storage.get_replay_marker(channel) == marker(300)


async def test_concurrent_stores_from_two_instances(db_path: Path) -> None:
    """Without a commit interval, store_marker is one transaction: no lost update."""
    numbers = list(range(1, 201))
    random.Random(3).shuffle(numbers)
    async with SQLiteReplayStorage(db_path) as first, SQLiteReplayStorage(db_path) as second:
        await asyncio.gather(
            *(
                (first if i % 2 else second).store_marker(CHANNEL, marker(n))
                for i, n in enumerate(numbers)
            )
        )
    assert rows(db_path)[CHANNEL] == (marker(200).date, 200)


# --- batched commits -------------------------------------------------------------------


async def test_commit_interval_keeps_markers_until_flush(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path, commit_interval=60.0) as storage:
        for n in range(1, 101):
            await storage.store_marker(CHANNEL, marker(n))
        await storage.set_replay_marker("/topic/bar", marker(5))
        # The storage answers from memory; the file has nothing yet.
        assert await storage.get_replay_marker(CHANNEL) == marker(100)
        assert rows(db_path) == {}
        await storage.flush()
        assert rows(db_path) == {
            CHANNEL: (marker(100).date, 100),
            "/topic/bar": (marker(5).date, 5),
        }
        await storage.store_marker(CHANNEL, marker(101))
        assert rows(db_path)[CHANNEL] == (marker(100).date, 100)
    # close() committed the last one.
    assert rows(db_path)[CHANNEL] == (marker(101).date, 101)


async def test_commit_interval_commits_on_its_own(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path, commit_interval=0.05) as storage:
        await storage.store_marker(CHANNEL, marker(1))
        await storage.store_marker(CHANNEL, marker(2))
        for _ in range(200):
            if rows(db_path):
                break
            await asyncio.sleep(0.01)
        assert rows(db_path) == {CHANNEL: (marker(2).date, 2)}
        # A later marker starts a new round.
        await storage.store_marker(CHANNEL, marker(3))
        for _ in range(200):
            if rows(db_path)[CHANNEL][1] == 3:
                break
            await asyncio.sleep(0.01)
        assert rows(db_path)[CHANNEL] == (marker(3).date, 3)


async def test_close_flushes_markers_set_before_first_use_of_the_database(db_path: Path) -> None:
    storage = SQLiteReplayStorage(db_path, commit_interval=60.0)
    await storage.set_replay_marker(CHANNEL, marker(4))
    await storage.close()
    assert rows(db_path) == {CHANNEL: (marker(4).date, 4)}


async def test_flush_without_commit_interval_does_nothing(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.flush()
        await storage.set_replay_marker(CHANNEL, marker(1))
        assert rows(db_path) == {CHANNEL: (marker(1).date, 1)}


def rename_table(path: Path, old: str, new: str) -> None:
    """Make the storage's table vanish, or come back, behind its back."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        connection.close()


async def test_a_failed_background_commit_is_logged_and_retried(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SQLiteReplayStorage(db_path, commit_interval=0.05) as storage:
        rename_table(db_path, "replay_markers", "parked")
        await storage.set_replay_marker(CHANNEL, marker(1))
        for _ in range(200):
            if "could not commit replay markers" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "no such table" in caplog.text
        assert caplog.records[0].levelname == "ERROR"
        assert await storage.get_replay_marker(CHANNEL) == marker(1)  # still waiting
        rename_table(db_path, "parked", "replay_markers")
        for _ in range(200):
            if rows(db_path):
                break
            await asyncio.sleep(0.01)
        assert rows(db_path) == {CHANNEL: (marker(1).date, 1)}


async def test_close_reports_a_failed_last_commit_and_still_closes(db_path: Path) -> None:
    storage = SQLiteReplayStorage(db_path, commit_interval=60.0)
    await storage.__aenter__()
    rename_table(db_path, "replay_markers", "parked")
    await storage.set_replay_marker(CHANNEL, marker(1))
    with pytest.raises(ReplayError, match="no such table"):
        await storage.close()
    assert storage.closed
    assert not [t for t in threading.enumerate() if t.name.startswith("aiosfstream-sqlite")]


# --- the event loop stays free ---------------------------------------------------------


async def test_event_loop_keeps_running_during_1000_writes(db_path: Path) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async with SQLiteReplayStorage(db_path) as storage:
        task = asyncio.create_task(ticker())
        for n in range(1, 1001):
            await storage.set_replay_marker(CHANNEL, marker(n))
        stop.set()
        await task
        assert await storage.get_replay_marker(CHANNEL) == marker(1000)
    # Each write hands the loop back at least once while the worker thread works.
    assert ticks >= 1000


async def test_sqlite_calls_run_outside_the_event_loop_thread(db_path: Path) -> None:
    """A write that waits for another connection's lock leaves the loop free."""
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.set_replay_marker(CHANNEL, marker(1))
        blocker = sqlite3.connect(db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            write = asyncio.create_task(storage.set_replay_marker(CHANNEL, marker(2)))
            started = time.monotonic()
            await asyncio.sleep(0.3)  # the loop runs while the write waits for the lock
            assert time.monotonic() - started < 1.0
            assert not write.done()
            blocker.execute("COMMIT")
        finally:
            blocker.close()
        await asyncio.wait_for(write, 10)
        assert await storage.get_replay_marker(CHANNEL) == marker(2)


async def test_one_worker_thread_per_storage(db_path: Path) -> None:
    before = {thread.name for thread in threading.enumerate()}
    storage = SQLiteReplayStorage(db_path)
    assert {thread.name for thread in threading.enumerate()} == before  # nothing started yet
    await asyncio.gather(*(storage.store_marker(CHANNEL, marker(n)) for n in range(50)))
    workers = [t for t in threading.enumerate() if t.name.startswith("aiosfstream-sqlite")]
    assert len(workers) == 1
    await storage.close()
    assert not workers[0].is_alive()


# --- durability: kill -9 ---------------------------------------------------------------

WRITER = """
import asyncio, sys
from aiosfstream.replay import ReplayMarker
from aiosfstream.stores import SQLiteReplayStorage

async def main() -> None:
    storage = SQLiteReplayStorage(sys.argv[1])
    for n in range(1, 10_000_000):
        date = f"2024-05-01T12:00:{n // 1_000_000:02d}.{n % 1_000_000:06d}+00:00"
        await storage.set_replay_marker("/topic/foo", ReplayMarker(date, n))
        print(n, flush=True)

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
@pytest.mark.parametrize("kill_after", [1, 150, 600])
def test_marker_survives_kill_9(db_path: Path, kill_after: int) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        printed = 0
        for line in writer.stdout:
            printed = int(line)
            if printed >= kill_after:
                break
        assert printed >= kill_after, writer.stderr.read() if writer.stderr else ""
        os.kill(writer.pid, signal.SIGKILL)
        # Lines printed before the kill landed, still in the pipe.
        for line in writer.stdout:
            if line.endswith("\n"):
                printed = int(line)
    finally:
        writer.kill()
        writer.communicate()
    assert writer.returncode == -signal.SIGKILL

    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (stored,) = connection.execute(
            "SELECT replay_id FROM replay_markers WHERE subscription = ?", (CHANNEL,)
        ).fetchone()
    finally:
        connection.close()
    assert stored >= printed

    async def reopen() -> ReplayMarker | None:
        async with SQLiteReplayStorage(db_path) as storage:
            return await storage.get_replay_marker(CHANNEL)

    assert asyncio.run(reopen()) == marker(stored)


# --- arguments, lifecycle and errors ---------------------------------------------------


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SQLiteReplayStorage(tmp_path / "missing" / "replay.db")
    assert not (tmp_path / "missing").exists()


def test_accepts_str_paths(tmp_path: Path) -> None:
    storage = SQLiteReplayStorage(str(tmp_path / "replay.db"))
    assert storage.path == str(tmp_path / "replay.db")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"path": b"replay.db"}, TypeError),
        ({"path": 3}, TypeError),
        ({"path": ""}, ValueError),
        ({"table": 3}, TypeError),
        ({"table": 'x"; DROP TABLE y; --'}, ValueError),
        ({"table": "1abc"}, ValueError),
        ({"commit_interval": 0}, ValueError),
        ({"commit_interval": -1.0}, ValueError),
        ({"commit_interval": float("inf")}, ValueError),
        ({"commit_interval": float("nan")}, ValueError),
        ({"commit_interval": "1"}, TypeError),
        ({"commit_interval": True}, TypeError),
        ({"default_id": -3}, ValueError),
        ({"default_id": "-1"}, TypeError),
        ({"default_id": None}, TypeError),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], error: type[Exception]) -> None:
    arguments: dict[str, object] = {"path": tmp_path / "replay.db", **kwargs}
    path = arguments.pop("path")
    with pytest.raises(error):
        SQLiteReplayStorage(path, **arguments)  # type: ignore[arg-type]


async def test_bad_markers_are_type_errors(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        with pytest.raises(TypeError):
            await storage.set_replay_marker(CHANNEL, ("2024", "12"))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await storage.set_replay_marker(CHANNEL, 12)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await storage.store_marker(CHANNEL, ReplayMarker(None, 1))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await storage.get_replay_marker(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await storage.set_replay_marker(1, marker(1))  # type: ignore[arg-type]


async def test_use_after_close_is_a_replay_error(db_path: Path) -> None:
    storage = SQLiteReplayStorage(db_path)
    await storage.set_replay_marker(CHANNEL, marker(1))
    await storage.close()
    await storage.close()  # twice is fine
    assert storage.closed
    with pytest.raises(ReplayError, match="closed"):
        await storage.get_replay_marker(CHANNEL)
    with pytest.raises(ReplayError, match="closed"):
        await storage.store_marker(CHANNEL, marker(2))
    with pytest.raises(ReplayError, match="closed"):
        async with storage:
            pass


async def test_close_of_an_unused_storage(db_path: Path) -> None:
    storage = SQLiteReplayStorage(db_path)
    await storage.close()
    assert not os.path.exists(db_path)  # noqa: ASYNC240 - a quick check in a test


async def test_database_errors_become_replay_errors(tmp_path: Path) -> None:
    (tmp_path / "a_directory").mkdir()
    storage = SQLiteReplayStorage(tmp_path / "a_directory")
    with pytest.raises(ReplayError, match="a_directory") as caught:
        async with storage:
            pass
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    await storage.close()


async def test_malformed_row_is_a_replay_error(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        with sqlite3.connect(db_path) as connection:
            connection.execute(
                "INSERT INTO replay_markers VALUES (?, ?, ?)", (CHANNEL, "2024", "twelve")
            )
        connection.close()
        with pytest.raises(ReplayError, match="not a replay marker"):
            await storage.get_replay_marker(CHANNEL)


def test_repr(db_path: Path) -> None:
    storage = SQLiteReplayStorage(db_path, commit_interval=2)
    assert repr(storage) == (
        f"<SQLiteReplayStorage path={str(db_path)!r} table='replay_markers' "
        "commit_interval=2.0 default_id=<ReplayOption.NEW_EVENTS: -1>>"
    )


# --- end to end, with the client and the emulator --------------------------------------


@pytest.mark.parametrize("commit_interval", [None, 0.05])
async def test_a_new_client_continues_after_the_last_consumed_event(
    emulator: SalesforceEmulator, db_path: Path, commit_interval: float | None
) -> None:
    emulator.create_channel(CHANNEL)
    async with (
        SQLiteReplayStorage(db_path, commit_interval=commit_interval) as storage,
        streaming_client(emulator, storage) as client,
    ):
        await client.subscribe(CHANNEL)
        published = [emulator.publish(CHANNEL, {"Name": f"n{i}"}) for i in range(5)]
        consumed = [replay_id(await client.receive()) for _ in range(3)]
    ids = [replay_id(message) for message in published]
    assert consumed == ids[:3]
    assert rows(db_path)[CHANNEL][1] == ids[2]

    ids += [replay_id(emulator.publish(CHANNEL, {"Name": f"n{i}"})) for i in range(5, 7)]
    async with (
        SQLiteReplayStorage(db_path, commit_interval=commit_interval) as storage,
        streaming_client(emulator, storage) as client,
    ):
        await client.subscribe(CHANNEL)
        assert [replay_id(await client.receive()) for _ in range(4)] == ids[3:]
        ids.append(replay_id(emulator.publish(CHANNEL, {"Name": "live"})))
        assert replay_id(await client.receive()) == ids[-1]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.receive(), 0.2)
    assert rows(db_path)[CHANNEL][1] == ids[-1]


# --- replay ids SQLite cannot hold, and type errors ---------------------------------

_SAME_DATE = "2024-05-01T12:00:00.000000+00:00"
_RANGE = "from -9223372036854775808 to 9223372036854775807 (an SQLite INTEGER is signed 64-bit)"


async def test_the_64_bit_extremes_round_trip_and_compare_exactly(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.set_replay_marker("/topic/low", ReplayMarker(_SAME_DATE, -(2**63)))
        await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, 2**63 - 1))
        await storage.store_marker(CHANNEL, ReplayMarker(_SAME_DATE, 2**63 - 2))
        assert await storage.get_replay_id(CHANNEL) == 2**63 - 1
        assert await storage.get_replay_id("/topic/low") == -(2**63)
    assert rows(db_path) == {
        CHANNEL: (_SAME_DATE, 2**63 - 1),
        "/topic/low": (_SAME_DATE, -(2**63)),
    }


@pytest.mark.parametrize("commit_interval", [None, 0.05])
@pytest.mark.parametrize(
    ("bad_id", "shown"),
    [
        (2**63, "9223372036854775808"),
        (-(2**63) - 1, "-9223372036854775809"),
        (10**5000, "<a 16610-bit integer>"),  # too long for Python to print
    ],
    ids=["2**63", "-2**63-1", "10**5000"],
)
async def test_a_replay_id_beyond_64_bits_is_a_replay_error(
    db_path: Path, commit_interval: float | None, bad_id: int, shown: str
) -> None:
    # The old code raised OverflowError (or, with a commit interval, took the marker
    # and then failed every commit and close(), losing the good markers with it).
    storage = SQLiteReplayStorage(db_path, commit_interval=commit_interval)
    await storage.set_replay_marker("/topic/good", marker(1))
    expected = (
        f"SQLiteReplayStorage {str(db_path)!r} cannot hold the replay id {shown} of "
        f"channel '/topic/big': it holds replay ids {_RANGE}"
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
    # The storage still works, and the batch with the bad marker stored nothing.
    await storage.store_markers({"/topic/good": marker(2), "/topic/more": marker(3)})
    assert await storage.get_replay_marker("/topic/big") is None
    assert await storage.get_replay_marker("/topic/other") is None
    await storage.close()
    assert rows(db_path) == {"/topic/good": marker(2), "/topic/more": marker(3)}


async def test_type_errors_name_the_argument_and_the_type_received(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
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
                lambda: storage.set_replay_marker(CHANNEL, ("2024", 1, 2)),  # type: ignore[arg-type]
                "replay_marker must be a ReplayMarker, got a tuple of length 3",
            ),
            (
                lambda: storage.store_markers({CHANNEL: ("2024", 1.5)}),  # type: ignore[dict-item]
                "markers['/topic/foo'].replay_id must be an int or bytes, got float",
            ),
            # The old code raised AttributeError: 'list' object has no attribute 'items'.
            (
                lambda: storage.store_markers([(CHANNEL, marker(1))]),  # type: ignore[arg-type]
                "markers must be a Mapping, got list",
            ),
            (
                lambda: storage.store_markers({b"/topic/foo": marker(1)}),  # type: ignore[dict-item]
                "subscription must be a str, got bytes",
            ),
        ]
        for call, message in cases:
            with pytest.raises(TypeError) as caught:
                await call()
            assert str(caught.value) == message
        assert await storage.get_replay_marker(CHANNEL) is None


# --- bytes replay ids (Pub/Sub), and files written by 1.0.0.dev0 ------------------------

#: Written by ``SQLiteReplayStorage`` of 1.0.0.dev0 (commit c1b6835), whose replay_id
#: column was INTEGER: the markers below in ``replay_markers``, and one in ``other_app``.
DEV0_FILE = Path(__file__).with_name("data") / "replay_markers_1.0.0.dev0.sqlite3"
DEV0_MARKERS = {
    "/topic/InvoiceStatementUpdates": ReplayMarker("2016-03-29T16:40:08.208Z", 13),
    "/data/ChangeEvents": ReplayMarker("1501010206653", 6421),
    "/event/Low_Ink__e": ReplayMarker("", 2),
    "/topic/high": ReplayMarker(_SAME_DATE, 2**63 - 1),
    "/topic/low": ReplayMarker(_SAME_DATE, -(2**63)),
}
DEV0_OTHER_APP = {"/topic/foo": ReplayMarker("2024-05-01T12:00:00Z", 7)}


def storage_classes(path: Path, table: str = "replay_markers") -> dict[str, str]:
    """SQLite's storage class of each row's replay id: ``integer`` or ``blob``."""
    with sqlite3.connect(path) as connection:
        found = connection.execute(f"SELECT subscription, typeof(replay_id) FROM {table}")
        result = dict(found.fetchall())
    connection.close()
    return result


def declared_id_type(path: Path, table: str = "replay_markers") -> str:
    with sqlite3.connect(path) as connection:
        (declared,) = connection.execute(
            "SELECT type FROM pragma_table_info(?) WHERE name = 'replay_id'", (table,)
        ).fetchone()
    connection.close()
    assert isinstance(declared, str)
    return declared


@pytest.fixture
def dev0_copy(tmp_path: Path) -> Path:
    """A copy of the 1.0.0.dev0 file, which opening migrates."""
    path = tmp_path / "dev0.sqlite3"
    path.write_bytes(DEV0_FILE.read_bytes())
    return path


@pytest.mark.parametrize("commit_interval", [None, 30.0])
async def test_ints_are_stored_as_integers_and_bytes_as_blobs(
    db_path: Path, commit_interval: float | None
) -> None:
    pubsub_id = (18098167).to_bytes(8, "big")
    async with SQLiteReplayStorage(db_path, commit_interval=commit_interval) as storage:
        await storage.store_markers(
            {CHANNEL: marker(7), "/event/Order_Event__e": ReplayMarker(_SAME_DATE, pubsub_id)}
        )
    assert rows(db_path) == {
        CHANNEL: (marker(7).date, 7),
        "/event/Order_Event__e": (_SAME_DATE, pubsub_id),
    }
    assert storage_classes(db_path) == {CHANNEL: "integer", "/event/Order_Event__e": "blob"}


def test_the_dev0_file_is_what_the_tests_say(dev0_copy: Path) -> None:
    # The fixture itself: an INTEGER column holding the markers above.
    assert declared_id_type(dev0_copy) == "INTEGER"
    assert rows(dev0_copy) == {name: tuple(m) for name, m in DEV0_MARKERS.items()}
    assert rows(dev0_copy, "other_app") == {name: tuple(m) for name, m in DEV0_OTHER_APP.items()}


async def test_a_dev0_file_opens_and_reads_back_its_int_ids(
    dev0_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="aiosfstream.stores.sqlite")
    async with SQLiteReplayStorage(dev0_copy) as storage:
        for channel, expected in DEV0_MARKERS.items():
            found = await storage.get_replay_marker(channel)
            assert found == expected
            assert found is not None and type(found.replay_id) is int
        # The int rule holds for the old markers, and a Pub/Sub marker now fits too.
        await storage.store_marker("/topic/high", ReplayMarker(_SAME_DATE, 5))
        await storage.store_marker("/event/Order_Event__e", ReplayMarker(_SAME_DATE, b"\x00\x01"))
        assert await storage.get_replay_id("/topic/high") == 2**63 - 1
        assert await storage.get_replay_id("/event/Order_Event__e") == b"\x00\x01"
    assert declared_id_type(dev0_copy) == "BLOB"
    assert "migrated from INTEGER to BLOB" in caplog.text
    # The ints are still SQLite integers, which is what 1.0.0.dev0 reads back as ints.
    assert storage_classes(dev0_copy) == {
        **dict.fromkeys(DEV0_MARKERS, "integer"),
        "/event/Order_Event__e": "blob",
    }
    with sqlite3.connect(dev0_copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert sorted(name for (name,) in tables) == ["other_app", "replay_markers"]
    connection.close()
    # A table is migrated when a storage opens it, not before.
    assert declared_id_type(dev0_copy, "other_app") == "INTEGER"
    async with SQLiteReplayStorage(dev0_copy, table="other_app") as storage:
        assert await storage.get_replay_marker("/topic/foo") == DEV0_OTHER_APP["/topic/foo"]
    assert declared_id_type(dev0_copy, "other_app") == "BLOB"
    assert rows(dev0_copy, "other_app") == {"/topic/foo": tuple(DEV0_OTHER_APP["/topic/foo"])}


async def test_a_migrated_file_is_not_migrated_again(
    dev0_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SQLiteReplayStorage(dev0_copy) as storage:
        await storage.set_replay_marker("/event/E__e", ReplayMarker("", b"\x09"))
    caplog.set_level("INFO", logger="aiosfstream.stores.sqlite")
    async with SQLiteReplayStorage(dev0_copy) as storage:
        assert await storage.get_replay_id("/event/E__e") == b"\x09"
        assert await storage.get_replay_id("/topic/low") == -(2**63)
    assert "migrated" not in caplog.text


async def test_two_storages_opening_a_dev0_file_at_once(dev0_copy: Path) -> None:
    # Both see the INTEGER column; the second waits for the first's transaction, then
    # finds the work done.
    first, second = SQLiteReplayStorage(dev0_copy), SQLiteReplayStorage(dev0_copy)
    try:
        found = await asyncio.gather(
            *(storage.get_replay_marker("/data/ChangeEvents") for storage in (first, second))
        )
    finally:
        await first.close()
        await second.close()
    assert found == [DEV0_MARKERS["/data/ChangeEvents"]] * 2
    assert rows(dev0_copy) == {name: tuple(m) for name, m in DEV0_MARKERS.items()}


async def test_a_failed_migration_leaves_the_dev0_table_whole(dev0_copy: Path) -> None:
    # A table in the way of the migration's staging table makes it fail half-way: the
    # rollback must leave the old table and its rows as they were.
    with sqlite3.connect(dev0_copy) as connection:
        connection.execute("CREATE TABLE replay_markers_aiosfstream_migration (x)")
    connection.close()
    storage = SQLiteReplayStorage(dev0_copy)
    with pytest.raises(ReplayError, match="already exists"):
        await storage.get_replay_marker(CHANNEL)
    await storage.close()
    assert declared_id_type(dev0_copy) == "INTEGER"
    assert rows(dev0_copy) == {name: tuple(m) for name, m in DEV0_MARKERS.items()}


@pytest.mark.parametrize("value", [b"", "0001", 1.5], ids=["empty-blob", "text", "real"])
async def test_a_row_whose_id_is_neither_kind_is_a_replay_error(
    db_path: Path, value: object
) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        with sqlite3.connect(db_path) as connection:
            connection.execute("INSERT INTO replay_markers VALUES (?, ?, ?)", (CHANNEL, "", value))
        connection.close()
        with pytest.raises(ReplayError, match="not a replay marker"):
            await storage.get_replay_marker(CHANNEL)


async def test_a_new_file_declares_the_blob_column_from_the_start(db_path: Path) -> None:
    async with SQLiteReplayStorage(db_path) as storage:
        await storage.set_replay_marker(CHANNEL, marker(1))
    assert declared_id_type(db_path) == "BLOB"
