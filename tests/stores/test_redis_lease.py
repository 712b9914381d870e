"""Tests for aiosfstream.ha.redis, the Redis lease, against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from aiosfstream.exceptions import ClientInvalidOperation, LeaseLost
from aiosfstream.ha import Lease, RedisLease

from .conftest import RedisServer

if TYPE_CHECKING:
    import redis.asyncio

#: A ttl long enough that a loaded machine renews in time: for tests that hold throughout.
TTL = 2.0
#: A ttl for tests that wait for a lease to run out.
SHORT_TTL = 0.5
#: Slack for the event loop of a loaded machine, in seconds.
SLACK = 1.0


@contextlib.asynccontextmanager
async def leases(url: str, count: int, **options: Any) -> AsyncIterator[list[RedisLease]]:
    """*count* replicas competing for the lease ``orders``."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(RedisLease(url, "orders", **options))
            for _ in range(count)
        ]


async def stays_pending(task: asyncio.Task[Any], seconds: float) -> bool:
    done, _ = await asyncio.wait([task], timeout=seconds)
    return not done


# --- acquiring -----------------------------------------------------------------------


async def test_acquire_holds_the_key(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        assert isinstance(lease, Lease)
        assert not lease.held
        assert lease.fencing_token is None
        assert lease.holder_value is None
        token = await lease.acquire()
        assert token == 1
        assert lease.held
        assert lease.fencing_token == 1
        assert lease.key == "aiosfstream:lease:orders"
        value = await raw.get(lease.key)
        assert value == lease.holder_value
        holder_id, _, value_token = value.rpartition(":")
        assert value_token == "1"
        assert len(holder_id) == 32
        assert await raw.get("aiosfstream:lease:orders:fencing") == "1"
        assert 0 < await raw.pttl(lease.key) <= TTL * 1000


async def test_fencing_tokens_increase_with_each_acquisition(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    values = []
    async with leases(redis_url, 2, ttl=TTL) as (first, second):
        tokens = []
        for lease in (first, second, first, second):
            tokens.append(await lease.acquire(timeout=SLACK))
            values.append(lease.holder_value)
            await lease.release()
    assert tokens == [1, 2, 3, 4]
    assert len(set(values)) == 4
    assert await raw.get("aiosfstream:lease:orders:fencing") == "4"


async def test_the_key_prefix_and_name_make_the_key(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    async with RedisLease(redis_url, "{orders}", key_prefix="app:", ttl=TTL) as lease:
        await lease.acquire()
        assert lease.key == "app:{orders}"
        assert await raw.get("app:{orders}") == lease.holder_value
        assert await raw.get("app:{orders}:fencing") == "1"


async def test_a_standby_waits_until_the_holder_releases(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    async with leases(redis_url, 2, ttl=TTL, poll_interval=0.05) as (active, standby):
        await active.acquire()
        waiting = asyncio.create_task(standby.acquire())
        assert await stays_pending(waiting, 0.5)
        assert not standby.held
        await active.release()
        assert not active.held
        assert await asyncio.wait_for(waiting, SLACK) == 2
        assert standby.held
        assert await raw.get(standby.key) == standby.holder_value


async def test_a_standby_takes_over_when_the_lease_expires(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    # A holder that stopped renewing: it wrote the key and was gone.
    await raw.set("aiosfstream:lease:orders", "crashed-holder:7", px=int(SHORT_TTL * 1000))
    async with RedisLease(redis_url, "orders", ttl=TTL, poll_interval=0.05) as standby:
        started = time.monotonic()
        assert await standby.acquire(timeout=SHORT_TTL + SLACK) == 1
        assert time.monotonic() - started >= SHORT_TTL - 0.05


async def test_a_killed_holder_hands_over_after_the_ttl(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    # A real process, killed with SIGKILL, so it cannot release anything.
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, sys\n"
        "from aiosfstream.ha import RedisLease\n"
        "async def main():\n"
        f"    lease = RedisLease(sys.argv[1], 'orders', ttl={SHORT_TTL})\n"
        "    print(await lease.acquire(), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n",
        redis_url,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"1\n"
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
    async with RedisLease(redis_url, "orders", ttl=SHORT_TTL, poll_interval=0.05) as standby:
        assert await standby.acquire(timeout=SHORT_TTL + SLACK) == 2
        assert time.monotonic() - killed <= SHORT_TTL + SLACK


async def test_acquire_times_out(redis_url: str) -> None:
    async with leases(redis_url, 2, ttl=TTL, poll_interval=0.05) as (active, standby):
        await active.acquire()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"not acquired within 0\.3 s"):
            await standby.acquire(timeout=0.3)
        assert time.monotonic() - started >= 0.3
        assert not standby.held
        await active.release()
        # The timed-out attempt left nothing behind: the standby can try again.
        assert await standby.acquire(timeout=SLACK) == 2


async def test_acquire_while_held_or_acquiring_is_refused(redis_url: str) -> None:
    async with leases(redis_url, 2, ttl=TTL, poll_interval=0.05) as (active, standby):
        await active.acquire()
        with pytest.raises(ClientInvalidOperation, match="held already"):
            await active.acquire()
        waiting = asyncio.create_task(standby.acquire())
        await asyncio.sleep(0.1)
        with pytest.raises(ClientInvalidOperation, match="being acquired"):
            await standby.acquire()
        waiting.cancel()
        await asyncio.wait([waiting])
        # Cancelling the wait let the standby try again.
        with pytest.raises(TimeoutError):
            await standby.acquire(timeout=0.1)


async def test_close_ends_a_pending_acquire(redis_url: str) -> None:
    async with leases(redis_url, 2, ttl=TTL, poll_interval=0.05) as (active, standby):
        await active.acquire()
        waiting = asyncio.create_task(standby.acquire())
        await asyncio.sleep(0.1)
        await standby.close()
        with pytest.raises(ClientInvalidOperation, match="closed"):
            await asyncio.wait_for(waiting, SLACK)
        with pytest.raises(ClientInvalidOperation, match="closed"):
            await standby.acquire()


# --- renewing ------------------------------------------------------------------------


async def test_the_holder_renews_past_the_ttl(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async with RedisLease(redis_url, "orders", ttl=SHORT_TTL, renew_every=0.1) as lease:
        await lease.acquire()
        value = lease.holder_value
        await asyncio.sleep(SHORT_TTL * 4)
        assert lease.held
        assert lease.fencing_token == 1
        assert await raw.get(lease.key) == value


async def test_renewal_is_refused_to_a_former_holder(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    async with leases(redis_url, 2, ttl=TTL, renew_every=0.1) as (first, second):
        await first.acquire()
        # The key expires (simulated) and another replica acquires it.
        await raw.delete(first.key)
        assert await second.acquire(timeout=SLACK) == 2
        taken = second.holder_value
        lost = await asyncio.wait_for(first.wait_lost(), SLACK)
        assert isinstance(lost, LeaseLost)
        assert "another replica holds it" in str(lost)
        assert "fencing token 1" in str(lost)
        assert not first.held
        assert first.fencing_token is None
        assert first.holder_value is None
        # The former holder's renewals did not touch the new holder's key.
        await asyncio.sleep(0.3)
        assert await raw.get(second.key) == taken
        assert second.held


async def test_a_refused_renewal_leaves_the_other_holders_expiry(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL, renew_every=0.1) as lease:
        await lease.acquire()
        await raw.set(lease.key, "other-holder:2", px=800)
        lost = await asyncio.wait_for(lease.wait_lost(), SLACK)
        assert "another replica holds it" in str(lost)
        # A renewal would have set the expiry back to the ttl, 2000 ms.
        assert await raw.get(lease.key) == "other-holder:2"
        assert 0 < await raw.pttl(lease.key) <= 800


async def test_redis_errors_shorter_than_the_ttl_are_retried(
    redis_server: RedisServer, raw: redis.asyncio.Redis
) -> None:
    async with (
        TcpProxy(redis_server.port) as proxy,
        RedisLease(proxy.url, "orders", ttl=TTL, renew_every=0.1) as lease,
    ):
        await lease.acquire()
        value = lease.holder_value
        await proxy.stop()
        await asyncio.sleep(TTL / 3)
        assert lease.held
        await proxy.start()
        await asyncio.sleep(0.5)
        assert lease.held
        assert lease.holder_value == value
        assert 1000 * TTL / 2 < await raw.pttl(lease.key) <= 1000 * TTL


async def test_lost_when_redis_is_unreachable_for_longer_than_the_ttl(
    redis_server: RedisServer, raw: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiosfstream.ha.redis")
    async with (
        TcpProxy(redis_server.port) as proxy,
        RedisLease(proxy.url, "orders", ttl=SHORT_TTL, renew_every=0.1) as lease,
    ):
        await lease.acquire()
        await proxy.stop()
        stopped = time.monotonic()
        lost = await asyncio.wait_for(lease.wait_lost(), SHORT_TTL + SLACK)
        assert time.monotonic() - stopped < SHORT_TTL
        assert "no renewal succeeded within the ttl of 0.5 s" in str(lost)
        assert "last failure: ConnectionError" in str(lost)
        assert not lease.held
        assert "a renewal failed" in caplog.text
        await proxy.start()
        # Standing by again: it gets the lease back once its old key expired.
        assert await lease.acquire(timeout=SHORT_TTL + SLACK) == 2


async def test_lost_when_redis_does_not_answer_for_longer_than_the_ttl(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    # CLIENT PAUSE holds every command on the server: renewals time out.
    async with RedisLease(redis_url, "orders", ttl=SHORT_TTL, renew_every=0.1) as lease:
        await lease.acquire()
        paused = time.monotonic()
        await raw.client_pause(int((SHORT_TTL + SLACK) * 1000), all=True)
        try:
            lost = await asyncio.wait_for(lease.wait_lost(), SHORT_TTL + SLACK)
            assert time.monotonic() - paused < SHORT_TTL
            assert "no answer within" in str(lost)
            assert not lease.held
        finally:
            await raw.client_unpause()


async def test_held_turns_false_on_time_even_if_the_loop_is_blocked(redis_url: str) -> None:
    async with RedisLease(redis_url, "orders", ttl=SHORT_TTL, renew_every=0.1) as lease:
        await lease.acquire()
        # A pause of the whole process (a long GC, a blocking call): no renewal can run.
        time.sleep(SHORT_TTL)  # noqa: ASYNC251 - blocking the loop is the point
        assert not lease.held
        assert lease.fencing_token is None
        lost = await asyncio.wait_for(lease.wait_lost(), SLACK)
        assert "no renewal succeeded" in str(lost)


class BrokenRenewalLease(RedisLease):
    """A lease whose renewal task fails the way a bug in it would."""

    async def _keep(self, holding: object) -> None:
        raise RuntimeError("a bug in the renewal")


async def test_a_failed_renewal_task_ends_the_holding(redis_url: str) -> None:
    async with BrokenRenewalLease(redis_url, "orders", ttl=TTL) as lease:
        await lease.acquire()
        lost = await asyncio.wait_for(lease.wait_lost(), SLACK)
        assert "renewal stopped on RuntimeError('a bug in the renewal')" in str(lost)
        assert not lease.held


# --- releasing -----------------------------------------------------------------------


async def test_release_deletes_the_key(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        await lease.acquire()
        await lease.release()
        assert not lease.held
        assert await raw.exists(lease.key) == 0
        await lease.release()  # idempotent
        lost = await lease.wait_lost()
        assert "not held" in str(lost)


async def test_release_leaves_another_holders_key(redis_url: str, raw: redis.asyncio.Redis) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL, renew_every=TTL / 2) as lease:
        await lease.acquire()
        # Another replica has the key now (ours expired while we did not notice).
        await raw.set(lease.key, "other-holder:2", px=int(TTL * 1000))
        await lease.release()
        assert await raw.get(lease.key) == "other-holder:2"


async def test_wait_lost_returns_when_released(redis_url: str) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        await lease.acquire()
        waiter = asyncio.create_task(lease.wait_lost())
        assert await stays_pending(waiter, 0.2)
        await lease.release()
        lost = await asyncio.wait_for(waiter, SLACK)
        assert "was released" in str(lost)


async def test_cancelling_wait_lost_keeps_the_lease(redis_url: str) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL) as lease:
        await lease.acquire()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lease.wait_lost(), 0.1)
        assert lease.held
        waiter = asyncio.create_task(lease.wait_lost())
        await asyncio.sleep(0)  # the waiter starts waiting
        await lease.release()
        assert "was released" in str(await waiter)


async def test_close_releases_and_keeps_a_client_passed_in(
    raw: redis.asyncio.Redis,
) -> None:
    lease = RedisLease(raw, "orders", ttl=TTL)
    async with lease:
        await lease.acquire()
    assert await raw.exists(lease.key) == 0
    assert await raw.ping()  # still open
    await lease.close()  # idempotent
    assert "<Redis client>" in repr(lease)


# --- arguments and secrets -----------------------------------------------------------


@pytest.fixture
def redis_py() -> None:
    """Skip when redis-py is missing; no server needed."""
    pytest.importorskip("redis", reason="redis-py is not installed")


@pytest.mark.usefixtures("redis_py")
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "names"),
    [
        ((3, "orders"), {}, TypeError, "url_or_client"),
        (("http://127.0.0.1:6379", "orders"), {}, ValueError, "not a Redis URL"),
        (("redis://127.0.0.1", b"orders"), {}, TypeError, "name"),
        (("redis://127.0.0.1", ""), {}, ValueError, "name"),
        (("redis://127.0.0.1", "orders"), {"key_prefix": b"x"}, TypeError, "key_prefix"),
        (("redis://127.0.0.1", "orders"), {"ttl": "10"}, TypeError, "ttl"),
        (("redis://127.0.0.1", "orders"), {"ttl": True}, TypeError, "ttl"),
        (("redis://127.0.0.1", "orders"), {"ttl": 0}, ValueError, "ttl"),
        (("redis://127.0.0.1", "orders"), {"ttl": -1.0}, ValueError, "ttl"),
        (("redis://127.0.0.1", "orders"), {"ttl": float("inf")}, ValueError, "ttl"),
        (("redis://127.0.0.1", "orders"), {"ttl": float("nan")}, ValueError, "ttl"),
        (("redis://127.0.0.1", "orders"), {"renew_every": 0}, ValueError, "renew_every"),
        (("redis://127.0.0.1", "orders"), {"renew_every": 10.0}, ValueError, "renew_every"),
        (("redis://127.0.0.1", "orders"), {"renew_every": "1"}, TypeError, "renew_every"),
        (("redis://127.0.0.1", "orders"), {"poll_interval": 0}, ValueError, "poll_interval"),
        (("redis://127.0.0.1", "orders"), {"poll_interval": None, "ttl": 1}, None, ""),
    ],
)
def test_bad_arguments(
    args: tuple[object, ...],
    kwargs: dict[str, object],
    error: type[Exception] | None,
    names: str,
) -> None:
    if error is None:
        lease = RedisLease(*args, **kwargs)  # type: ignore[arg-type]
        assert (lease.ttl, lease.renew_every, lease.poll_interval) == (1.0, 1 / 3, 1 / 3)
        return
    with pytest.raises(error, match=names):
        RedisLease(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.usefixtures("redis_py")
@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "1"])
async def test_bad_acquire_timeout(timeout: object) -> None:
    async with RedisLease("redis://127.0.0.1:1/0", "orders") as lease:
        with pytest.raises((TypeError, ValueError), match="timeout"):
            await lease.acquire(timeout=timeout)  # type: ignore[arg-type]


def test_missing_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    monkeypatch.setitem(sys.modules, "redis.exceptions", None)
    with pytest.raises(ImportError, match=r"RedisLease needs redis-py.*aiosfstream\[redis\]"):
        RedisLease("redis://127.0.0.1:6379/0", "orders")


@pytest.mark.usefixtures("redis_py")
async def test_repr_and_logs_hide_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "redis://alice:s3cr3t-pw@127.0.0.1:1/0?password=s3cr3t-pw"
    async with RedisLease(url, "orders", ttl=0.3, poll_interval=0.05) as lease:
        assert repr(lease) == (
            "<RedisLease redis://alice:***@127.0.0.1:1/0 key='aiosfstream:lease:orders' "
            "ttl=0.3 renew_every=0.1 not held>"
        )
        with pytest.raises(TimeoutError) as caught:
            await lease.acquire(timeout=0.3)  # nothing listens on port 1
    assert "an attempt to acquire it failed" in caplog.text
    assert "127.0.0.1:1" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(ValueError, match="not a Redis URL") as bad:
        RedisLease("http://bob:s3cr3t-pw@127.0.0.1/0", "orders")
    assert "s3cr3t" not in str(bad.value)


async def test_repr_of_a_holder(redis_url: str) -> None:
    async with RedisLease(redis_url, "orders", ttl=TTL, renew_every=0.5) as lease:
        await lease.acquire()
        assert repr(lease).endswith("ttl=2 renew_every=0.5 held fencing_token=1>")
        assert lease.holder_value is not None
        assert lease.holder_value not in repr(lease)


# --- a TCP proxy, to make Redis unreachable and reachable again ----------------------


class TcpProxy:
    """Forwards a port of 127.0.0.1 to a Redis server; stop() drops every connection."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again, on the same port)."""
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in self._writers:
            writer.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.wait_for(self._server.wait_closed(), SLACK)
        if self._pipes:
            await asyncio.wait(self._pipes)
        self._server = None

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers |= {writer, target_writer}
        pipes = {
            asyncio.create_task(self._pipe(reader, target_writer)),
            asyncio.create_task(self._pipe(target_reader, writer)),
        }
        self._pipes |= pipes
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.wait(pipes)
        self._pipes -= pipes
        for each in (writer, target_writer):
            each.close()
            self._writers.discard(each)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def test_an_acquisition_run_twice_answers_the_same_token(raw: redis.asyncio.Redis) -> None:
    # The connection retries a command whose reply a Redis restart lost: the attempt's
    # second run must find the lease it took, not leave it to nobody until it expires.
    from aiosfstream.ha.redis import _ACQUIRE

    keys = ["aiosfstream:lease:orders", "aiosfstream:lease:orders:fencing"]
    first = await raw.eval(_ACQUIRE, 2, *keys, "attempt-1", 5000)
    again = await raw.eval(_ACQUIRE, 2, *keys, "attempt-1", 5000)
    other = await raw.eval(_ACQUIRE, 2, *keys, "attempt-2", 5000)
    assert first == again == 1
    assert other is None
    assert await raw.get(keys[0]) == "attempt-1:1"
