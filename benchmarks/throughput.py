"""Events per second through ``async for``, against the raw aiohttp ceiling.

For each event kind (``realistic``: PushTopic and CDC events of about 1 KB, alternating;
``tiny``: about 150 bytes), each batch size (events per ``/meta/connect`` response) and
each JSON decoder (``json``, ``orjson``), this measures:

* ``client``: a :class:`~aiosfstream.SalesforceStreamingClient` with the AUTOMATIC
  replay policy and a dict as replay storage, consumed with ``async for``;
* ``raw``: a bare aiohttp loop that POSTs the same ``/meta/connect`` requests to the
  same server and decodes the responses (no library): the ceiling.

The server runs in another process and serves pre-encoded bodies.  Each measurement is
repeated; the best run is kept (the least disturbed by the rest of the machine).

    .venv/bin/python benchmarks/throughput.py                  # 100k events per run
    .venv/bin/python benchmarks/throughput.py --total 20000    # quicker
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from _support import (
    Run,
    Scenario,
    ServerProcess,
    consume,
    event_size,
    format_table,
    json_loader,
    library_header,
    raw_consume,
    write_json,
)


async def measure(
    server: ServerProcess, scenario: Scenario, loaders: list[str], repeats: int
) -> dict[str, tuple[list[Run], list[Run]]]:
    """Client runs and raw runs per decoder, interleaved: a machine that slows down for
    a while (a shared machine does) slows every variant down alike."""
    runs: dict[str, tuple[list[Run], list[Run]]] = {loader: ([], []) for loader in loaders}
    for _ in range(repeats):
        for loader in loaders:
            loads = json_loader(loader)
            client_runs, raw_runs = runs[loader]
            client_runs.append(await consume(server, scenario, replay={}, json_loads=loads))
            raw_runs.append(await raw_consume(server, scenario, loads=loads))
    return runs


def _best(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.rate)


def _rates(runs: list[Run]) -> str:
    return " ".join(f"{run.rate / 1000:.1f}k" for run in runs)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with ServerProcess() as server:
        # One untimed pass, so that no measured run pays for first-time costs.
        warmup = Scenario("batch", "realistic", batch=100, total=2000)
        await consume(server, warmup, replay={})
        await raw_consume(server, warmup)
        for kind in args.kinds:
            for batch in args.batches:
                total = args.total_single if batch == 1 else args.total
                total = max(total, batch)
                scenario = Scenario("batch", kind, batch=batch, total=total)
                runs = await measure(server, scenario, args.loaders, args.repeats)
                for loader, (client_runs, raw_runs) in runs.items():
                    client, raw = _best(client_runs), _best(raw_runs)
                    row = {
                        "kind": kind,
                        "batch": batch,
                        "events": total,
                        "loader": loader,
                        "client_rate": client.rate,
                        "raw_rate": raw.rate,
                        "ratio": client.rate / raw.rate,
                        "client_cpu_us": min(run.cpu_us_per_event for run in client_runs),
                        "raw_cpu_us": min(run.cpu_us_per_event for run in raw_runs),
                        "server_busy_client": client.server_busy,
                        "server_busy_raw": raw.server_busy,
                        "other_load": max(run.other_load for run in client_runs + raw_runs),
                    }
                    rows.append(row)
                    print(
                        f"  {kind:9} batch {batch:5} {loader:6} client {client.rate:9,.0f}/s "
                        f"raw {raw.rate:9,.0f}/s  ratio {row['ratio']:.2f}  "
                        f"(runs: client {_rates(client_runs)}; raw {_rates(raw_runs)})",
                        flush=True,
                    )
    return {"rows": rows}


def report(result: dict[str, Any]) -> str:
    rows = result["rows"]
    by_key = {(r["kind"], r["batch"], r["loader"]): r for r in rows}
    table = []
    for r in rows:
        json_row = by_key.get((r["kind"], r["batch"], "json"))
        speedup = (
            f"{r['client_rate'] / json_row['client_rate']:.2f}x"
            if r["loader"] != "json" and json_row
            else ""
        )
        busy = max(r["server_busy_client"], r["server_busy_raw"])
        table.append(
            [
                r["kind"],
                r["batch"],
                f"{r['events']:,}",
                r["loader"],
                f"{r['client_rate']:,.0f}",
                f"{r['raw_rate']:,.0f}",
                f"{r['ratio']:.2f}",
                f"{r['client_cpu_us']:.1f}",
                f"{r['raw_cpu_us']:.1f}",
                speedup,
                f"{busy:.0%}",
                f"{r['other_load']:.2f}",
            ]
        )
    headers = [
        "kind",
        "batch",
        "events",
        "json",
        "client ev/s",
        "raw ev/s",
        "client/raw",
        "client µs/ev",
        "raw µs/ev",
        "vs json",
        "server busy",
        "other load",
    ]
    notes = (
        "client/raw: the library's throughput as a share of the bare aiohttp loop's.\n"
        "Rates: the best run; µs/ev: CPU time of the client process per event, the least\n"
        "of the runs.  vs json: client speed-up of this decoder over json.loads.\n"
        "server busy: the server's CPU time / wall time (max of the two runs); near 100%\n"
        "would mean the server limits the run.  other load: cores busy with other\n"
        "processes (or stolen by the host) during the runs, at most; above about 0.2 the\n"
        "numbers of that row are disturbed."
    )
    return format_table(headers, table) + "\n" + notes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=100_000, help="events per run")
    parser.add_argument(
        "--total-single",
        type=int,
        default=10_000,
        help="events per run with batches of 1 (one request per event)",
    )
    parser.add_argument("--batches", type=_ints, default=[1, 100, 1000])
    parser.add_argument("--kinds", type=_words, default=["realistic", "tiny"])
    parser.add_argument("--loaders", type=_words, default=["json", "orjson"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement")
    parser.add_argument("--json-out", help="also write the results to this JSON file")
    return parser.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",")]


def _words(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


if __name__ == "__main__":
    arguments = parse_args()
    print(library_header("throughput: events/s through async for (AUTOMATIC, dict storage)"))
    sizes = ", ".join(f"{kind} {event_size(kind):.0f} B" for kind in arguments.kinds)
    print(f"event sizes: {sizes}; best of {arguments.repeats} runs", flush=True)
    outcome = asyncio.run(main(arguments))
    print()
    print(report(outcome))
    write_json(arguments.json_out, outcome)
