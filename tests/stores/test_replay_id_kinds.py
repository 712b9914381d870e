"""Every storage keeps CometD's int replay ids and Pub/Sub's bytes ids, each as it is.

Each test runs on each storage: a dict, a shelf, :class:`DefaultMappingStorage`, SQLite
(committing each marker, and batching commits) and Redis.  "Reopening" makes a new
storage object on the same place (the same dict, shelf file, database file or Redis
server), as a restarted program would.
"""

from __future__ import annotations

import contextlib
import shelve
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import DefaultMappingStorage, MappingStorage, ReplayMarker, ReplayOption
from aiosfstream.replay import ReplayMarkerStorage
from aiosfstream.stores import RedisReplayStorage, SQLiteReplayStorage

from .conftest import RedisServer

#: Opens a new storage object on the backend's place, closing it afterwards.
Opener = Callable[[], contextlib.AbstractAsyncContextManager[ReplayMarkerStorage]]

BACKENDS = ["dict", "default-mapping", "shelve", "sqlite", "sqlite-batched", "redis"]

EARLY = "2024-05-01T12:00:00.000Z"
LATE = "2024-05-01T12:00:05.000Z"

#: Ids as they come: CometD's ints (up to what every storage holds), and Pub/Sub's bytes,
#: the 8-byte big-endian counters Salesforce and the emulator use, and other lengths,
#: since nothing promises one (a 10-byte id was seen).
INT_IDS: list[int | bytes] = [0, 1, 13, 6421, 2**53 + 1, 2**63 - 1]
BYTES_IDS: list[int | bytes] = [
    (18098167).to_bytes(8, "big"),
    b"\x00" * 8,
    b"\x00",
    b"\xff" * 10,
    b"hex:00",  # looks like the Redis encoding: still just bytes
    b"13",  # looks like a decimal: still bytes, never the int 13
    bytes(range(256)),
]


@pytest.fixture(params=BACKENDS)
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    backend: str = request.param
    mapping: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[ReplayMarkerStorage]:
        if backend == "dict":
            yield MappingStorage(mapping)
        elif backend == "default-mapping":
            yield DefaultMappingStorage(mapping, ReplayOption.ALL_EVENTS)
        elif backend == "shelve":
            with shelve.open(str(tmp_path / "replay.shelf")) as shelf:
                yield MappingStorage(shelf)
        elif backend.startswith("sqlite"):
            interval = 30.0 if backend == "sqlite-batched" else None
            async with SQLiteReplayStorage(
                tmp_path / "replay.db", commit_interval=interval
            ) as storage:
                yield storage
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            async with RedisReplayStorage(server.url) as storage:
                yield storage

    return opened


def assert_same(found: ReplayMarker | None, expected: ReplayMarker) -> None:
    """*found* is *expected*, with an id of the same type (``13`` is not ``b"13"``)."""
    assert found == expected
    assert found is not None
    assert type(found.replay_id) is type(expected.replay_id)


@pytest.mark.parametrize("ids", [INT_IDS, BYTES_IDS], ids=["int", "bytes"])
async def test_ids_come_back_exactly_after_reopening(
    reopen: Opener, ids: Sequence[int | bytes]
) -> None:
    markers = {f"/event/E{n}__e": ReplayMarker(EARLY, replay_id) for n, replay_id in enumerate(ids)}
    async with reopen() as storage:
        for channel, marker in markers.items():
            await storage.set_replay_marker(channel, marker)
        for channel, marker in markers.items():
            assert_same(await storage.get_replay_marker(channel), marker)
    async with reopen() as storage:
        for channel, marker in markers.items():
            assert_same(await storage.get_replay_marker(channel), marker)
            replay_id = await storage.get_replay_id(channel)
            assert replay_id == marker.replay_id
            assert type(replay_id) is type(marker.replay_id)


async def test_int_markers_still_never_move_back(reopen: Opener) -> None:
    async with reopen() as storage:
        await storage.store_marker("/topic/foo", ReplayMarker(LATE, 20))
        await storage.store_marker("/topic/foo", ReplayMarker(EARLY, 30))  # older date
        await storage.store_markers({"/topic/foo": ReplayMarker(LATE, 19)})  # same date, lower
        assert_same(await storage.get_replay_marker("/topic/foo"), ReplayMarker(LATE, 20))
    async with reopen() as storage:
        assert_same(await storage.get_replay_marker("/topic/foo"), ReplayMarker(LATE, 20))


