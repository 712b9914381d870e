"""Resident memory of a client whose consumer is slower than the server.

The server (another process) has ``--total`` realistic events (about 1 KB each) ready
and answers every ``/meta/connect`` at once with a batch of ``--batch`` of them.  The
client has ``max_pending_count=--max-pending`` (100); its consumer sleeps
``--sleep`` seconds every ``--sleep-every`` events, so events always wait behind it.
This process's RSS (``VmRSS`` of ``/proc/self/status``) and peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) are taken after each checkpoint's number of
events was received, with the prefetch queue's fill level: a bounded client keeps RSS
flat however many events are offered.

``--unbounded`` also runs ``max_pending_count=0`` (no limit) afterwards, to show what
the limit protects from (the peak RSS is then that of both runs).

``--one-reply 10000,50000,100000`` measures what a CometD server does to a consumer
that fell behind: it answers one ``/meta/connect`` with **everything** queued, here N
events in one response.  Each size runs in a fresh process (peak RSS only grows), with
the same slow consumer; it prints the peak RSS over the RSS of the open, subscribed
client.  A client that reads the whole body first grows with N; one that decodes it as
it arrives and stops reading while its queue is full stays flat.

    .venv/bin/python benchmarks/memory.py                          # 50k events
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
from typing import Any

from _support import (
    Scenario,
    ServerProcess,
    consume,
    current_rss_mb,
    format_table,
    library_header,
    peak_rss_mb,
    write_json,
)


async def measure(
    server: ServerProcess, args: argparse.Namespace, max_pending: int
) -> list[dict[str, float]]:
    scenario = Scenario("batch", "realistic", batch=args.batch, total=args.total)
    checkpoints = sorted(set(args.checkpoints) | {args.total})
    points: list[dict[str, float]] = []
    most_pending = 0
    state: dict[str, Any] = {}

    async def on_event(message: dict[str, Any], count: int) -> None:
        nonlocal most_pending
        client = state.get("client")
        if client is not None:
            # Events received and not yet taken: the ready ones and, past the limit, the
            # rest of the last batch (a private counter, read if it is there).
            backlog = getattr(getattr(client, "_queue", None), "backlog_count", 0)
            most_pending = max(most_pending, client.pending_count + backlog)
        if count in checkpoints:
            points.append(
                {
                    "events": count,
                    "rss_mb": current_rss_mb(),
                    "peak_mb": peak_rss_mb(),
                    "most_pending": most_pending,
                }
            )
        if count % args.sleep_every == 0:
            await asyncio.sleep(args.sleep)

    await consume(
        server,
        scenario,
        on_event=on_event,
        on_open=lambda client: state.update(client=client),
        replay={},
        max_pending_count=max_pending,
    )
    return points


async def main(args: argparse.Namespace) -> dict[str, Any]:
    gc.collect()
    result: dict[str, Any] = {"start_rss_mb": current_rss_mb(), "max_pending": args.max_pending}
    with ServerProcess() as server:
        result["bounded"] = await measure(server, args, args.max_pending)
        if args.unbounded:
            result["unbounded"] = await measure(server, args, 0)
    bounded = result["bounded"]
    result["peak_mb"] = bounded[-1]["peak_mb"]
    result["growth_mb"] = bounded[-1]["rss_mb"] - bounded[0]["rss_mb"]
    return result


async def one_reply(args: argparse.Namespace, total: int) -> dict[str, float]:
    """One run: *total* events in a single reply; RSS of the open client and the peak."""
    scenario = Scenario("batch", "realistic", batch=total, total=total)
    opened: dict[str, float] = {}

    async def on_event(message: dict[str, Any], count: int) -> None:
        if count % args.sleep_every == 0:
            await asyncio.sleep(args.sleep)

    def on_open(client: Any) -> None:
        gc.collect()
        opened["rss_mb"] = current_rss_mb()
        opened["peak_before_mb"] = peak_rss_mb()

    with ServerProcess() as server:
        run = await consume(
            server,
            scenario,
            on_event=on_event,
            on_open=on_open,
            replay={},
            max_pending_count=args.max_pending,
            max_response_bytes=1024**3,
        )
    return {
        "events": run.events,
        "open_rss_mb": opened["rss_mb"],
        "peak_mb": peak_rss_mb(),
        "growth_mb": peak_rss_mb() - opened["rss_mb"],
    }


def one_reply_runs(args: argparse.Namespace) -> list[dict[str, float]]:
    """Each size in its own process, since peak RSS never goes down."""
    results = []
    for total in args.one_reply:
        command = [sys.executable, __file__, "--single-reply", str(total)]
        command += ["--max-pending", str(args.max_pending), "--sleep", str(args.sleep)]
        command += ["--sleep-every", str(args.sleep_every)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    return results


def report_one_reply(results: list[dict[str, float]]) -> str:
    rows = [
        [
            f"{point['events']:,}",
            f"{point['open_rss_mb']:.1f}",
            f"{point['peak_mb']:.1f}",
            f"{point['growth_mb']:+.1f}",
        ]
        for point in results
    ]
    headers = ["events in one reply", "open client RSS MB", "peak RSS MB", "growth MB"]
    return format_table(headers, rows)


def report(result: dict[str, Any]) -> str:
    rows = []
    for name in ("bounded", "unbounded"):
        for point in result.get(name, []):
            rows.append(
                [
                    "max_pending_count="
                    + (str(result["max_pending"]) if name == "bounded" else "0"),
                    f"{point['events']:,}",
                    f"{point['rss_mb']:.1f}",
                    f"{point['peak_mb']:.1f}",
                    f"{point['most_pending']:,}",
                ]
            )
    headers = ["client", "events received", "RSS MB", "peak RSS MB", "most queued"]
    return (
        f"RSS before the client was created: {result['start_rss_mb']:.1f} MB\n"
        + format_table(headers, rows)
        + f"\nRSS growth from the first to the last checkpoint: {result['growth_mb']:+.1f} MB"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=50_000, help="events offered")
    parser.add_argument(
        "--checkpoints",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[10_000, 25_000, 50_000],
    )
    parser.add_argument("--batch", type=int, default=1000, help="events per response")
    parser.add_argument("--max-pending", type=int, default=100, help="max_pending_count")
    parser.add_argument("--sleep", type=float, default=0.001, help="seconds the consumer sleeps")
    parser.add_argument("--sleep-every", type=int, default=10, help="... every this many events")
    parser.add_argument("--unbounded", action="store_true", help="also run without a limit")
    parser.add_argument(
        "--one-reply",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[],
        help="also serve each of these numbers of events in one reply (e.g. 10000,50000,100000)",
    )
    parser.add_argument("--single-reply", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help="also write the results to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.single_reply:
        print(json.dumps(asyncio.run(one_reply(arguments, arguments.single_reply))))
        sys.exit(0)
    print(library_header("memory: RSS with a slow consumer"))
    print(
        f"{arguments.total:,} realistic events offered in batches of {arguments.batch}; "
        f"consumer sleeps {arguments.sleep:g} s every {arguments.sleep_every} events",
        flush=True,
    )
    outcome = asyncio.run(main(arguments))
    print(report(outcome))
    if arguments.one_reply:
        print("\nEvery event queued by the server in ONE /meta/connect reply:", flush=True)
        outcome["one_reply"] = one_reply_runs(arguments)
        print(report_one_reply(outcome["one_reply"]))
    write_json(arguments.json_out, outcome)
