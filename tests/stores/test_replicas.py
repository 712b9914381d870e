"""The proof of active/standby replicas (issue 13): three ``listen --lease`` processes.

One emulator (in the test process) publishes numbered events at a steady rate; three
replicas of the command share one redis-server for the lease and the replay store.  The
test kills the active replica, pauses the next one past the ttl, then restarts Redis, and
checks from what the replicas printed, and from what Redis executed (``MONITOR``), that
one replica printed at a time, that no event was lost, that the re-deliveries stayed
within the bound of docs/replicas.rst, and that the paused replica wrote no marker.

:func:`run_failover` is the scenario; ``benchmarks/failover.py`` runs it with a longer ttl
and prints its timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.testing import SalesforceEmulator
from tests.cli.support import CHANNEL, Command, Finished, command, emulator_env
from tests.helpers import require_tool
from tests.stores.conftest import STARTUP_TIMEOUT, RedisServer, _command

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

NAME = "orders"
LEASE_KEY = f"aiosfstream:lease:{NAME}"
MARKER_KEY = f"aiosfstream:replay:{CHANNEL}"
#: Events published per second.
RATE = 20.0
REPLICAS = 3
#: A replica has caught up when it printed an event at most this many behind the last one
#: published (a quarter of a second at RATE).
CATCH_UP = 5
#: Lines a replica prints before the test calls its output steady (once caught up too).
STEADY = 10
#: Seconds after SIGSTOP during which the stopped replica may still have a marker write in
#: Redis: one it sent before the signal arrived.
IN_FLIGHT = 0.5


class RestartableRedis(RedisServer):
    """A redis-server that keeps its data (append-only file, fsynced per write) across a
    restart on the same port, as a production server with persistence does."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            require_tool("redis-server"),
            "--dir", str(directory), "--appendonly", "yes", "--appendfsync", "always",
        )  # fmt: skip

    def restart(self) -> None:
        """Stop the server (SIGTERM), then start it again with the same command line."""
        self.stop()
        self.process = subprocess.Popen(
            self.process.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            with contextlib.suppress(OSError):
                # LOADING while it reads the append-only file back.
                if _command(self.port, "PING").startswith(b"+PONG"):
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not restart on port {self.port}")
            time.sleep(0.01)


@dataclasses.dataclass(frozen=True)
class Printed:
    """One event line a replica printed."""

    replica: int
    number: int
    #: The test's loop.time() when it read the line.
    read_at: float


@dataclasses.dataclass(frozen=True)
class MarkerWrite:
    """One write of the channel's marker that Redis executed."""

    #: The fencing token in the holder value the writing replica sent with it.
    token: int
    replay_id: int
    #: Redis's wall-clock time of the write.
    at: float


#: A quoted argument of a MONITOR line, with its backslash escapes.
_ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"')
#: A MONITOR line: time, [db client], the command and its arguments.
_MONITOR_LINE = re.compile(r"^\+(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")


def marker_writes(monitor_lines: list[str]) -> tuple[list[MarkerWrite], list[int]]:
    """The marker writes in *monitor_lines*, and the tokens of the writes the fence refused.

    Redis lists a script's own commands (client ``lua``) right after the script's call,
    so each command of the storage's script belongs to the call before it, whose last
    argument is the holder value (random id, colon, fencing token) the storage sent.  A
    refused write runs the GET of the lease's key and nothing more; a marker that is not
    newer runs an HMGET too, and no HSET.
    """
    writes: list[MarkerWrite] = []
    refused: list[int] = []
    token: int | None = None  # of the write script being read, None outside one
    script: list[str] = []  # the commands it ran so far

    def end_of_script() -> None:
        if token is not None and script == ["GET"]:
            refused.append(token)

    for line in monitor_lines:
        match = _MONITOR_LINE.match(line)
        if match is None:
            continue
        at, client, rest = float(match[1]), match[2], match[3]
        words = _ARGUMENT.findall(rest)
        if client == "lua":
            script.append(words[0])
            if token is not None and words[:2] == ["HSET", MARKER_KEY]:
                replay_id = int(words[words.index("replay_id") + 1])
                writes.append(MarkerWrite(token, replay_id, at))
            continue
        end_of_script()
        # The storage's script: EVALSHA sha 2 <marker> <lease> date id sort_date mode holder.
        is_write = len(words) == 10 and words[0].lower() == "evalsha" and words[3] == MARKER_KEY
        token = int(words[9].rpartition(":")[2]) if is_write else None
        script = []
    end_of_script()
    return writes, refused


class RedisMonitor:
    """Every command Redis executes, read through MONITOR, reconnecting after a restart.

    The lines of the few milliseconds between a restart and the reconnection are missed;
    the stored marker is read before and after the restart to cover them.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.lines: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected.wait(), STARTUP_TIMEOUT)

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.005)
                continue
            try:
                writer.write(b"MONITOR\r\n")
                if await reader.readline() == b"+OK\r\n":
                    self._connected.set()
                    while line := await reader.readline():
                        self.lines.append(line.decode("utf-8", errors="replace").rstrip("\r\n"))
            except OSError:
                pass
            finally:
                writer.close()
            await asyncio.sleep(0.005)


@dataclasses.dataclass
class FailoverRun:
    """What happened in one run of :func:`run_failover`; times are the test's loop.time()."""

    ttl: float
    #: Number of each event -> when it was published.
    published: dict[int, float] = dataclasses.field(default_factory=dict)
    #: The emulator's replay id of each event -> its number.
    numbers: dict[int, int] = dataclasses.field(default_factory=dict)
    #: Every event line of every replica, in the order the test read them.
    printed: list[Printed] = dataclasses.field(default_factory=list)
    killed: int = -1
    killed_at: float = 0.0
    stopped: int = -1
    stopped_at: float = 0.0
    stopped_wall: float = 0.0
    continued_at: float = 0.0
    redis_stopped_at: float = 0.0
    redis_started_at: float = 0.0
    redis_started_wall: float = 0.0
    #: The replay id stored when Redis had just started again.
    marker_after_restart: int | None = None
    writes: list[MarkerWrite] = dataclasses.field(default_factory=list)
    #: The fencing tokens of the marker writes the fence refused.
    refused: list[int] = dataclasses.field(default_factory=list)
    #: Each replica's exit.
    finished: list[Finished] = dataclasses.field(default_factory=list)

    def tokens(self, replica: int) -> list[int]:
        """The fencing tokens of *replica*'s acquisitions, from its ``-v`` log."""
        return [
            int(found[1])
            for line in self.finished[replica].cli_log()
            if (found := re.search(r"\(fencing token (\d+)\)$", line))
        ]

    @property
    def acquisitions(self) -> int:
        return sum(len(self.tokens(replica)) for replica in range(REPLICAS))

    def runs(self) -> list[list[Printed]]:
        """The printed lines cut where the printing replica changes."""
        return [
            list(run)
            for _, run in itertools.groupby(self.printed, key=lambda printed: printed.replica)
        ]

    def first_after(self, moment: float, *, besides: int) -> Printed:
        """The first line read after *moment* from another replica than *besides*."""
        return next(p for p in self.printed if p.read_at > moment and p.replica != besides)

    @property
    def failover_after_kill(self) -> float:
        """Seconds from the SIGKILL to the first event the new active printed."""
        return self.first_after(self.killed_at, besides=self.killed).read_at - self.killed_at

    @property
    def failover_after_stop(self) -> float:
        """Seconds from the SIGSTOP to the first event the next active printed."""
        return self.first_after(self.stopped_at, besides=self.stopped).read_at - self.stopped_at

    @property
    def stall_after_restart(self) -> float:
        """The longest wait for the next event from the moment Redis was stopped on."""
        moments = [self.redis_stopped_at]
        moments += [p.read_at for p in self.printed if p.read_at > self.redis_stopped_at]
        return max(later - earlier for earlier, later in itertools.pairwise(moments))

    @property
    def lost(self) -> list[int]:
        """Published numbers no replica printed."""
        printed = {p.number for p in self.printed}
        return [number for number in self.published if number not in printed]

    def redeliveries(self) -> list[tuple[Printed, Printed]]:
        """The consecutive lines (in reading order) that print the same number."""
        return [(a, b) for a, b in itertools.pairwise(self.printed) if a.number == b.number]


@contextlib.asynccontextmanager
async def _publishing(
    emulator: SalesforceEmulator, run: FailoverRun, rate: float
) -> AsyncIterator[None]:
    """Publish numbered events at *rate* per second, on the clock, while the block runs."""
    loop = asyncio.get_running_loop()

    async def publish() -> None:
        start = loop.time()
        for number in itertools.count(1):
            await asyncio.sleep(max(0.0, start + (number - 1) / rate - loop.time()))
            message = emulator.publish(CHANNEL, {"Name": f"order {number}", "Number__c": number})
            run.published[number] = loop.time()
            run.numbers[message["data"]["event"]["replayId"]] = number

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _read_events(replica: int, running: Command, run: FailoverRun) -> None:
    """Record each line *running* prints, with the time it was read, until its stdout ends."""
    assert running.process.stdout is not None
    loop = asyncio.get_running_loop()
    while line := await running.process.stdout.readline():
        number = int(json.loads(line)["data"]["sobject"]["Number__c"])
        run.printed.append(Printed(replica, number, loop.time()))


async def _wait_steady(run: FailoverRun, since: float, besides: set[int], timeout: float) -> int:
    """Wait until a replica not in *besides* prints steadily, caught up, after *since*."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for replica in set(range(REPLICAS)) - besides:
            lines = [p for p in run.printed if p.replica == replica and p.read_at > since]
            if len(lines) >= STEADY and lines[-1].number >= max(run.published) - CATCH_UP:
                return replica
        await asyncio.sleep(0.02)
    raise AssertionError(f"no replica but {besides} printed steadily within {timeout:g} s")


async def _stored_replay_id(redis: RedisServer) -> int | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", redis.port)
    try:
        writer.write(f"HGET {MARKER_KEY} replay_id\r\n".encode())
        if (await reader.readline()).startswith(b"$-1"):
            return None
        return int(await reader.readline())
    finally:
        writer.close()


async def _hand_over_three_times(
    run: FailoverRun, replicas: list[Command], redis: RestartableRedis, step: float
) -> None:
    """SIGKILL the active replica, SIGSTOP the next past the ttl, then restart Redis."""
    loop = asyncio.get_running_loop()
    first = await _wait_steady(run, loop.time(), set(), step)

    run.killed, run.killed_at = first, loop.time()
    replicas[first].process.send_signal(signal.SIGKILL)
    second = await _wait_steady(run, run.killed_at, {first}, step)

    run.stopped, run.stopped_at, run.stopped_wall = second, loop.time(), time.time()
    replicas[second].process.send_signal(signal.SIGSTOP)
    try:
        await _wait_steady(run, run.stopped_at, {first, second}, step)
        # Stopped for longer than the ttl whatever the handover took.
        await asyncio.sleep(max(0.0, run.stopped_at + run.ttl + 1.0 - loop.time()))
    finally:
        replicas[second].process.send_signal(signal.SIGCONT)
    run.continued_at = loop.time()
    # Time to find its lease gone and stand by again; it must print nothing meanwhile.
    await asyncio.sleep(run.ttl)

    run.redis_stopped_at = loop.time()
    await asyncio.to_thread(redis.restart)
    run.redis_started_at, run.redis_started_wall = loop.time(), time.time()
    run.marker_after_restart = await _stored_replay_id(redis)
    await _wait_steady(run, run.redis_started_at, {first}, step)


async def run_failover(
    emulator: SalesforceEmulator, redis: RestartableRedis, ttl: float, rate: float = RATE
) -> FailoverRun:
    """Three replicas; SIGKILL the active one, SIGSTOP the next past the ttl, restart Redis."""
    emulator.create_channel(CHANNEL)
    loop = asyncio.get_running_loop()
    run = FailoverRun(ttl)
    # Long enough for a handover (ttl, a standby's poll, a login) on a loaded machine.
    step = 2 * ttl + 8.0
    args = (
        "listen", "--allow-insecure-http", "-v", "--replay", "all",
        "--replay-store", redis.url, "--lease", redis.url, "--lease-name", NAME,
        "--lease-ttl", f"{ttl:g}", CHANNEL,
    )  # fmt: skip
    env = emulator_env(emulator)
    monitor = RedisMonitor(redis.port)
    await monitor.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(monitor.stop)
        replicas = [
            await stack.enter_async_context(command(*args, env=env)) for _ in range(REPLICAS)
        ]
        readers = [
            asyncio.create_task(_read_events(index, replica, run))
            for index, replica in enumerate(replicas)
        ]
        async with _publishing(emulator, run, rate):
            await _hand_over_three_times(run, replicas, redis, step)
        # The publisher stopped: what it published must still be printed.
        last = max(run.published)
        deadline = loop.time() + step
        while not any(p.number == last for p in run.printed):
            assert loop.time() < deadline, f"event {last} not printed within {step:g} s"
            await asyncio.sleep(0.02)
        for replica in replicas:
            if replica.process.returncode is None:
                replica.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*readers), step)
        run.finished = [await replica.finish() for replica in replicas]
    run.writes, run.refused = marker_writes(monitor.lines)
    return run


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    pytest.importorskip("redis", reason="redis-py is not installed")
    server = RestartableRedis(tmp_path)
    yield server
    server.stop()


#: Short, so that the whole run stays under ~40 s.
TTL = 2.0


async def test_replicas_hand_over_without_loss_and_never_print_together(
    emulator: SalesforceEmulator, restartable_redis: RestartableRedis
) -> None:
    run = await run_failover(emulator, restartable_redis, TTL)
    runs = run.runs()
    stopped = run.stopped

    # At most one replica prints at a time.  Two replicas printing at once would
    # interleave their lines, since the test reads every pipe as soon as a line is in it
    # (each line is flushed) and an event comes every 50 ms: the lines would fall into
    # more runs than the three or four handovers the test causes (kill, stop, perhaps
    # the Redis restart).  And, independently of how late the test reads a line: a
    # replica prints an event only after it was published, so if any event of a run was
    # published after the next run's first line was read, the earlier replica was still
    # printing while the later one printed.
    assert 3 <= len(runs) <= 4, [(r[0].replica, r[0].number, r[-1].number) for r in runs]
    for earlier, later in itertools.pairwise(runs):
        assert all(run.published[p.number] < later[0].read_at for p in earlier)
    assert runs[0][0].replica == run.killed and runs[1][0].replica == stopped
    assert runs[1][0].read_at > run.killed_at
    assert runs[2][0].replica not in (run.killed, stopped)
    assert runs[2][0].read_at > run.stopped_at
    if len(runs) == 4:
        assert runs[3][0].read_at > run.redis_stopped_at

    # Nothing lost; each line the number after the previous one, or the same number
    # again at a handover: at most one re-delivery per handover, the bound of
    # docs/replicas.rst for a consumer that stores each marker once its event is handled
    # (the command stores it once its line is out).
    assert run.lost == []
    for a, b in itertools.pairwise(run.printed):
        assert b.number in (a.number, a.number + 1), (a, b)
    redeliveries = run.redeliveries()
    assert len(redeliveries) <= run.acquisitions - 1
    for a, b in redeliveries:
        assert a.replica != b.replica or b.read_at > run.redis_stopped_at, (a, b)

    # The paused replica printed nothing once it ran again, found its lease lost and
    # stood by again.
    assert [
        p for p in run.printed
        if p.replica == stopped and run.continued_at < p.read_at < run.redis_stopped_at
    ] == []  # fmt: skip
    log = run.finished[stopped].cli_log()
    assert any(line.startswith(f"lost lease '{LEASE_KEY}'") for line in log), log

    # The marker only moved forward, and only the current holder moved it: the tokens of
    # the writes never go back, and the paused replica's token wrote nothing after its
    # pause began (but a write it had sent already).  Redis kept the last marker written
    # before its restart.
    assert run.writes, "MONITOR saw no marker write"
    ids = [write.replay_id for write in run.writes]
    assert ids == sorted(ids)
    tokens = [write.token for write in run.writes]
    assert tokens == sorted(tokens)
    paused_token = run.tokens(stopped)[0]  # its later ones, if any, came after Redis restarted
    assert paused_token in tokens
    assert not [
        write for write in run.writes
        if write.token == paused_token and write.at > run.stopped_wall + IN_FLIGHT
    ]  # fmt: skip
    before_restart = [write for write in run.writes if write.at < run.redis_started_wall]
    # The marker survived the restart; the active replica's next write (sent again on a
    # fresh connection) may already have moved it on before MONITOR was back to see it.
    assert run.marker_after_restart is not None
    assert run.marker_after_restart >= before_restart[-1].replay_id

    # The killed replica died by SIGKILL; the others stopped cleanly on SIGTERM.
    for replica, finished in enumerate(run.finished):
        if replica == run.killed:
            assert finished.code == -signal.SIGKILL
        else:
            assert finished.code == ExitCode.SIGTERM, finished.stderr
            assert "Traceback" not in finished.stderr
