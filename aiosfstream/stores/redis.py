"""Replay markers in Redis, shared by every process that talks to the same server.

Each channel's marker is a hash at ``<key_prefix><channel>`` with three fields: ``date``
(as the marker has it), ``replay_id`` and ``sort_date`` (the date normalised to
``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``, or ``""`` when it has none).  A CometD replay id
(an int) is written in decimal, as 1.0.0.dev0 wrote it; a Pub/Sub replay id (bytes) as
``hex:`` and its bytes in lower-case hexadecimal, which no decimal can be mistaken for:
older versions refuse such a marker instead of misreading it.

:meth:`RedisReplayStorage.store_marker` compares and writes in one Lua script, which Redis
runs atomically: of two processes storing int markers of the same channel at the same
time, the newer marker wins, whatever the order they arrive in.  Bytes ids are never
compared (:func:`aiosfstream.replay.is_newer`): the last one stored wins.

Given a lease (:class:`aiosfstream.ha.RedisLease`), the storage is *fenced*: each write
first checks, in the same script, that the lease's key still holds this holder's value,
and writes nothing otherwise, so a replica that lost the lease cannot move the shared
position, even if it does not know yet that it lost it.

redis-py is imported when a storage is created, not when this module is.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable
from urllib.parse import urlsplit

from aiosfstream.exceptions import LeaseLost, ReplayError
from aiosfstream.replay import ReplayMarker, ReplayOption, parse_marker_date
from aiosfstream.stores._common import DurableStorage, IdRange, check_subscription

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["FencingLease", "RedisReplayStorage"]

#: Most Redis commands one storage has in flight at once; more wait their turn.
_MAX_CONCURRENT_COMMANDS = 32

#: Most decimal digits of a replay id.  Python converts an int to and from text only up to
#: ``sys.get_int_max_str_digits()`` digits, which is never set below 640.
_MAX_DIGITS = 640
#: An int replay id as the storage writes it: no sign on 0, no leading zeros, no spaces.
_CANONICAL_ID = re.compile(rf"0|-?[1-9][0-9]{{0,{_MAX_DIGITS - 1}}}")
#: What a bytes replay id is written after.
_BYTES_PREFIX = "hex:"
#: A bytes replay id as the storage writes it: at least one byte, lower-case hex digits.
_CANONICAL_BYTES_ID = re.compile(rf"{_BYTES_PREFIX}(?:[0-9a-f]{{2}})+")

# KEYS[1]: the channel's hash; KEYS[2], only with a lease: the lease's key.  ARGV: date,
# replay id (decimal, or hex: for bytes), sortable date or '', 'newer' (store only a newer
# marker) or 'any', and with a lease the value its key holds while we hold it.
# Returns 1 (stored), 0 (not newer) or -1 (the lease is not ours: nothing written).
# The lease is checked in the same script as the write, so no other holder can take the
# lease between the check and the write.
# "Newer" follows the same rules as aiosfstream.replay.is_newer: a bytes id on either
# side, or a missing date on either side, makes the candidate newer; otherwise the later
# date wins, and equal dates go to the larger id.
# Lua numbers are doubles, exact only up to 2**53, so ids are never turned into numbers:
# they stay decimal strings, compared by sign, then length, then bytes.  That is exact
# only for the canonical form (no leading zeros, no "+", no spaces), so a stored id in
# any other form is an error rather than a guess.  Lua's own ``<`` on strings follows
# the server's locale, so strings are compared by their bytes.
_WRITE_MARKER = """
local function compare_bytes(a, b)
  if a == b then return 0 end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  if #a < #b then return -1 end
  return 1
end

local function compare_ids(a, b)
  local a_negative = string.sub(a, 1, 1) == '-'
  local b_negative = string.sub(b, 1, 1) == '-'
  if a_negative ~= b_negative then
    if a_negative then return -1 end
    return 1
  end
  local sign = 1
  if a_negative then
    a, b, sign = string.sub(a, 2), string.sub(b, 2), -1
  end
  if #a ~= #b then
    if #a < #b then return -sign end
    return sign
  end
  return sign * compare_bytes(a, b)
end

local function is_int(id)
  return id == '0' or string.find(id, '^%-?[1-9][0-9]*$') ~= nil
end

local function is_bytes(id)
  return string.find(id, '^hex:[0-9a-f]+$') ~= nil and #id % 2 == 0
end

