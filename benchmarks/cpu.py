"""CPU time per event in the client process, and a profile of the hot path.

``time.process_time()`` of this process (the client; the server is another process)
divided by the events received, for the client (AUTOMATIC policy, dict storage) and for
the bare aiohttp loop on the same stream: the difference is what the library costs per
event on top of HTTP and JSON decoding.  Then the consumer side alone: ``async for``
over a queue that already holds every event (AUTOMATIC and MANUAL policies).

Then one more client run under pyinstrument (statistical profiler, async-aware): the
top of its call tree and the functions with the most self time are printed.  ``--html``
also saves the HTML profile under ``benchmarks/profiles/`` (git-ignored).

    .venv/bin/python benchmarks/cpu.py
    .venv/bin/python benchmarks/cpu.py --loader orjson --html
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from _support import (
    Run,
    Scenario,
    ServerProcess,
    consume,
    format_table,
    json_loader,
    library_header,
    open_client,
    raw_consume,
    write_json,
)

PROFILES = Path(__file__).resolve().parent / "profiles"


async def cpu_per_event(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    scenario = Scenario("batch", args.kind, batch=args.batch, total=args.total)
    rows: list[dict[str, Any]] = []
    runs: dict[str, tuple[list[Run], list[Run]]] = {loader: ([], []) for loader in args.loaders}
    for _ in range(args.repeats):  # interleaved, so that a slow spell hits every variant
        for loader in args.loaders:
            loads = json_loader(loader)
            runs[loader][0].append(await consume(server, scenario, replay={}, json_loads=loads))
            runs[loader][1].append(await raw_consume(server, scenario, loads=loads))
    for loader, (client, raw) in runs.items():
        best_client = min(run.cpu_us_per_event for run in client)
        best_raw = min(run.cpu_us_per_event for run in raw)
        rows.append(
            {
                "loader": loader,
                "client_us": best_client,
                "raw_us": best_raw,
                "library_us": best_client - best_raw,
            }
        )
    return {"kind": args.kind, "batch": args.batch, "events": args.total, "rows": rows}


def flat_hotspots(session: Any, limit: int) -> list[tuple[str, float]]:
    """Functions by self time (time in their own code), as a share of the profile.

    Waits (pyinstrument's ``[await]`` frames) are summed into one ``[await]`` line.
    """
    from pyinstrument.frame import SELF_TIME_FRAME_IDENTIFIER, SYNTHETIC_LEAF_IDENTIFIERS

    totals: dict[str, float] = {}

    def add(key: str, seconds: float) -> None:
        totals[key] = totals.get(key, 0.0) + seconds

    def visit(frame: Any) -> None:
        key = f"{frame.function}  {frame.file_path_short}:{frame.line_no}"
        own = frame.time - sum(child.time for child in frame.children)
        for child in frame.children:
            if child.identifier == SELF_TIME_FRAME_IDENTIFIER:
                own += child.time
            elif child.identifier in SYNTHETIC_LEAF_IDENTIFIERS:
                add(child.identifier, child.time)
            else:
                visit(child)
        if own > 0:
            add(key, own)

    root = session.root_frame()
    if root is None:
        return []
    visit(root)
    whole = root.time or 1.0
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return [(name, seconds / whole) for name, seconds in ranked[:limit]]


async def profile(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    scenario = Scenario("batch", args.kind, batch=args.batch, total=args.total)
    loads = json_loader(args.profile_loader)
    profiler = Profiler(interval=args.interval, async_mode="enabled")
    client_state: dict[str, Any] = {}
    profiler.start()
    run = await consume(
        server,
        scenario,
        replay={},
        json_loads=loads,
        on_open=lambda client: client_state.update(client=client),
    )
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    tree = profiler.output(
        ConsoleRenderer(unicode=True, color=False, time="percent_of_total", short_mode=False)
    )
    hotspots = flat_hotspots(session, args.top)
    html = None
    if args.html:
        PROFILES.mkdir(exist_ok=True)
        html = (
            PROFILES / f"cpu-{args.kind}-{args.batch}-{args.profile_loader}-{int(time.time())}.html"
        )
        html.write_text(profiler.output_html())
    return {
        "events": run.events,
        "tree": tree,
        "hotspots": hotspots,
        "html": None if html is None else str(html),
    }


async def consumer_side(server: ServerProcess, args: argparse.Namespace) -> dict[str, float]:
    """CPU per event of ``async for`` alone: the client's queue holds every event first.

    With ``max_pending_count=0`` the client fetches the whole stream; once it is queued,
    the loop that takes it out is timed, with the AUTOMATIC and the MANUAL policy
    (MANUAL stores nothing: the difference is the cost of AUTOMATIC's bookkeeping).
    """
    from aiosfstream import ReplayMarkerStoragePolicy

    total = min(args.total, 20_000)
    scenario = Scenario("batch", args.kind, batch=args.batch, total=total)
    result: dict[str, float] = {}
    for policy in (ReplayMarkerStoragePolicy.AUTOMATIC, ReplayMarkerStoragePolicy.MANUAL):
        best = float("inf")
        for _ in range(args.repeats):
            client = await open_client(
                server, scenario, replay={}, max_pending_count=0, replay_storage_policy=policy
            )
            try:
                while client.pending_count < total:  # noqa: ASYNC110 - no event to wait on
                    await asyncio.sleep(0.02)
                count = 0
                start = time.process_time()
                async for _message in client:
                    count += 1
                    if count >= total:
                        break
                best = min(best, (time.process_time() - start) / count * 1e6)
            finally:
                await client.close()
        result[policy.name] = best
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with ServerProcess() as server:
        result = await cpu_per_event(server, args)
        result["consumer"] = await consumer_side(server, args)
        if args.profile:
            result["profile"] = await profile(server, args)
    return result


def report(result: dict[str, Any], tree_lines: int) -> str:
    rows = [
        [
            row["loader"],
            f"{row['client_us']:.1f}",
            f"{row['raw_us']:.1f}",
            f"{row['library_us']:.1f}",
        ]
        for row in result["rows"]
    ]
    headers = ["json", "client µs/event", "raw µs/event", "library µs/event"]
    text = [
        f"{result['events']:,} {result['kind']} events in batches of {result['batch']} "
        "(least CPU of the runs)",
        format_table(headers, rows),
    ]
    consumer = result.get("consumer")
    if consumer:
        text.append(
            f"async for over a full queue alone: {consumer['AUTOMATIC']:.2f} µs/event with "
            f"AUTOMATIC, {consumer['MANUAL']:.2f} with MANUAL (stores nothing)"
        )
    prof = result.get("profile")
    if prof:
        text.append("")
        text.append(f"Functions by self time ({prof['events']:,} events profiled):")
        text.append(
            format_table(
                ["% of time", "function  file:line"],
                [[f"{share:.1%}", name] for name, share in prof["hotspots"]],
            )
        )
        text.append("")
        lines = prof["tree"].splitlines()
        text.append(f"Call tree (first {min(tree_lines, len(lines))} of {len(lines)} lines):")
        text.extend(lines[:tree_lines])
        if prof["html"]:
            text.append(f"HTML profile: {prof['html']}")
    return "\n".join(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=100_000, help="events per run")
    parser.add_argument("--batch", type=int, default=1000, help="events per response")
    parser.add_argument("--kind", default="realistic", help="event kind")
    parser.add_argument(
        "--loaders",
        type=lambda text: [x for x in text.split(",") if x],
        default=["json", "orjson"],
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--profile-loader", default="json", help="decoder of the profiled run")
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval (s)")
    parser.add_argument("--top", type=int, default=25, help="functions listed by self time")
    parser.add_argument("--tree-lines", type=int, default=60, help="call tree lines printed")
    parser.add_argument("--html", action="store_true", help="save an HTML profile")
    parser.add_argument("--json-out", help="also write the results to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    print(library_header("cpu: CPU time per event and hot path profile"), flush=True)
    outcome = asyncio.run(main(arguments))
    print(report(outcome, arguments.tree_lines))
    outcome.get("profile", {}).pop("tree", None)
    write_json(arguments.json_out, outcome)