async def test_the_last_bytes_marker_stored_wins(reopen: Opener) -> None:
    # Opaque ids are never compared; dates are the publisher's and may disagree with the
    # bus order the events arrive in.
    first, second, third = (n.to_bytes(8, "big") for n in (900, 7, 901))
    async with reopen() as storage:
        await storage.store_marker("/event/E__e", ReplayMarker(LATE, first))
        await storage.store_marker("/event/E__e", ReplayMarker(EARLY, second))  # older date
        assert_same(await storage.get_replay_marker("/event/E__e"), ReplayMarker(EARLY, second))
        await storage.store_markers({"/event/E__e": ReplayMarker(EARLY, third)})  # same date
        assert_same(await storage.get_replay_marker("/event/E__e"), ReplayMarker(EARLY, third))
        await storage.store_marker("/event/E__e", ReplayMarker("", first))  # no date
    async with reopen() as storage:
        assert_same(await storage.get_replay_marker("/event/E__e"), ReplayMarker("", first))


async def test_both_kinds_under_different_channels_of_one_storage(reopen: Opener) -> None:
    cometd, pubsub = "/topic/Invoices", "/event/Order_Event__e"
    async with reopen() as storage:
        await storage.store_markers(
            {cometd: ReplayMarker(LATE, 13), pubsub: ReplayMarker(LATE, b"\x00\x01")}
        )
        # Each channel keeps its own rule.
        await storage.store_markers(
            {cometd: ReplayMarker(EARLY, 14), pubsub: ReplayMarker(EARLY, b"\x00\x02")}
        )
    async with reopen() as storage:
        assert_same(await storage.get_replay_marker(cometd), ReplayMarker(LATE, 13))
        assert_same(await storage.get_replay_marker(pubsub), ReplayMarker(EARLY, b"\x00\x02"))
        assert await storage.get_replay_id(cometd) == 13
        assert await storage.get_replay_id(pubsub) == b"\x00\x02"
        assert await storage.get_replay_id("/event/Unseen__e") == storage.default_id


async def test_a_channel_moving_between_the_apis_takes_the_new_kind(reopen: Opener) -> None:
    # CometD channels and Pub/Sub topics share names: neither id can replay the other,
    # so a marker of the other kind replaces the stored one, whatever the dates.
    channel = "/event/Order_Event__e"
    async with reopen() as storage:
        await storage.store_marker(channel, ReplayMarker(LATE, 41))
        await storage.store_marker(channel, ReplayMarker(EARLY, b"\x00\x07"))
        assert_same(await storage.get_replay_marker(channel), ReplayMarker(EARLY, b"\x00\x07"))
        await storage.store_marker(channel, ReplayMarker(EARLY, 3))
    async with reopen() as storage:
        assert_same(await storage.get_replay_marker(channel), ReplayMarker(EARLY, 3))


@pytest.mark.parametrize(
    ("replay_id", "error", "message"),
    [
        (b"", ValueError, "marker.replay_id must not be empty bytes: it names no event"),
        (
            bytearray(b"\x01"),
            TypeError,
            "marker.replay_id must be an int or bytes, got bytearray (convert it with bytes())",
        ),
        (
            memoryview(b"\x01"),
            TypeError,
            "marker.replay_id must be an int or bytes, got memoryview (convert it with bytes())",
        ),
        ("0001", TypeError, "marker.replay_id must be an int or bytes, got str"),
        (1.0, TypeError, "marker.replay_id must be an int or bytes, got float"),
    ],
    ids=["empty", "bytearray", "memoryview", "str", "float"],
)
async def test_ids_of_neither_kind_are_refused(
    reopen: Opener, replay_id: object, error: type[Exception], message: str
) -> None:
    bad: Any = ReplayMarker(EARLY, replay_id)  # type: ignore[arg-type]
    calls: list[tuple[Callable[[ReplayMarkerStorage], Awaitable[None]], str]] = [
        (lambda storage: storage.store_marker("/event/E__e", bad), "marker"),
        (lambda storage: storage.set_replay_marker("/event/E__e", bad), "replay_marker"),
        (
            lambda storage: storage.store_markers(
                {"/event/Good__e": ReplayMarker(EARLY, b"\x01"), "/event/E__e": bad}
            ),
            "markers['/event/E__e']",
        ),
    ]
    async with reopen() as storage:
        for call, name in calls:
            with pytest.raises(error) as caught:
                await call(storage)
            assert str(caught.value) == message.replace("marker.", f"{name}.", 1)
        # Nothing was stored, not even the good marker of the refused batch.
        assert await storage.get_replay_marker("/event/E__e") is None
        assert await storage.get_replay_marker("/event/Good__e") is None
