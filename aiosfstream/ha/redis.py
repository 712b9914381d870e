"""A lease kept in Redis: one key that at most one replica holds at a time.

The key ``<key_prefix><name>`` exists while a replica holds the lease and expires after
``ttl`` unless its holder renews it; ``<key_prefix><name>:fencing`` counts the
acquisitions, and each holding's count is its fencing token.  Acquiring, renewing and
releasing are Lua scripts, which Redis runs atomically: the last two change the key only
if it still holds the value of this holding.

The holder also keeps time itself, on the local monotonic clock: it counts the lease lost
once ``ttl`` has passed, less a margin, since it *sent* the last renewal that succeeded,
whether or not Redis answers.  Redis started counting when the command arrived, later, so
the holder stops before any other replica can acquire the key.

redis-py is imported when a lease is created, not when this module is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import secrets
import time
from typing import TYPE_CHECKING

from aiosfstream.exceptions import ClientInvalidOperation, LeaseLost
from aiosfstream.ha.lease import Lease
from aiosfstream.stores.redis import connect_redis

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["RedisLease"]

_logger = logging.getLogger(__name__)

#: Share of the ttl by which the holder counts its lease lost before Redis can expire it.
#: It covers a local clock that runs slower than the server's: NTP keeps that drift below
#: 0.05 %, twenty times less.
CLOCK_MARGIN = 0.01

# KEYS[1]: the lease's key, KEYS[2]: its fencing counter.  ARGV: a random holder id, the
# ttl in ms.  Takes the lease if nobody holds it and returns the new fencing token, else
# nil.  The key then holds the holder id and the token, a value no other acquisition
# holds even if Redis lost the counter.  The counter moves before the key is written, so a
# counter that is not a number fails the script before it takes the lease.  Run again by
# the same attempt (its reply was lost, and the connection retried it), it answers the
# token it gave the first time rather than leave the lease to nobody until it expires.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local mine = ARGV[1] .. ':'
  if string.sub(current, 1, #mine) == mine then
    return tonumber(string.sub(current, #mine + 1))
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%s:%d', ARGV[1], token), 'PX', ARGV[2])
return token
"""

# KEYS[1]: the lease's key.  ARGV: the holding's value, then the ttl in ms to renew the
# lease, or nothing to release it.  Returns 1 if the key held that value, else 0 and
# leaves the key alone: it belongs to another holding.
_IF_HOLDER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""


