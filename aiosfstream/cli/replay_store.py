"""Opening the replay store of ``listen --replay-store``: an SQLite file or a Redis URL.

A ``redis://``, ``rediss://`` or ``unix://`` URL names a Redis server, which replicas of
the command on several machines can share; anything else is the path of an SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiosfstream.cli.errors import ReplayStoreError, UsageError
from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import ReplayMarkerStorage
from aiosfstream.stores import RedisReplayStorage, SQLiteReplayStorage

if TYPE_CHECKING:
    from aiosfstream.ha import RedisLease

__all__ = ["REDIS_SCHEMES", "is_redis_url", "open_replay_store", "shown_url", "url_password"]

#: The URL schemes that make ``--replay-store`` a Redis server rather than a file.
REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_redis_url(target: str) -> bool:
    """Whether the ``--replay-store`` *target* names a Redis server."""
    scheme, separator, _ = target.partition("://")
    return bool(separator) and scheme.lower() in REDIS_SCHEMES


def url_password(url: str) -> str | None:
    """The password in *url*, which the command hides in every line it writes."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def shown_url(url: str) -> str:
    """*url* as the command's messages show it: without user, password or query.

    Text that is no URL (a file name) is shown as it is.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unreadable URL>"
    return f"{parts.scheme}://{host}{parts.path}"


def _storage(
    target: str, default_id: int, lease: RedisLease | None
) -> SQLiteReplayStorage | RedisReplayStorage:
    """The storage *target* names, not opened yet; fenced by *lease* if given."""
    if not is_redis_url(target):
        try:
            return SQLiteReplayStorage(target, default_id=default_id)
        except OSError as error:
            raise ReplayStoreError(f"cannot open {target!r}: {error.strerror or error}") from error
    try:
        return RedisReplayStorage(target, default_id=default_id, lease=lease)
    except ImportError as error:
        raise UsageError(f"--replay-store with a Redis URL cannot run here: {error}") from None
    except ValueError as error:
        # The storage's message shows the URL without its password.
        raise UsageError(f"--replay-store: {error}") from None


@contextlib.asynccontextmanager
async def open_replay_store(
    target: str, default_id: int, *, timeout: float, lease: RedisLease | None = None
) -> AsyncIterator[ReplayMarkerStorage]:
    """Open the replay store *target* for the time of the ``async with`` block.

    :param default_id: the replay id of the channels the store has no marker of
    :param timeout: seconds opening may take (a Redis server that does not answer)
    :param lease: with a Redis URL, the lease that fences the writes (``--lease``)
    :raises ReplayStoreError: the store cannot be opened
    :raises UsageError: *target* is not a usable Redis URL, or redis-py is missing
    """
    storage = _storage(target, default_id, lease)
    redis = isinstance(storage, RedisReplayStorage)
    where = f"Redis at {shown_url(target)}" if redis else repr(target)
    try:
        # Opening now reports a bad file or an unreachable server here rather than at
        # the first event.
        await asyncio.wait_for(storage.__aenter__(), timeout)
    except asyncio.TimeoutError as error:  # first: an OSError from 3.11 on
        await _close_quietly(storage)
        raise ReplayStoreError(f"cannot open {where}: no answer within {timeout:g} s") from error
    except (OSError, sqlite3.Error, ReplayError) as error:
        await _close_quietly(storage)
        # Redis's own words (a refused connection, a wrong password) never hold the
        # password; the storage's wrapper would repeat the URL.
        cause = error.__cause__ if redis and error.__cause__ is not None else error
        raise ReplayStoreError(f"cannot open {where}: {cause}") from error
    try:
        yield storage
    finally:
        await storage.close()


async def _close_quietly(storage: SQLiteReplayStorage | RedisReplayStorage) -> None:
    with contextlib.suppress(Exception):
        await storage.close()
