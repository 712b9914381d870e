"""Publish → ``async for`` latency at a steady event rate.

The server (another process) publishes events at ``--rate`` per second for
``--duration`` seconds; each event carries ``time.time_ns()`` taken when it was
published.  The client (AUTOMATIC policy, dict storage) consumes them with ``async for``
and computes ``time.time_ns() - stamp`` as each event comes out of the iterator: the
latency includes the server's encoding, loopback HTTP, the client's decoding, its
bookkeeping and the replay marker store.  The first ``--warmup`` seconds are left out.

The same is measured with the bare aiohttp loop (no library, same server, same rate):
the floor the library adds to.  Client and floor run in alternating slices
(``--rounds``) of one run, so that a slow spell of the machine hits both, and the
ratios client/floor of p50 and p99 are printed.

    .venv/bin/python benchmarks/latency.py                    # 200 events/s for 20 s
    .venv/bin/python benchmarks/latency.py --duration 5       # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from _support import (
    Scenario,
    ServerProcess,
    consume,
    format_table,
    library_header,
    percentile,
    raw_consume,
    stamp_of,
    write_json,
)


def summarise(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "count": len(latencies_ms),
        "p50": percentile(latencies_ms, 0.50),
        "p90": percentile(latencies_ms, 0.90),
        "p99": percentile(latencies_ms, 0.99),
        "max": max(latencies_ms),
    }


class GCPauses:
    """The garbage collector's pauses in this process while it is installed."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            self.pauses_ms.append((time.perf_counter_ns() - self._started) / 1e6)

    def __enter__(self) -> GCPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


async def measure(
    server: ServerProcess, scenario: Scenario, warmup: float, raw: bool
) -> dict[str, Any]:
    latencies: list[float] = []
    skip = round(warmup * scenario.rate)

    def record(message: dict[str, Any], count: int) -> None:
        received = time.time_ns()
        if count > skip:
            latencies.append((received - stamp_of(message)) / 1e6)

    with GCPauses() as gc_pauses:
        if raw:
            run = await raw_consume(server, scenario, on_event=record)
        else:
            run = await consume(server, scenario, on_event=record, replay={})
    return {
        "latencies": latencies,
        "other_load": run.other_load,
        "gc_pauses": gc_pauses.pauses_ms,
    }


def combine(parts: list[dict[str, Any]]) -> dict[str, float]:
    latencies = [value for part in parts for value in part["latencies"]]
    pauses = [value for part in parts for value in part["gc_pauses"]]
    return {
        **summarise(latencies),
        "other_load": max(part["other_load"] for part in parts),
        "gc_count": len(pauses),
        "gc_max_ms": max(pauses, default=0.0),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """The client and the floor in alternating slices of the same run."""
    results: dict[str, Any] = {"rate": args.rate, "duration": args.duration}
    client_parts: list[dict[str, Any]] = []
    raw_parts: list[dict[str, Any]] = []
    with ServerProcess() as server:
        for _ in range(args.rounds):
            scenario = Scenario(
                "rate", args.kind, rate=args.rate, duration=args.duration / args.rounds
            )
            client_parts.append(await measure(server, scenario, args.warmup, raw=False))
            if args.raw_duration > 0:
                raw_scenario = Scenario(
                    "rate", args.kind, rate=args.rate, duration=args.raw_duration / args.rounds
                )
                raw_parts.append(await measure(server, raw_scenario, args.warmup, raw=True))
    results["client"] = combine(client_parts)
    if raw_parts:
        results["raw"] = combine(raw_parts)
        results["p50_ratio"] = results["client"]["p50"] / results["raw"]["p50"]
        results["p99_ratio"] = results["client"]["p99"] / results["raw"]["p99"]
    return results


def report(result: dict[str, Any]) -> str:
    rows = []
    for name in ("client", "raw"):
        if name in result:
            stats = result[name]
            rows.append(
                [
                    name,
                    f"{stats['count']:,}",
                    f"{stats['p50']:.3f}",
                    f"{stats['p90']:.3f}",
                    f"{stats['p99']:.3f}",
                    f"{stats['max']:.2f}",
                    f"{stats['other_load']:.2f}",
                    f"{stats['gc_count']} / {stats['gc_max_ms']:.2f} ms",
                ]
            )
    headers = [
        "consumer",
        "events",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "other load",
        "GC runs / longest",
    ]
    text = format_table(headers, rows)
    if "p50_ratio" in result:
        text += (
            f"\nclient / floor: p50 {result['p50_ratio']:.2f}x, p99 {result['p99_ratio']:.2f}x"
            " (targets: <= 1.10x and <= 1.15x)"
        )
    return (
        text
        + "\nfloor: the bare aiohttp long-polling loop, in slices alternating with the client's."
        + "\nother load: cores busy with other processes (or stolen by the host), worst slice."
        + "\nGC: garbage collections in the client process during the run, and the longest."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds left out at first")
    parser.add_argument(
        "--raw-duration",
        type=float,
        default=20.0,
        help="seconds of the bare-aiohttp floor in all (0: skip it)",
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="slices of client and floor, alternating"
    )
    parser.add_argument("--kind", default="pushtopic", help="event kind (default pushtopic)")
    parser.add_argument("--json-out", help="also write the results to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    print(library_header("latency: publish -> async for"))
    print(
        f"{arguments.rate:g} events/s for {arguments.duration:g} s, {arguments.kind} events, "
        f"first {arguments.warmup:g} s left out",
        flush=True,
    )
    outcome = asyncio.run(main(arguments))
    print(report(outcome))
    write_json(arguments.json_out, outcome)