def _seconds(name: str, value: object) -> float:
    """*value*, a positive finite number of seconds, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _failure(error: Exception, timeout: float) -> str:
    """What went wrong with a Redis call that raised *error*, for messages."""
    if isinstance(error, asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"{type(error).__name__}: {error}"


@dataclasses.dataclass(eq=False)
class _Holding:
    """One acquisition of the lease, from acquire() until it is lost or released."""

    #: What the lease's key holds while this holding has it.
    value: str
    token: int
    #: The time.monotonic() at which the last successful acquisition or renewal was sent.
    sent: float
    #: Seconds after *sent* when the holder counts the lease lost: the ttl less the margin.
    lifetime: float
    #: Why the holding ended, once it ended.
    ended: asyncio.Future[LeaseLost]
    renewer: asyncio.Task[None] | None = None

    @property
    def deadline(self) -> float:
        """The time.monotonic() at which the holding ends unless renewed before."""
        return self.sent + self.lifetime

    @property
    def valid(self) -> bool:
        return not self.ended.done() and time.monotonic() < self.deadline


class RedisLease(Lease):
    """A lease in Redis, renewed in the background while held.

    :param url_or_client: a Redis URL (``redis://``, ``rediss://``, ``unix://``), or a
        :class:`redis.asyncio.Redis` client, which the lease uses but never closes
    :param name: names the lease: replicas that share a name compete for it
    :param ttl: seconds after which Redis frees the lease of a holder that stopped renewing
        it, which bounds how long a crashed holder keeps the standbys waiting
    :param renew_every: seconds between renewals, ``ttl / 3`` by default, and the timeout
        of each Redis call; less than *ttl*
    :param key_prefix: prepended to *name* to make the lease's key
    :param poll_interval: seconds between a standby's attempts to acquire the lease,
        *renew_every* by default
    :raises ImportError: redis-py is not installed (``pip install aiosfstream[redis]``)
    :raises TypeError: an argument has the wrong type
    :raises ValueError: an argument is out of range, or the URL is not a Redis URL

    The holder counts the lease lost when a renewal finds that the key no longer holds
    its value (it expired, or another replica took it), and when no renewal succeeded
    for *ttl* less 1 % (:data:`~aiosfstream.ha.redis.CLOCK_MARGIN`), measured on the
    local monotonic clock from the moment the last successful renewal was sent.  A Redis
    error during renewal is retried every *renew_every* until then.  :attr:`held` reads
    the clock itself, so it turns ``False`` on time even when the event loop was blocked
    past the deadline.

    The acquiring script touches the key and its counter, which Redis Cluster allows
    only when both are in one hash slot: give *name* (or *key_prefix*) a hash tag, e.g.
    ``"{orders}"``, and a fenced :class:`~aiosfstream.stores.RedisReplayStorage` the same
    tag in its prefix.  The lease takes a :class:`redis.asyncio.Redis` client, not
    redis-py's cluster client, so today that means one node that serves every slot.
    """

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        name: str,
        *,
        ttl: float = 10.0,
        renew_every: float | None = None,
        key_prefix: str = "aiosfstream:lease:",
        poll_interval: float | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty")
        if not isinstance(key_prefix, str):
            raise TypeError(f"key_prefix must be a str, got {type(key_prefix).__name__}")
        self._ttl = _seconds("ttl", ttl)
        if renew_every is None:
            self._renew_every = self._ttl / 3
        else:
            self._renew_every = _seconds("renew_every", renew_every)
            if self._renew_every >= self._ttl:
                raise ValueError(
                    f"renew_every must be less than ttl ({self._ttl:g} s), got {renew_every!r}"
                )
        self._poll_interval = (
            self._renew_every if poll_interval is None else _seconds("poll_interval", poll_interval)
        )
        connection = connect_redis(url_or_client, type(self).__name__)
        self._client = connection.client
        self._where = connection.where
        self._owns_client = connection.owned
        self._redis_error = connection.error
        self._key = f"{key_prefix}{name}"
        self._ttl_ms = math.ceil(self._ttl * 1000)
        self._acquire_script: AsyncScript = self._client.register_script(_ACQUIRE)
        self._if_holder_script: AsyncScript = self._client.register_script(_IF_HOLDER)
        self._holding: _Holding | None = None
        self._acquiring = False
        self._closed = False

    def __repr__(self) -> str:
        state = f"held fencing_token={self.fencing_token}" if self.held else "not held"
        return (
            f"<{type(self).__name__} {self._where} key={self._key!r} ttl={self._ttl:g} "
            f"renew_every={self._renew_every:g} {state}>"
        )

    # -- what it is ---------------------------------------------------------------------

    @property
    def client(self) -> redis.asyncio.Redis:
        """The Redis client."""
        return self._client

    @property
    def key(self) -> str:
        """The Redis key of the lease; its fencing counter is this key plus ``:fencing``."""
        return self._key

    @property
    def ttl(self) -> float:
        """Seconds after which Redis frees the lease unless its holder renews it."""
        return self._ttl

    @property
    def renew_every(self) -> float:
        """Seconds between renewals, and the timeout of each Redis call."""
        return self._renew_every

    @property
    def poll_interval(self) -> float:
        """Seconds between a standby's attempts to acquire the lease."""
        return self._poll_interval

    @property
    def held(self) -> bool:
        """``True`` from :meth:`acquire` returning until the lease is lost or released."""
        return self._holding is not None and self._holding.valid

    @property
    def fencing_token(self) -> int | None:
        """The fencing token of the current holding, ``None`` when the lease is not held."""
        return self._holding.token if self._holding is not None and self.held else None

    @property
    def holder_value(self) -> str | None:
        """What :attr:`key` holds while this holding has it; ``None`` when not held."""
        return self._holding.value if self._holding is not None and self.held else None

    # -- holding it -----------------------------------------------------------------------

    async def acquire(self, *, timeout: float | None = None) -> int:
        """Wait until this replica holds the lease, then renew it in the background.

        While another replica holds the lease, tries again every :attr:`poll_interval`;
        a Redis error is logged and tried again the same way.

        :param timeout: most seconds to wait; ``None`` waits as long as it takes
        :return: the fencing token of the new holding
        :raises TimeoutError: the lease was not acquired within *timeout*
        :raises ~aiosfstream.exceptions.ClientInvalidOperation: the lease is already held,
            being acquired, or closed
        """
        if timeout is not None:
            timeout = _seconds("timeout", timeout)
        if self._closed:
            raise ClientInvalidOperation(f"{self!r} is closed")
        if self._acquiring:
            raise ClientInvalidOperation(f"{self!r} is being acquired already")
        if self.held:
            raise ClientInvalidOperation(f"{self!r} is held already")
        self._acquiring = True
        try:
            holding = await asyncio.wait_for(self._take(), timeout)
        except asyncio.TimeoutError:
            # asyncio's TimeoutError is not the builtin one before Python 3.11.
            raise TimeoutError(
                f"lease {self._key!r} was not acquired within {timeout:g} s"
            ) from None
        finally:
            self._acquiring = False
        self._holding = holding
        renewer = asyncio.create_task(self._keep(holding), name=f"renew lease {self._key!r}")
        renewer.add_done_callback(functools.partial(self._renewer_done, holding))
        holding.renewer = renewer
        return holding.token

    async def wait_lost(self) -> LeaseLost:
        """Wait while the lease is held; return the error saying why it ended.

        Returns at once when the lease is not held.  Cancelling the wait leaves the lease
        as it is.
        """
        holding = self._holding
        if holding is None:
            return LeaseLost(f"lease {self._key!r} is not held")
        return await asyncio.shield(holding.ended)

    async def release(self) -> None:
        """Stop renewing the lease and delete its key if it still holds this holding's value.

        A Redis error is logged, not raised: the key then expires within :attr:`ttl`.
        Calling it when the lease is not held does nothing.
        """
        holding = self._holding
        if holding is None:
            return
        self._holding = None
        # Ended first, so that waiters learn it even if this task is cancelled below.
        self._end(holding, LeaseLost(f"lease {self._key!r} was released"), logging.INFO)
        if holding.renewer is not None:
            holding.renewer.cancel()
            # wait(), not await: this task's own cancellation must not be swallowed.
            await asyncio.wait([holding.renewer])
        try:
            await asyncio.wait_for(
                self._if_holder_script(keys=[self._key], args=[holding.value]),
                self._renew_every,
            )
        except (asyncio.TimeoutError, self._redis_error) as error:
            _logger.warning(
                "%r: could not delete its key, which expires by itself within the ttl: %s",
                self,
                _failure(error, self._renew_every),
            )

    async def close(self) -> None:
        """Release the lease, then close the Redis client if the lease created it.

        Calling it again does nothing.  A pending :meth:`acquire` raises
        :exc:`~aiosfstream.exceptions.ClientInvalidOperation` before its next attempt.
        """
        if self._closed:
            return
        self._closed = True
        await self.release()
        if self._owns_client:
            await self._client.aclose()

    # -- the background work ------------------------------------------------------------

    async def _take(self) -> _Holding:
        """Try to acquire the lease every poll interval until it is ours."""
        while True:
            if self._closed:
                raise ClientInvalidOperation(f"{self!r} was closed while being acquired")
            holder_id = secrets.token_hex(16)
            sent = time.monotonic()
            try:
                token = await asyncio.wait_for(
                    self._acquire_script(
                        keys=[self._key, f"{self._key}:fencing"], args=[holder_id, self._ttl_ms]
                    ),
                    self._renew_every,
                )
            except (asyncio.TimeoutError, self._redis_error) as error:
                _logger.warning(
                    "%r: an attempt to acquire it failed: %s",
                    self,
                    _failure(error, self._renew_every),
                )
            else:
                if token is not None:
                    token = int(token)
                    _logger.info("lease %r acquired, fencing token %d", self._key, token)
                    return _Holding(
                        value=f"{holder_id}:{token}",
                        token=token,
                        sent=sent,
                        lifetime=self._ttl * (1 - CLOCK_MARGIN),
                        ended=asyncio.get_running_loop().create_future(),
                    )
            await asyncio.sleep(self._poll_interval)

    async def _keep(self, holding: _Holding) -> None:
        """Renew *holding* every renew interval until it is refused or runs out of time."""
        next_renewal = holding.sent + self._renew_every
        problem = ""
        while True:
            now = time.monotonic()
            wake = min(next_renewal, holding.deadline)
            if now < wake:
                await asyncio.sleep(wake - now)
                continue
            if now >= holding.deadline:
                self._end(
                    holding,
                    LeaseLost(
                        f"lease {self._key!r} (fencing token {holding.token}) lost: no "
                        f"renewal succeeded within the ttl of {self._ttl:g} s{problem}"
                    ),
                )
                return
            next_renewal = now + self._renew_every
            call_timeout = min(self._renew_every, holding.deadline - now)
            try:
                renewed = await asyncio.wait_for(
                    self._if_holder_script(keys=[self._key], args=[holding.value, self._ttl_ms]),
                    call_timeout,
                )
            except (asyncio.TimeoutError, self._redis_error) as error:
                problem = f" (last failure: {_failure(error, call_timeout)})"
                _logger.warning(
                    "lease %r: a renewal failed, retrying until the lease runs out: %s",
                    self._key,
                    _failure(error, call_timeout),
                )
                continue
            if time.monotonic() >= holding.deadline:
                # The answer came too late (the process was paused, say): the holding
                # already ended by our clock, whatever Redis says.
                continue
            if not renewed:
                self._end(
                    holding,
                    LeaseLost(
                        f"lease {self._key!r} (fencing token {holding.token}) lost: its key "
                        "expired or another replica holds it"
                    ),
                )
                return
            holding.sent = now
            problem = ""

    def _renewer_done(self, holding: _Holding, renewer: asyncio.Task[None]) -> None:
        # A renewer that failed unexpectedly must not leave wait_lost() waiting forever.
        if not renewer.cancelled() and (error := renewer.exception()) is not None:
            self._end(
                holding,
                LeaseLost(f"lease {self._key!r}: its renewal stopped on {error!r}"),
            )

    @staticmethod
    def _end(holding: _Holding, reason: LeaseLost, level: int = logging.WARNING) -> None:
        """Mark *holding* ended, for *reason*, unless it already ended."""
        if not holding.ended.done():
            holding.ended.set_result(reason)
            _logger.log(level, "%s", reason)
