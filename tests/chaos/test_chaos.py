"""Chaos: thousands of events to a consumer process that keeps being disturbed.

The test process runs the Salesforce emulator and publishes events at a steady rate on
``/topic/chaos``. A consumer *process* (:mod:`tests.chaos.consumer`) receives them with a
shelf as replay storage and the MANUAL storage policy, and appends ``"<pid> <replayId>"``
to a file for each one. Meanwhile the test cuts every HTTP connection several times,
revokes the access tokens, expires the Bayeux session and SIGKILLs the consumer twice
(restarting it with the same shelf each time).

The at-least-once contract checked at the end:

* lost = 0: every published replay id was written by some consumer process;
* in-process duplicates = 0: no process wrote the same replay id twice.

Duplicates across a restart (an event written by the killed process, whose marker had
not reached the shelf yet, and replayed to the next one) are allowed and are reported.

The shelf is used exactly as the documentation shows it. When Python has neither gdbm nor
ndbm, ``shelve`` uses ``dbm.dumb``, which a SIGKILL could leave unreadable unless the
storage syncs it after every marker: see :func:`test_shelf_marker_survives_sigkill`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import os
import shelve
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest

from aiosfstream import DefaultMappingStorage, ReplayOption
from aiosfstream.testing import SalesforceEmulator
from tests.chaos.consumer import STORAGES

CHANNEL = "/topic/chaos"
#: Events published, and how many per second.
EVENT_COUNT = 3000
RATE = 150.0
#: Seconds between the end of a burst and the kill or drop that follows it: the
#: consumer is then busy with the burst (the kill) or receiving it (the drop).
KILL_PAUSE = 0.05
DROP_PAUSE = 0.002
#: Seconds the consumer gets to write the last event once publishing is over.
DRAIN_TIMEOUT = 45.0
#: Seconds a consumer process gets to log in and subscribe.
STARTUP_TIMEOUT = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Chaos:
    """The consumer process and the record of what was done to it."""

    emulator: SalesforceEmulator
    workdir: Path
    storage: str
    process: asyncio.subprocess.Process | None = None
    runs: int = 0
    pids: list[int] = field(default_factory=list)
    drops: int = 0
    kills: int = 0
    revokes: int = 0
    expiries: int = 0

    @property
    def shelf(self) -> Path:
        return self.workdir / "replay.shelf"

    @property
    def output(self) -> Path:
        return self.workdir / "received.txt"

    def stderr_path(self, run: int) -> Path:
        return self.workdir / f"consumer-{run}.log"

    async def start_consumer(self) -> None:
        """Start a consumer process on the shared shelf and output file."""
        self.runs += 1
        with open_log(self.stderr_path(self.runs)) as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.chaos.consumer",
                self.emulator.url,
                str(self.shelf),
                str(self.output),
                CHANNEL,
                self.storage,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                cwd=REPO_ROOT,
            )
        self.pids.append(self.process.pid)

    async def kill_consumer(self) -> None:
        """SIGKILL the consumer, wait for it to die, and start a new one."""
        assert self.process is not None
        await asyncio.sleep(KILL_PAUSE)
        self.check_alive()
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.kills += 1
        await self.start_consumer()

    async def stop_consumer(self) -> int:
        """SIGTERM the consumer (it closes its client and exits 0); return its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 20)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError("the consumer did not exit within 20 s of SIGTERM") from None

    async def drop(self) -> None:
        await asyncio.sleep(DROP_PAUSE)
        await self.emulator.drop_connections()
        self.drops += 1

    async def revoke(self) -> None:
        assert self.emulator.revoke_tokens() > 0
        self.revokes += 1

    async def expire(self) -> None:
        self.emulator.expire_client()
        self.expiries += 1

    def check_alive(self) -> None:
        """Fail at once, with its logs, if the consumer process died on its own."""
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(
                f"consumer {self.runs} exited with {self.process.returncode}\n"
                f"{self.consumer_logs()}"
            )

    def consumer_logs(self) -> str:
        """The tail of each consumer's stderr, for failure messages."""
        parts = []
        for run in range(1, self.runs + 1):
            lines = self.stderr_path(run).read_text(errors="replace").splitlines()
            parts.append(f"--- consumer {run} (last 15 lines) ---\n" + "\n".join(lines[-15:]))
        return "\n".join(parts)


