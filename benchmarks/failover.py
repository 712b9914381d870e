"""Failover of ``listen --lease`` replicas: how long a handover takes, what it re-delivers.

The scenario of ``tests/stores/test_replicas.py`` (three replicas of the command, one
emulator publishing numbered events at a steady rate, one redis-server), with a ttl of
5 s by default: SIGKILL the active replica, SIGSTOP the next one past the ttl, then
restart Redis.  Prints the time from each fault to the first event printed by the
replica that took over, the re-deliveries at each handover, and the events lost.

Run from the repository root, with redis-server on the PATH::

    python benchmarks/failover.py [--ttl 5] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiosfstream.testing import SalesforceEmulator  # noqa: E402
from tests.stores.test_replicas import RATE, FailoverRun, RestartableRedis, run_failover  # noqa: E402

#: The issue's target for the time from a crash to the first event of the new active.
TARGET_SLACK = 2.0


async def measure(ttl: float, rate: float) -> FailoverRun:
    with tempfile.TemporaryDirectory() as directory:
        redis = RestartableRedis(Path(directory))
        try:
            async with SalesforceEmulator(connect_timeout=1.0) as emulator:
                return await run_failover(emulator, redis, ttl, rate)
        finally:
            redis.stop()


def report(run: FailoverRun) -> str:
    target = run.ttl + TARGET_SLACK
    handovers = [
        (earlier[-1].replica, later[0].replica, earlier[-1].number - later[0].number + 1)
        for earlier, later in itertools.pairwise(run.runs())
    ]
    lines = [
        f"ttl {run.ttl:g} s, {len(run.published)} events published, "
        f"{len(run.printed)} printed, lost {len(run.lost)}",
        f"SIGKILL of the active -> first event of the new active: {run.failover_after_kill:.2f} s",
        f"SIGSTOP of the active -> first event of the next one:   {run.failover_after_stop:.2f} s",
        f"Redis restarted: the longest wait for the next event:   {run.stall_after_restart:.2f} s",
        f"target: under ttl + {TARGET_SLACK:g} s = {target:g} s: "
        + ("met" if max(run.failover_after_kill, run.failover_after_stop) < target else "NOT met"),
        f"lease acquisitions: {run.acquisitions}; re-deliveries in all: {len(run.redeliveries())}",
    ]
    lines += [
        f"  handover replica {old} -> {new}: {max(count, 0)} re-delivered"
        for old, new, count in handovers
    ]
    lines.append(
        f"marker writes seen by MONITOR: {len(run.writes)}; refused by the fence: "
        f"{len(run.refused)} (fencing tokens {sorted(set(run.refused))})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttl", type=float, default=5.0, help="the lease's ttl (default 5)")
    parser.add_argument(
        "--rate", type=float, default=RATE, help=f"events per second (default {RATE:g})"
    )
    args = parser.parse_args()
    print(report(asyncio.run(measure(args.ttl, args.rate))))


if __name__ == "__main__":
    main()
