"""Throughput with each replay marker storage, as a ratio to a plain dict.

The AUTOMATIC policy stores the replay marker of the events it hands over, so the
storage is on the hot path.  Each storage receives the same stream: batches of
``--batch`` realistic events (PushTopic and CDC, about 1 KB each), ``--total`` events,
or as many as arrive in ``--max-seconds`` for a slow storage.  Storages:

* ``dict``: a plain dict (:class:`~aiosfstream.replay.MappingStorage`);
* ``shelve``: a :mod:`shelve` file (synced after every write);
* ``sqlite``: :class:`~aiosfstream.stores.SQLiteReplayStorage`, durable (a commit per
  marker, ``synchronous=FULL``);
* ``sqlite-0.1s``: the same with ``commit_interval=0.1``;
* ``redis``: :class:`~aiosfstream.stores.RedisReplayStorage` against a ``redis-server``
  started here on a free loopback port (no persistence) and stopped at the end.

After each run the client and the storage are closed, the storage is opened again, and
the marker it holds for each channel is compared with the last event consumed there
(``exact``; ``behind`` would replay events after a restart; ``AHEAD`` would lose some).

    .venv/bin/python benchmarks/storage.py
"""

from __future__ import annotations

import argparse
import asyncio
import shelve
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _support import (
    RedisServer,
    Scenario,
    ServerProcess,
    consume,
    format_table,
    library_header,
    temporary_directory,
    write_json,
)

STORAGES = ("dict", "shelve", "sqlite", "sqlite-0.1s", "redis")

#: Opens a storage: returns the client's ``replay`` argument and a coroutine that closes it.
Opener = Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[None]]]]]


def openers(name: str, directory: Path, redis_url: str | None, run: int) -> Opener:
    """An opener of storage *name*; calling it again opens the same data."""
    from aiosfstream.stores import RedisReplayStorage, SQLiteReplayStorage

    kept: dict[str, Any] = {}

    async def nothing() -> None:
        return None

    async def open_dict() -> tuple[Any, Callable[[], Awaitable[None]]]:
        return kept.setdefault("dict", {}), nothing

    async def open_shelve() -> tuple[Any, Callable[[], Awaitable[None]]]:
        shelf = shelve.open(str(directory / f"markers-{run}.shelf"))  # noqa: SIM115

        async def close() -> None:
            shelf.close()

        return shelf, close

    def open_sqlite(interval: float | None) -> Opener:
        async def opener() -> tuple[Any, Callable[[], Awaitable[None]]]:
            storage = SQLiteReplayStorage(directory / f"markers-{run}.db", commit_interval=interval)
            return storage, storage.close

        return opener

    async def open_redis() -> tuple[Any, Callable[[], Awaitable[None]]]:
        assert redis_url is not None
        storage = RedisReplayStorage(redis_url, key_prefix=f"bench{run}:")
        return storage, storage.close

    return {
        "dict": open_dict,
        "shelve": open_shelve,
        "sqlite": open_sqlite(None),
        "sqlite-0.1s": open_sqlite(0.1),
        "redis": open_redis,
    }[name]


async def stored_ids(replay: Any, channels: tuple[str, ...]) -> dict[str, int | None]:
    """The replay id stored for each channel."""
    from aiosfstream.replay import storage_from

    storage = storage_from(replay)
    result: dict[str, int | None] = {}
    for channel in channels:
        marker = await storage.get_replay_marker(channel)
        result[channel] = None if marker is None else marker.replay_id
    return result


async def measure(
    server: ServerProcess, name: str, opener: Opener, args: argparse.Namespace
) -> dict[str, Any]:
    scenario = Scenario("batch", "realistic", batch=args.batch, total=args.total)
    last: dict[str, int] = {}

    def remember(message: dict[str, Any], count: int) -> None:
        last[message["channel"]] = message["data"]["event"]["replayId"]

    replay, close = await opener()
    try:
        run = await consume(
            server, scenario, replay=replay, on_event=remember, max_seconds=args.max_seconds
        )
    finally:
        await close()
    replay, close = await opener()
    try:
        stored = await stored_ids(replay, scenario.channels)
    finally:
        await close()
    verdicts = []
    for channel, replay_id in last.items():
        kept = stored.get(channel)
        if kept == replay_id:
            continue
        if kept is None or kept < replay_id:
            verdicts.append(f"behind on {channel} ({kept} < {replay_id})")
        else:
            verdicts.append(f"AHEAD on {channel} ({kept} > {replay_id})")
    return {
        "storage": name,
        "events": run.events,
        "seconds": run.seconds,
        "rate": run.rate,
        "cpu_us": run.cpu_us_per_event,
        "markers": "; ".join(verdicts) or "exact",
        "other_load": run.other_load,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    async with temporary_directory() as directory:
        redis = RedisServer() if "redis" in args.storages else None
        with ServerProcess() as server:
            if redis is not None:
                redis.__enter__()
            try:
                for repeat in range(args.repeats):
                    for index, name in enumerate(args.storages):
                        opener = openers(
                            name,
                            directory,
                            redis.url if redis else None,
                            repeat * len(STORAGES) + index,
                        )
                        row = await measure(server, name, opener, args)
                        print(
                            f"  {name:12} {row['rate']:9,.0f} events/s "
                            f"({row['events']:,} in {row['seconds']:.1f} s), "
                            f"markers {row['markers']}",
                            flush=True,
                        )
                        rows.append(row)
            finally:
                if redis is not None:
                    redis.__exit__(None, None, None)
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["storage"] not in best or row["rate"] > best[row["storage"]]["rate"]:
            best[row["storage"]] = row
    dict_rate = best["dict"]["rate"] if "dict" in best else None
    for row in best.values():
        row["ratio"] = row["rate"] / dict_rate if dict_rate else None
    return {"rows": list(best.values())}


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            row["storage"],
            f"{row['events']:,}",
            f"{row['rate']:,.0f}",
            "" if row["ratio"] is None else f"{row['ratio']:.2f}",
            f"{row['cpu_us']:.1f}",
            f"{row['other_load']:.2f}",
            row["markers"],
        ]
        for row in result["rows"]
    ]
    headers = [
        "storage",
        "events",
        "events/s",
        "x dict",
        "client µs/ev",
        "other load",
        "stored markers",
    ]
    return format_table(headers, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=50_000, help="events per storage")
    parser.add_argument("--batch", type=int, default=1000, help="events per response")
    parser.add_argument(
        "--max-seconds", type=float, default=5.0, help="stop a slow storage after this long"
    )
    parser.add_argument(
        "--storages",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(STORAGES),
        help=f"comma-separated, from {','.join(STORAGES)}",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per storage (best kept)")
    parser.add_argument("--json-out", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    unknown = set(args.storages) - set(STORAGES)
    if unknown:
        parser.error(f"unknown storages: {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    print(library_header("storage: throughput per replay marker storage (AUTOMATIC)"))
    print(
        f"{arguments.total:,} realistic events in batches of {arguments.batch} "
        f"(at most {arguments.max_seconds:g} s per storage); temporary files in "
        f"{Path(__import__('tempfile').gettempdir())}",
        flush=True,
    )
    outcome = asyncio.run(main(arguments))
    print(report(outcome))
    write_json(arguments.json_out, outcome)