def open_log(path: Path) -> BinaryIO:
    """Open a consumer's log file for its stderr."""
    return open(path, "wb")


def read_output(path: Path) -> list[tuple[int, int]]:
    """The ``(pid, replay id)`` lines written so far (a torn last line is ignored)."""
    if not path.exists():
        return []
    pairs = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and all(part.isdigit() for part in fields):
            pairs.append((int(fields[0]), int(fields[1])))
    return pairs


async def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, chaos: Chaos
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s\n{chaos.consumer_logs()}")
        chaos.check_alive()
        await asyncio.sleep(0.05)


def subscribed(emulator: SalesforceEmulator) -> bool:
    return any(CHANNEL in emulator.subscriptions(cid) for cid in emulator.client_ids)


@pytest.mark.parametrize("storage", STORAGES)
async def test_at_least_once_under_chaos(storage: str, tmp_path: Path) -> None:
    started = time.monotonic()
    async with SalesforceEmulator(connect_timeout=1.0, client_expiry=2.0) as emulator:
        emulator.create_channel(CHANNEL)
        chaos = Chaos(emulator, tmp_path, storage)
        # Event index -> what happens just before that event is published. The events of
        # a burst are published at once instead of at RATE, so that the consumer has a
        # backlog to work through when the kill or the drop that ends the burst comes.
        schedule: dict[int, Callable[[], Awaitable[None]]] = {
            200: chaos.drop,
            600: chaos.kill_consumer,
            900: chaos.drop,
            1200: chaos.revoke,
            1500: chaos.drop,
            1650: chaos.expire,
            2100: chaos.kill_consumer,
            2500: chaos.drop,
            2800: chaos.drop,
        }
        bursts = [range(400, 600), range(1900, 2100), range(2400, 2500)]
        await chaos.start_consumer()
        try:
            # The shelf starts empty and the storage's default is ALL_EVENTS, so nothing
            # would be missed anyway; waiting for the subscription keeps the run regular.
            await wait_until(
                lambda: subscribed(emulator), STARTUP_TIMEOUT, "no consumer subscribed", chaos
            )
            published: list[int] = []
            publish_start = time.monotonic()
            for index in range(EVENT_COUNT):
                chaos.check_alive()
                action = schedule.get(index)
                if action is not None:
                    await action()
                if not any(index in burst for burst in bursts):
                    delay = publish_start + index / RATE - time.monotonic()
                    await asyncio.sleep(max(delay, 0.0))
                message = emulator.publish(CHANNEL, {"Name": f"event {index}"})
                published.append(message["data"]["event"]["replayId"])
            publish_seconds = time.monotonic() - publish_start
            last = published[-1]
            await wait_until(
                lambda: any(rid == last for _, rid in read_output(chaos.output)),
                DRAIN_TIMEOUT,
                f"the last event ({last}) was not received",
                chaos,
            )
            exit_code = await chaos.stop_consumer()
        finally:
            if chaos.process is not None and chaos.process.returncode is None:
                chaos.process.kill()
                with contextlib.suppress(ProcessLookupError):
                    await chaos.process.wait()
        stats = emulator.stats

    elapsed = time.monotonic() - started
    pairs = read_output(chaos.output)
    seen_by: dict[int, list[int]] = collections.defaultdict(list)
    for pid, replay_id in pairs:
        seen_by[replay_id].append(pid)
    lost = sorted(set(published) - set(seen_by))
    in_process = sorted(
        replay_id for replay_id, pids in seen_by.items() if len(pids) != len(set(pids))
    )
    cross_restart = sorted(replay_id for replay_id, pids in seen_by.items() if len(set(pids)) > 1)
    per_pid = collections.Counter(pid for pid, _ in pairs)
    print(
        f"\nchaos ({storage}): {len(published)} events published in {publish_seconds:.1f} s, "
        f"{len(pairs)} lines written, elapsed {elapsed:.1f} s\n"
        f"  faults: drops={chaos.drops} kills={chaos.kills} revokes={chaos.revokes} "
        f"expiries={chaos.expiries}; consumer processes={chaos.runs}\n"
        f"  lines per process: {[per_pid[pid] for pid in chaos.pids]}\n"
        f"  lost={len(lost)} in-process duplicates={len(in_process)} "
        f"cross-restart duplicates={len(cross_restart)}"
        + (f" (replay ids {cross_restart[0]}..{cross_restart[-1]})" if cross_restart else "")
        + f"\n  emulator: token requests={stats.token_requests} "
        f"handshakes={stats.handshakes} connects={stats.connects} "
        f"subscribes={stats.subscribes} delivered={stats.events_delivered}"
    )
    assert not lost, f"{len(lost)} events lost: {lost[:20]}...\n{chaos.consumer_logs()}"
    assert not in_process, f"duplicates inside one process: {in_process[:20]}"
    assert chaos.drops == 5 and chaos.kills == 2 and chaos.revokes == 1 and chaos.expiries == 1
    assert exit_code == 0, chaos.consumer_logs()
    final_log = chaos.stderr_path(chaos.runs).read_text(errors="replace")
    assert "Traceback" not in final_log, final_log
    assert os.getpid() not in chaos.pids


