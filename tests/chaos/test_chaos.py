"""Chaos: thousands of events to a consumer process that keeps being disturbed.

The test process runs the Salesforce emulator, with a :class:`~tests.hostile.CuttingProxy`
in front of its Bayeux endpoint, and publishes events at a steady rate on ``/topic/chaos``.
A consumer *process* (:mod:`tests.chaos.consumer`) receives them with a shelf as replay
storage and the MANUAL storage policy, also subscribed to a quiet channel (NEW_EVENTS,
nothing published until the end), and appends ``"<pid> <channel> <replayId>"`` to a file
for each event. Meanwhile the test cuts every HTTP connection several times (on the
emulator's side and on the client's), has the proxy lose ``/meta/connect`` replies that
carry events (the emulator believes them delivered), revokes the access tokens while the
token endpoint fails with 5xx pages for a while, expires the Bayeux session and SIGKILLs the
consumer twice (restarting it with the same shelf, once into a token endpoint burst).

The at-least-once contract checked at the end:

* lost = 0: every published replay id was written by some consumer process;
* in-process duplicates = 0: no process wrote the same replay id twice;
* after all that, an event on the quiet channel is delivered too.

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

from aiosfstream import DefaultMappingStorage, ReplayMarkerStoragePolicy, ReplayOption
from aiosfstream.exceptions import HTTPRedirectError
from aiosfstream.testing import SalesforceEmulator
from tests.chaos.consumer import STORAGES
from tests.helpers import emulator_client
from tests.hostile import CuttingProxy, RecordingServer, Rule, reply_carries

CHANNEL = "/topic/chaos"
QUIET = "/topic/chaos-quiet"
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
    proxy: CuttingProxy
    workdir: Path
    storage: str
    process: asyncio.subprocess.Process | None = None
    runs: int = 0
    pids: list[int] = field(default_factory=list)
    drops: int = 0
    cuts: int = 0
    kills: int = 0
    revokes: int = 0
    expiries: int = 0
    token_bursts: int = 0
    #: Rules that lose a /meta/connect reply carrying events; ``hits`` counts the losses.
    losses: list[Rule] = field(default_factory=list)

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
                QUIET,
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

    async def kill_into_token_burst(self) -> None:
        """SIGKILL the consumer; its successor logs in while the token endpoint fails."""
        self.token_burst()
        await self.kill_consumer()

    async def drop(self) -> None:
        """Cut the emulator's side: the proxy passes the cut on."""
        await asyncio.sleep(DROP_PAUSE)
        await self.emulator.drop_connections()
        self.drops += 1

    async def cut(self) -> None:
        """Cut the client's side at the proxy."""
        await asyncio.sleep(DROP_PAUSE)
        self.proxy.cut()
        self.cuts += 1

    async def lose(self) -> None:
        """Lose the next /meta/connect reply that carries events (unless one is pending)."""
        if not any(rule.active for rule in self.losses):
            self.losses.append(self.proxy.drop_reply(reply_carries(CHANNEL)))

    def token_burst(self) -> None:
        """The next two token requests get a 503 page, then a 502 page."""
        self.emulator.fail_next("token", http_status=503)
        self.emulator.fail_next("token", http_status=502)
        self.token_bursts += 1

    async def revoke_into_token_burst(self) -> None:
        """Revoke the tokens: the consumer logs in again while the token endpoint fails."""
        self.token_burst()
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


def read_output(path: Path, channel: str = CHANNEL) -> list[tuple[int, int]]:
    """The ``(pid, replay id)`` lines of *channel* written so far (a torn line is ignored)."""
    if not path.exists():
        return []
    pairs = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if (
            len(fields) == 3
            and fields[1] == channel
            and fields[0].isdigit()
            and fields[2].isdigit()
        ):
            pairs.append((int(fields[0]), int(fields[2])))
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
    return any({CHANNEL, QUIET} <= set(emulator.subscriptions(cid)) for cid in emulator.client_ids)


