"""Run every benchmark with small defaults and check the targets.

Each benchmark runs in its own process (so that memory and CPU numbers are its own),
prints its report, and hands its results back as JSON; then one table lists every
target with PASS or FAIL.  Exit status: 0 when every target passes, 1 otherwise.

With ``--baseline DIR`` each benchmark runs twice in a row, first with ``DIR`` first on
``PYTHONPATH`` ("before", e.g. a git worktree of an older commit), then with the
installed library ("after"), and the table shows both: the two see the same machine
conditions, which matters on a shared 2-core machine.

    .venv/bin/python benchmarks/run_all.py                              # about 2 min
    PYTHONPATH=/tmp/baseline .venv/bin/python benchmarks/run_all.py     # "before" only
    .venv/bin/python benchmarks/run_all.py --baseline /tmp/baseline     # both, about 4 min
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import format_table, library_header

HERE = Path(__file__).resolve().parent

#: Each benchmark with the arguments of the quick run.
BENCHMARKS: dict[str, list[str]] = {
    "throughput": ["--total", "30000", "--total-single", "2000", "--repeats", "3"],
    "latency": ["--duration", "10", "--raw-duration", "10", "--rounds", "4"],
    "memory": ["--unbounded", "--one-reply", "10000,50000,100000"],
    "storage": ["--total", "30000", "--repeats", "4", "--max-seconds", "3"],
    "cpu": ["--total", "30000", "--repeats", "2", "--tree-lines", "45"],
}

#: Throughput of the client as a share of the raw ceiling (realistic events, batch 1000).
MIN_RAW_RATIO = 0.95
#: The client with orjson against the stdlib-json raw ceiling.
MIN_ORJSON_OVER_JSON_CEILING = 1.3
MAX_P99_MS = 5.0
#: Latency of the client over the bare aiohttp floor, same run.
MAX_P50_FLOOR_RATIO = 1.10
MAX_P99_FLOOR_RATIO = 1.15
#: Peak RSS growth when every queued event comes in one reply, and its growth between
#: the 50k and 100k replies (flat: it does not scale with the reply).
MAX_ONE_REPLY_GROWTH_MB = 25.0
MAX_ONE_REPLY_SCALING_MB = 5.0
MAX_PEAK_RSS_MB = 100.0
#: RSS may grow this much between the first and the last checkpoint and still be flat.
MAX_RSS_GROWTH_MB = 5.0
MIN_STORAGE_RATIO = {"sqlite": 0.5, "sqlite-0.1s": 0.9, "redis": 0.5}
#: orjson counts as measurably faster when the client gains at least this factor.
MIN_ORJSON_SPEEDUP = 1.10

#: (measure, target, measured value, True/False for a target, None for information)
Check = tuple[str, str, str, bool | None]


def _k(rate: float) -> str:
    return f"{rate / 1000:.1f}k/s"


def throughput_checks(result: dict[str, Any]) -> list[Check]:
    rows = {(r["kind"], r["batch"], r["loader"]): r for r in result["rows"]}
    checks: list[Check] = []
    for loader in ("json", "orjson"):
        row = rows.get(("realistic", 1000, loader))
        if row is not None:
            checks.append(
                (
                    f"client / raw, realistic, batch 1000, {loader}",
                    f">= {MIN_RAW_RATIO}" if loader == "json" else "(info)",
                    f"{row['ratio']:.2f} ({_k(row['client_rate'])} / {_k(row['raw_rate'])})",
                    row["ratio"] >= MIN_RAW_RATIO if loader == "json" else None,
                )
            )
    for kind, batch in (("tiny", 1000), ("realistic", 1)):
        row = rows.get((kind, batch, "json"))
        if row is not None:
            checks.append(
                (
                    f"client / raw, {kind}, batch {batch}, json",
                    "(info)",
                    f"{row['ratio']:.2f} ({_k(row['client_rate'])} / {_k(row['raw_rate'])})",
                    None,
                )
            )
    json_row = rows.get(("realistic", 1000, "json"))
    orjson_row = rows.get(("realistic", 1000, "orjson"))
    if json_row and orjson_row:
        over = orjson_row["client_rate"] / json_row["raw_rate"]
        checks.append(
            (
                "client with orjson / raw ceiling with json, realistic, batch 1000",
                f">= {MIN_ORJSON_OVER_JSON_CEILING:.2f}x",
                f"{over:.2f}x ({_k(orjson_row['client_rate'])} / {_k(json_row['raw_rate'])})",
                over >= MIN_ORJSON_OVER_JSON_CEILING,
            )
        )
        speedup = orjson_row["client_rate"] / json_row["client_rate"]
        checks.append(
            (
                "orjson speed-up of the client, realistic, batch 1000",
                f">= {MIN_ORJSON_SPEEDUP:.2f}x",
                f"{speedup:.2f}x",
                speedup >= MIN_ORJSON_SPEEDUP,
            )
        )
    return checks


def latency_checks(result: dict[str, Any]) -> list[Check]:
    client = result["client"]
    raw = result.get("raw")
    shown = f"{client['p99']:.2f} ms (p50 {client['p50']:.2f}, max {client['max']:.1f})"
    checks: list[Check] = [
        (
            f"latency p99 at {result['rate']:g} events/s",
            f"< {MAX_P99_MS:g} ms",
            shown,
            client["p99"] < MAX_P99_MS,
        )
    ]
    if raw:
        checks.append(
            (
                "latency p99, bare aiohttp loop",
                "(info)",
                f"{raw['p99']:.2f} ms (p50 {raw['p50']:.2f}, max {raw['max']:.1f})",
                None,
            )
        )
        for name, limit in (("p50", MAX_P50_FLOOR_RATIO), ("p99", MAX_P99_FLOOR_RATIO)):
            ratio = result[f"{name}_ratio"]
            checks.append(
                (
                    f"latency {name}, client / floor",
                    f"<= {limit:.2f}x",
                    f"{ratio:.2f}x ({client[name]:.3f} / {raw[name]:.3f} ms)",
                    ratio <= limit,
                )
            )
    return checks


def memory_checks(result: dict[str, Any]) -> list[Check]:
    points = result["bounded"]
    at = "/".join(f"{p['events'] // 1000}k" for p in points)
    rss = " / ".join(f"{p['rss_mb']:.1f}" for p in points)
    checks: list[Check] = [
        (
            f"peak RSS, max_pending_count={result['max_pending']}",
            f"< {MAX_PEAK_RSS_MB:g} MB",
            f"{result['peak_mb']:.1f} MB",
            result["peak_mb"] < MAX_PEAK_RSS_MB,
        ),
        (
            f"RSS growth over {at} events",
            f"<= {MAX_RSS_GROWTH_MB:g} MB",
            f"{result['growth_mb']:+.1f} MB ({rss})",
            result["growth_mb"] <= MAX_RSS_GROWTH_MB,
        ),
    ]
    replies = {point["events"]: point for point in result.get("one_reply", [])}
    for events, point in replies.items():
        checks.append(
            (
                f"peak RSS growth, {events // 1000}k events in one reply",
                f"<= {MAX_ONE_REPLY_GROWTH_MB:g} MB" if events == 50_000 else "(info)",
                f"{point['growth_mb']:+.1f} MB",
                point["growth_mb"] <= MAX_ONE_REPLY_GROWTH_MB if events == 50_000 else None,
            )
        )
    if 50_000 in replies and 100_000 in replies:
        scaling = replies[100_000]["peak_mb"] - replies[50_000]["peak_mb"]
        checks.append(
            (
                "peak RSS, 100k over 50k events in one reply",
                f"<= {MAX_ONE_REPLY_SCALING_MB:g} MB",
                f"{scaling:+.1f} MB",
                scaling <= MAX_ONE_REPLY_SCALING_MB,
            )
        )
    if result.get("unbounded"):
        checks.append(
            (
                "peak RSS, max_pending_count=0",
                "(info)",
                f"{result['unbounded'][-1]['peak_mb']:.1f} MB",
                None,
            )
        )
    return checks


def storage_checks(result: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    for row in result["rows"]:
        name = row["storage"]
        minimum = MIN_STORAGE_RATIO.get(name)
        exact = row["markers"] == "exact"
        if name == "dict":
            shown = f"{_k(row['rate'])}"
        else:
            shown = f"{row['ratio']:.2f} ({_k(row['rate'])})"
        if not exact:
            shown += f", markers {row['markers']}"
        ok: bool | None = None if exact else False
        if minimum is not None:
            ok = exact and row["ratio"] >= minimum
        target = f">= {minimum}" if minimum is not None else "(info)"
        label = "storage dict: events/s" if name == "dict" else f"storage {name} / dict"
        checks.append((label, target, shown, ok))
    return checks


def cpu_checks(result: dict[str, Any]) -> list[Check]:
    checks: list[Check] = [
        (
            f"library CPU per event, {row['loader']}",
            "(info)",
            f"{row['library_us']:.1f} µs (client {row['client_us']:.1f}, raw {row['raw_us']:.1f})",
            None,
        )
        for row in result["rows"]
    ]
    consumer = result.get("consumer")
    if consumer:
        checks.append(
            (
                "async for over a full queue, CPU per event",
                "(info)",
                f"{consumer['AUTOMATIC']:.2f} µs (MANUAL {consumer['MANUAL']:.2f})",
                None,
            )
        )
    return checks


CHECKS: dict[str, Callable[[dict[str, Any]], list[Check]]] = {
    "throughput": throughput_checks,
    "latency": latency_checks,
    "memory": memory_checks,
    "storage": storage_checks,
    "cpu": cpu_checks,
}


def run(name: str, out: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """Run benchmark *name* in a child process; return its JSON results."""
    command = [sys.executable, str(HERE / f"{name}.py"), *BENCHMARKS[name], "--json-out", str(out)]
    where = f"PYTHONPATH={env['PYTHONPATH']} " if env.get("PYTHONPATH") else ""
    print(f"\n$ {where}python {name}.py {' '.join(BENCHMARKS[name])}", flush=True)
    status = subprocess.run(command, env=env, check=False).returncode
    if status != 0 or not out.exists():
        print(f"!! {name} failed with exit status {status}", flush=True)
        return None
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def checks_of(name: str, result: dict[str, Any] | None) -> list[Check]:
    if result is None:
        return [(name, "runs", "failed", False)]
    return CHECKS[name](result)


VERDICTS = {True: "PASS", False: "FAIL", None: ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        type=lambda text: [x for x in text.split(",") if x],
        default=list(BENCHMARKS),
        help=f"comma-separated, from {','.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--baseline", metavar="DIR", help="also run each benchmark with DIR first on PYTHONPATH"
    )
    parser.add_argument("--json-out", help="write every result and the checks to this file")
    args = parser.parse_args()
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")

    after_env = dict(os.environ)
    states: dict[str, dict[str, str]] = {}
    if args.baseline:
        after_env.pop("PYTHONPATH", None)
        states["before"] = {**after_env, "PYTHONPATH": str(Path(args.baseline).resolve())}
    states["after" if args.baseline else "run"] = after_env

    header = library_header("run_all: every benchmark, quick settings")
    print(header)
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {state: {} for state in states}
    checks: dict[str, list[Check]] = {state: [] for state in states}
    with tempfile.TemporaryDirectory(prefix="aiosfstream-bench-") as tmp:
        for name in args.only:
            found: dict[str, list[Check]] = {}
            for state, env in states.items():
                result = run(name, Path(tmp) / f"{name}-{state}.json", env)
                if result is not None:
                    results[state][name] = result
                found[state] = checks_of(name, result)
            # Pad so that the rows of the states line up, even when a run failed.
            longest = max(len(found_checks) for found_checks in found.values())
            for state, found_checks in found.items():
                missing: Check = (name, "", "-", None)
                checks[state].extend(found_checks + [missing] * (longest - len(found_checks)))
    elapsed = time.monotonic() - started

    print()
    for state in states:
        libraries = {r["library"]["aiosfstream"] for r in results[state].values()}
        gits = {r["library"]["git"] for r in results[state].values()}
        label = f"{state}: " if args.baseline else ""
        print(f"{label}aiosfstream {', '.join(sorted(libraries))} (git {', '.join(sorted(gits))})")
    cpus = os.cpu_count()
    print(f"machine: {cpus} CPUs; the benchmarks took {elapsed:.0f} s")
    if args.baseline:
        rows = []
        for old, new in zip(checks["before"], checks["after"], strict=True):
            # A failed or padded row has only the benchmark's name: take the other's label.
            label, target = new[:2] if len(new[0]) >= len(old[0]) else old[:2]
            rows.append([label, target, old[2], VERDICTS[old[3]], new[2], VERDICTS[new[3]]])
        print(format_table(["measure", "target", "before", "", "after", ""], rows))
    else:
        rows = [[label, target, shown, VERDICTS[ok]] for label, target, shown, ok in checks["run"]]
        print(format_table(["measure", "target", "measured", "result"], rows))
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {"results": results, "checks": checks, "elapsed": elapsed}, indent=2, default=str
            )
        )
    final = checks["after" if args.baseline else "run"]
    return 0 if all(ok is not False for *_, ok in final) else 1


if __name__ == "__main__":
    sys.exit(main())