# -- the minimal reproduction of what the chaos test found --------------------------------

#: Stores the markers of replay ids 255 and 256 (same date) in a shelf on the dbm module
#: argv[2], then dies by SIGKILL, as a consumer killed right after a replay_storage block.
CRASH_SCRIPT = """
import asyncio, importlib, os, shelve, signal, sys
from aiosfstream import DefaultMappingStorage, ReplayOption

async def main(path, backend):
    shelf = shelve.Shelf(importlib.import_module(backend).open(path, "c"))
    storage = DefaultMappingStorage(shelf, ReplayOption.ALL_EVENTS)
    for replay_id in (255, 256):
        event = {"replayId": replay_id, "createdDate": "2024-05-01T10:00:00.000Z"}
        await storage.store_message({"channel": sys.argv[3], "data": {"event": event}})
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def dbm_backends() -> list[str]:
    """``dbm.dumb``, always there, and the default ``dbm`` of this Python if it differs."""
    default: str | None = None
    for name in ("dbm.sqlite3", "dbm.gnu", "dbm.ndbm"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        default = name
        break
    return ["dbm.dumb"] if default is None else ["dbm.dumb", default]


@pytest.mark.parametrize("backend", dbm_backends())
async def test_shelf_marker_survives_sigkill(backend: str, tmp_path: Path) -> None:
    """A marker stored before a SIGKILL is the one the next process subscribes with.

    ``shelve.open`` uses ``dbm.dumb`` when Python has no gdbm or ndbm (this machine's
    Python 3.10 and 3.11, and Windows before 3.13). ``dbm.dumb`` writes a value in place
    but records its new length only in memory until ``sync()`` or ``close()``; a marker
    whose pickle grew (replay id 255 -> 256 takes one more byte) is then read back
    truncated, and the restarted client's ``subscribe()`` dies with
    ``_pickle.UnpicklingError: pickle data was truncated``.
    """
    path = tmp_path / "replay.shelf"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_SCRIPT, str(path), backend, CHANNEL, cwd=REPO_ROOT
    )
    assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL
    storage = DefaultMappingStorage(
        shelve.Shelf(importlib.import_module(backend).open(str(path), "c")),
        ReplayOption.ALL_EVENTS,
    )
    try:
        replay_id = await storage.get_replay_id(CHANNEL)
    except Exception as error:
        raise AssertionError(
            f"the marker stored in a {backend} shelf before a SIGKILL cannot be read back: "
            f"{type(error).__module__}.{type(error).__name__}: {error}"
        ) from error
    finally:
        storage.mapping.close()  # type: ignore[attr-defined]
    assert replay_id == 256
