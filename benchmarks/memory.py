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

    .venv/bin/python benchmarks/memory.py                          # 50k events
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
    parser.add_argument("--json-out", help="also write the results to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    print(library_header("memory: RSS with a slow consumer"))
    print(
        f"{arguments.total:,} realistic events offered in batches of {arguments.batch}; "
        f"consumer sleeps {arguments.sleep:g} s every {arguments.sleep_every} events",
        flush=True,
    )
    outcome = asyncio.run(main(arguments))
    print(report(outcome))
    write_json(arguments.json_out, outcome)