if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[5] then return -1 end
local date, id = ARGV[3], ARGV[2]
if ARGV[4] == 'newer' then
  local current = redis.call('HMGET', KEYS[1], 'replay_id', 'sort_date')
  local current_id, current_date = current[1], current[2]
  if current_id and not is_int(current_id) and not is_bytes(current_id) then
    return redis.error_reply(
      'the replay_id of ' .. KEYS[1] .. ' is not a decimal integer, nor hex: and bytes')
  end
  if current_id and is_int(current_id) and is_int(id)
      and date ~= '' and current_date and current_date ~= '' then
    local order = compare_bytes(date, current_date)
    if order < 0 then return 0 end
    if order == 0 and compare_ids(id, current_id) <= 0 then return 0 end
  end
end
redis.call('HSET', KEYS[1], 'date', ARGV[1], 'replay_id', id, 'sort_date', date)
return 1
"""


class RedisConnection(NamedTuple):
    """A Redis client and what its user needs to know about it."""

    client: redis.asyncio.Redis
    #: The server as messages and ``repr`` show it: the URL without its password.
    where: str
    #: The client was created from a URL, so its user closes it.
    owned: bool
    #: redis-py's root exception, imported with the client.
    error: type[Exception]


#: Seconds a Redis connection or command created from a URL may take before it fails.
REDIS_TIMEOUT = 10.0


def connect_redis(url_or_client: object, owner: str) -> RedisConnection:
    """A client for *url_or_client*, a Redis URL or a :class:`redis.asyncio.Redis` client.

    redis-py is imported here, not when this module is.  *owner* names the class that
    needs the client in the :exc:`ImportError` raised without redis-py.

    :raises TypeError: *url_or_client* is neither
    :raises ValueError: the URL is not a Redis URL
    """
    try:
        import redis.asyncio as redis_asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
    except ImportError as error:
        hint = f"{owner} needs redis-py; install it with: pip install 'aiosfstream[redis]'"
        raise ImportError(hint, name="redis") from error
    if isinstance(url_or_client, str):
        where = _public_url(url_or_client)
        try:
            client = redis_asyncio.Redis.from_url(
                url_or_client,
                # A pooled connection that a restart of Redis closed fails the next
                # command; one retry on a fresh connection hides that (a timeout is not
                # retried: it would double the wait). Every command sent here
                # (compare-and-set scripts, holder-checked renewals, an acquisition that
                # knows its own holder id) can run twice without harm.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                retry_on_error=[RedisConnectionError],
                # No command waits forever on a server that accepts and never answers;
                # the URL's own socket_timeout options take precedence.
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
            )
        except ValueError as error:
            # redis-py's messages do not quote the URL; ours shows it without secrets.
            raise ValueError(f"not a Redis URL: {where!r}: {error}") from None
        return RedisConnection(client, where, True, RedisError)
    if isinstance(url_or_client, redis_asyncio.Redis):
        where = f"<{type(url_or_client).__name__} client>"
        return RedisConnection(url_or_client, where, False, RedisError)
    raise TypeError(
        "url_or_client must be a Redis URL or a redis.asyncio.Redis client, "
        f"got {type(url_or_client).__name__}"
    )


def _sort_date(date: str) -> str:
    """The marker date in the one form that sorts as text, or ``""``."""
    parsed = parse_marker_date(date)
    return "" if parsed is None else parsed.isoformat(timespec="microseconds")


def _public_url(url: str) -> str:
    """*url* without its password or query string, fit for a ``repr``."""
    try:
        parts = urlsplit(url)
        userinfo, has_userinfo, hostinfo = parts.netloc.rpartition("@")
    except ValueError:
        return "<unreadable URL>"
    if has_userinfo:
        user, has_password, _ = userinfo.partition(":")
        hostinfo = f"{user}{':***' if has_password else ''}@{hostinfo}"
    return f"{parts.scheme}://{hostinfo}{parts.path}"


def _encode_id(replay_id: int | bytes) -> str:
    """*replay_id* as the ``replay_id`` field holds it."""
    if isinstance(replay_id, bytes):
        return f"{_BYTES_PREFIX}{replay_id.hex()}"
    return str(replay_id)


def _decode_id(text: str) -> int | bytes | None:
    """The replay id in a ``replay_id`` field, or ``None`` if it is not one the storage wrote.

    Only the forms :func:`_encode_id` writes: int() would also take " 7", "+7" or "0_7",
    which the compare-and-set script cannot order.
    """
    if _CANONICAL_ID.fullmatch(text):
        return int(text)
    if _CANONICAL_BYTES_ID.fullmatch(text):
        return bytes.fromhex(text[len(_BYTES_PREFIX) :])
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


@runtime_checkable
class FencingLease(Protocol):
    """What a fenced storage needs of a lease, such as :class:`aiosfstream.ha.RedisLease`."""

    @property
    def held(self) -> bool:
        """``True`` while this process holds the lease, by its own clock."""

    @property
    def key(self) -> str:
        """The Redis key of the lease."""

    @property
    def holder_value(self) -> str | None:
        """What the key holds while this process holds the lease, else ``None``."""


class RedisReplayStorage(DurableStorage):
    """Keeps replay markers in Redis, where several processes can share them.

    :param url_or_client: a Redis URL (``redis://``, ``rediss://``, ``unix://``), or a
        :class:`redis.asyncio.Redis` client, which the storage uses but never closes
    :param key_prefix: prepended to the channel name to make each marker's key
    :param default_id: the replay id of a channel without a marker: a
        :class:`~aiosfstream.ReplayOption` or a replay id
    :param lease: a :class:`~aiosfstream.ha.RedisLease` on the same Redis server and
        database: the storage then writes only while the lease's key holds this holder's
        value, checked in the same script as the write, and raises
        :exc:`~aiosfstream.exceptions.LeaseLost` otherwise
    :raises ImportError: redis-py is not installed (``pip install aiosfstream[redis]``)
    :raises TypeError: an argument has the wrong type
    :raises ValueError: the URL is not a Redis URL

    A marker is in Redis once :meth:`set_replay_marker` or :meth:`store_marker` returns;
    whether it survives a restart of Redis depends on the server's persistence settings.

    Int replay ids of up to 640 decimal digits are stored and compared exactly; a marker
    with a longer id raises :exc:`~aiosfstream.exceptions.ReplayError` and is not stored.
    Bytes ids (Pub/Sub) are stored whole.

    With a lease, each write's script touches a marker's key and the lease's key, which
    Redis Cluster allows only when both are in one hash slot: put the same hash tag in
    both, e.g. ``key_prefix="aiosfstream:replay:{orders}:"`` here and a lease named
    ``"{orders}"``.  (The storage takes a :class:`redis.asyncio.Redis` client, not
    redis-py's cluster client.)  A lease on another server or database is never found:
    every write raises :exc:`~aiosfstream.exceptions.LeaseLost`.
    """

    _ids = IdRange(
        -(10**_MAX_DIGITS - 1), 10**_MAX_DIGITS - 1, f"of at most {_MAX_DIGITS} decimal digits"
    )

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        *,
        key_prefix: str = "aiosfstream:replay:",
        default_id: int = ReplayOption.NEW_EVENTS,
        lease: FencingLease | None = None,
    ) -> None:
        if not isinstance(key_prefix, str):
            raise TypeError(f"key_prefix must be a str, got {type(key_prefix).__name__}")
        if lease is not None and not isinstance(lease, FencingLease):
            raise TypeError(f"lease must be a RedisLease or None, got {type(lease).__name__}")
        connection = connect_redis(url_or_client, type(self).__name__)
        super().__init__(connection.where, default_id)
        self._key_prefix = key_prefix
        self._client = connection.client
        self._owns_client = connection.owned
        self._redis_error = connection.error
        self._lease = lease
        self._write_script: AsyncScript = self._client.register_script(_WRITE_MARKER)
        self._semaphore: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def client(self) -> redis.asyncio.Redis:
        """The Redis client."""
        return self._client

    @property
    def key_prefix(self) -> str:
        """The prefix of every key the storage writes."""
        return self._key_prefix

    @property
    def lease(self) -> FencingLease | None:
        """The lease that fences the writes, or ``None``."""
        return self._lease

    def key(self, subscription: str) -> str:
        """Return the Redis key of *subscription*'s marker."""
        return f"{self._key_prefix}{subscription}"

    def _settings(self) -> str:
        settings = f"{self._where} key_prefix={self._key_prefix!r} default_id={self.default_id!r}"
        return settings if self._lease is None else f"{settings} lease={self._lease.key!r}"

    # -- the storage interface ------------------------------------------------------

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        """Return the marker of *subscription*, or ``None``.

        :raises ReplayError: Redis failed, the key does not hold a marker, or the
            storage is closed
        """
        check_subscription(subscription)
        key = self.key(subscription)
        async with self._command():
            # Any: redis-py's return type depends on its version.
            reply: Any = self._client.hmget(key, ["date", "replay_id"])
            date, replay_id = await reply
        if date is None and replay_id is None:
            return None
        id_text = _text(replay_id)
        decoded = None if id_text is None else _decode_id(id_text)
        if decoded is None:
            raise ReplayError(f"Redis key {key!r} does not hold a replay marker")
        return ReplayMarker(_text(date) or "", decoded)

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Store *replay_marker* as the marker of *subscription*, newer or not.

        :raises TypeError: *replay_marker* is not a :class:`ReplayMarker`
        :raises ValueError: its replay id is empty ``bytes``
        :raises ReplayError: Redis failed, the replay id has more than 640 digits, or the
            storage is closed
        :raises ~aiosfstream.exceptions.LeaseLost: the storage has a lease, which this
            process does not hold; nothing was written
        """
        await self._write(subscription, self._checked(subscription, replay_marker), "any")

    async def store_marker(self, subscription: str, marker: ReplayMarker) -> None:
        """Store *marker* unless the stored marker of *subscription* is newer.

        The comparison and the write are one atomic step in Redis, so this holds across
        processes too.

        :raises TypeError: *marker* is not a :class:`ReplayMarker`
        :raises ValueError: its replay id is empty ``bytes``
        :raises ReplayError: Redis failed, the replay id has more than 640 digits, the
            stored replay id is not one the storage writes, or the storage is closed
        :raises ~aiosfstream.exceptions.LeaseLost: the storage has a lease, which this
            process does not hold; nothing was written
        """
        await self._write(subscription, self._checked(subscription, marker, "marker"), "newer")

    async def store_markers(self, markers: Mapping[str, ReplayMarker]) -> None:
        """Store several markers, each only if it is newer.

        Every marker is checked first: a marker that cannot be stored raises before any
        is written.  Each marker is then its own atomic step.

        :raises TypeError: *markers* is not a mapping of :class:`ReplayMarker` objects
        :raises ValueError: a replay id is empty ``bytes``
        :raises ReplayError: Redis failed, a replay id has more than 640 digits, or the
            storage is closed
        :raises ~aiosfstream.exceptions.LeaseLost: the storage has a lease, which this
            process does not hold; the markers not written yet are not written
        """
        for subscription, marker in self._checked_batch(markers).items():
            await self._write(subscription, marker, "newer")

    async def _write(
        self, subscription: str, marker: ReplayMarker, mode: Literal["newer", "any"]
    ) -> None:
        """Write *marker* in one script: always (*mode* ``"any"``) or if ``"newer"``."""
        keys = [self.key(subscription)]
        args = [marker.date, _encode_id(marker.replay_id), _sort_date(marker.date), mode]
        lease = self._lease
        async with self._command():
            if lease is not None:
                holder_value = lease.holder_value
                if not lease.held or holder_value is None:
                    # Known here already: no need to ask Redis.
                    raise self._lease_lost(lease, subscription, "this process does not hold it")
                keys.append(lease.key)
                args.append(holder_value)
            written = await self._write_script(keys=keys, args=args)
        if lease is not None and written == -1:
            raise self._lease_lost(lease, subscription, "Redis says another holder has it, or none")

    def _lease_lost(self, lease: FencingLease, subscription: str, why: str) -> LeaseLost:
        return LeaseLost(
            f"Redis replay storage {self._where}: the marker of {subscription!r} was not "
            f"stored: the lease {lease.key!r} is lost ({why})"
        )

    async def close(self) -> None:
        """Close the Redis client if the storage created it; a client passed in stays open.

        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def _open(self) -> None:
        async with self._command():
            reply: Any = self._client.ping()
            await reply

    # -- errors -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _command(self) -> AsyncIterator[None]:
        """Run one Redis command: at most a few at a time, with our errors."""
        self._check_open()
        async with self._slots():
            try:
                yield
            except self._redis_error as error:
                raise ReplayError(f"Redis replay storage {self._where}: {error}") from error

    def _slots(self) -> asyncio.Semaphore:
        # redis-py opens a connection per concurrent command, up to a pool limit past
        # which it fails; this bound keeps a burst of stores below it.  One semaphore per
        # event loop, so a storage can outlive an ``asyncio.run()``.
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore[0] is not loop:
            self._semaphore = (loop, asyncio.Semaphore(_MAX_CONCURRENT_COMMANDS))
        return self._semaphore[1]