@pytest.mark.parametrize("storage", STORAGES)
async def test_at_least_once_under_chaos(storage: str, tmp_path: Path) -> None:
    started = time.monotonic()
    async with (
        SalesforceEmulator(connect_timeout=1.0, client_expiry=2.0) as emulator,
        CuttingProxy(emulator.url) as proxy,
    ):
        emulator.create_channel(CHANNEL)
        emulator.create_channel(QUIET)
        emulator.instance_url = proxy.url
        chaos = Chaos(emulator, proxy, tmp_path, storage)
        # Event index -> what happens just before that event is published. The events of
        # a burst are published at once instead of at RATE, so that the consumer has a
        # backlog to work through when the kill or the drop that ends the burst comes.
        schedule: dict[int, Callable[[], Awaitable[None]]] = {
            200: chaos.drop,
            300: chaos.lose,
            600: chaos.kill_consumer,
            750: chaos.lose,
            900: chaos.cut,
            1000: chaos.lose,
            1100: chaos.revoke_into_token_burst,
            1500: chaos.drop,
            1650: chaos.expire,
            1800: chaos.lose,
            2100: chaos.kill_into_token_burst,
            2300: chaos.lose,
            2500: chaos.drop,
            2650: chaos.lose,
            2800: chaos.cut,
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
            quiet = emulator.publish(QUIET, {"Name": "quiet"})["data"]["event"]["replayId"]
            await wait_until(
                lambda: any(rid == quiet for _, rid in read_output(chaos.output, QUIET)),
                10,
                "the event on the quiet channel was not received",
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
    losses = sum(rule.hits for rule in chaos.losses)
    print(
        f"\nchaos ({storage}): {len(published)} events published in {publish_seconds:.1f} s, "
        f"{len(pairs)} lines written, elapsed {elapsed:.1f} s\n"
        f"  faults: drops={chaos.drops} cuts={chaos.cuts} lost replies={losses} "
        f"kills={chaos.kills} revokes={chaos.revokes} token bursts={chaos.token_bursts} "
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
    assert (chaos.drops, chaos.cuts, chaos.kills) == (3, 2, 2)
    assert (chaos.revokes, chaos.token_bursts, chaos.expiries) == (1, 2, 1)
    assert losses >= 4, f"only {losses} replies were lost: the faults did not happen"
    # Every burst was met (two failures each) and followed by a token; the revocation
    # was recovered from inside the process, before the next kill.
    assert stats.tokens_issued >= chaos.runs + chaos.revokes
    assert stats.token_requests >= stats.tokens_issued + 2 * chaos.token_bursts
    assert exit_code == 0, chaos.consumer_logs()
    final_log = chaos.stderr_path(chaos.runs).read_text(errors="replace")
    assert "Traceback" not in final_log, final_log
    assert os.getpid() not in chaos.pids


# -- a redirect is never part of the chaos: it ends the run ---------------------------------


async def test_redirect_mid_stream_ends_the_run_and_reaches_nothing() -> None:
    """A redirect cannot be injected into the chaos run: it is definitive by design.

    The consumer's own settings (MANUAL policy, ``connection_timeout=None``) retry every
    transient failure for ever; a redirect of the Bayeux endpoint must still end the
    stream with :class:`HTTPRedirectError`, and the redirect target must receive nothing,
    neither the session cookie nor the access token.
    """
    async with (
        SalesforceEmulator(connect_timeout=1.0, client_expiry=2.0) as emulator,
        RecordingServer() as target,
    ):
        emulator.create_channel(CHANNEL)
        async with emulator_client(
            emulator.url,
            replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
            connection_timeout=None,
        ) as client:
            await client.subscribe(CHANNEL)
            emulator.publish(CHANNEL, {"Name": "before"})
            message = await asyncio.wait_for(client.receive(), 10)
            assert message["data"]["sobject"]["Name"] == "before"
            location = f"{target.url}/cometd/66.0"
            # The next connect (after the held one, at most 1 s) is redirected.
            emulator.fail_next("connect", http_status=307, headers={"Location": location})
            with pytest.raises(HTTPRedirectError) as caught:
                await asyncio.wait_for(client.receive(), 10)
        assert (caught.value.status, caught.value.location) == (307, location)
        assert target.requests == []


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
        await storage.extract_replay_id({"channel": sys.argv[3], "data": {"event": event}})
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
