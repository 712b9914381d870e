"""Replay markers in an SQLite database file, with nothing but the standard library.

Each channel's marker is a row of one table::

    subscription TEXT PRIMARY KEY, date TEXT, replay_id BLOB

A ``BLOB`` column keeps each value as it is given: a CometD replay id is stored as an
SQLite integer, a Pub/Sub replay id as a blob, and each comes back as the same Python
type.  Tables written by 1.0.0.dev0 declared ``replay_id INTEGER``; they are rewritten
with the ``BLOB`` column, rows unchanged, in one transaction, when the storage first opens
them.

The database runs in WAL mode with ``synchronous=FULL``: once
:meth:`~SQLiteReplayStorage.set_replay_marker` returns, the marker is on disk and survives
a crash of the process or of the machine.  With ``commit_interval`` set, markers are kept
in memory and committed together about that many seconds later, which is much faster
and loses, on a crash, only the markers of the last interval.

:mod:`sqlite3` calls block, so they all run in one worker thread that owns the
connection; the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import ReplayMarker, ReplayOption, is_newer
from aiosfstream.stores._common import DurableStorage, IdRange, check_subscription

__all__ = ["SQLiteReplayStorage"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Seconds a statement waits for another connection's lock before it fails.
_BUSY_TIMEOUT = 30.0


def _check_interval(commit_interval: object) -> float | None:
    if commit_interval is None:
        return None
    if isinstance(commit_interval, bool) or not isinstance(commit_interval, int | float):
        raise TypeError(
            f"commit_interval must be a number of seconds or None, "
            f"got {type(commit_interval).__name__}"
        )
    if not math.isfinite(commit_interval) or commit_interval <= 0:
        raise ValueError(f"commit_interval must be positive and finite, got {commit_interval!r}")
    return float(commit_interval)


#: How 1.0.0.dev0 declared the replay_id column, before Pub/Sub's bytes ids.
_DEV0_ID_TYPE = "INTEGER"


def _create_table(table: str, *, if_not_exists: bool = False) -> str:
    """The statement that creates the marker table *table*."""
    guard = "IF NOT EXISTS " if if_not_exists else ""
    return (
        f'CREATE TABLE {guard}"{table}" ('
        "subscription TEXT PRIMARY KEY NOT NULL, "
        "date TEXT NOT NULL, "
        "replay_id BLOB NOT NULL)"
    )


def _declared_id_type(connection: sqlite3.Connection, table: str) -> str | None:
    """The declared type of *table*'s replay_id column, upper case; ``None`` if it has none."""
    row = connection.execute(
        "SELECT upper(type) FROM pragma_table_info(?) WHERE name = 'replay_id'", (table,)
    ).fetchone()
    return None if row is None else str(row[0])


def _migrate_to_blob_ids(connection: sqlite3.Connection, table: str) -> None:
    """Rewrite a 1.0.0.dev0 table, whose replay_id column is INTEGER, with a BLOB column.

    SQLite cannot change a column's type, so the rows move to a new table that then
    takes the old one's name.  It is one transaction: a crash leaves the old table whole.
    An INTEGER column would also hold a blob unchanged (SQLite converts only text to
    numbers), but the schema would then say the opposite of what the rows are.
    """
    staging = f"{table}_aiosfstream_migration"
    with _transaction(connection):
        # Another storage on the same file may have migrated it while this one waited.
        if _declared_id_type(connection, table) != _DEV0_ID_TYPE:
            return
        connection.execute(_create_table(staging))
        connection.execute(
            f'INSERT INTO "{staging}" (subscription, date, replay_id) '
            f'SELECT subscription, date, replay_id FROM "{table}"'
        )
        connection.execute(f'DROP TABLE "{table}"')
        connection.execute(f'ALTER TABLE "{staging}" RENAME TO "{table}"')
    logger.info("replay table %r: replay_id column migrated from INTEGER to BLOB", table)


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed if the block succeeds, else rolled back."""
    # IMMEDIATE takes the write lock at once: no other connection writes between
    # what the block reads and what it writes.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise


class SQLiteReplayStorage(DurableStorage):
    """Keeps replay markers in an SQLite database file.

    :param path: the database file; it is created if missing, its directory is not
    :param default_id: the replay id of a channel without a marker: a
        :class:`~aiosfstream.ReplayOption` or a replay id
    :param table: the table's name, created if missing
    :param commit_interval: ``None`` (the default) commits every marker before
        :meth:`set_replay_marker` returns; a number of seconds keeps markers in memory
        and commits them together that much later, or at :meth:`flush` and
        :meth:`close`.  A crash then loses up to one interval of markers, and their
        events are delivered again (at least once, never lost).
    :raises TypeError: an argument has the wrong type
    :raises ValueError: *table* is not a plain SQL identifier, *commit_interval* is not
        positive, or *path* is empty
    :raises FileNotFoundError: the directory of *path* does not exist

    Close the storage (:meth:`close`, or ``async with``) after the client that uses it.
    One process should write a given file; to share markers between processes, use
    :class:`~aiosfstream.stores.RedisReplayStorage`.

    Int replay ids are signed 64-bit integers, as SQLite stores them: a marker with an id
    outside ``-2**63`` to ``2**63 - 1`` raises :exc:`~aiosfstream.exceptions.ReplayError`
    and is not stored.  Bytes ids (Pub/Sub) are stored whole, as blobs.
    """

    #: What an SQLite integer holds.
    _ids = IdRange(
        -(2**63), 2**63 - 1, f"from {-(2**63)} to {2**63 - 1} (an SQLite INTEGER is signed 64-bit)"
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        default_id: int = ReplayOption.NEW_EVENTS,
        table: str = "replay_markers",
        commit_interval: float | None = None,
    ) -> None:
        if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or an os.PathLike, got {type(path).__name__}")
        text = os.fspath(path)
        if not isinstance(text, str):
            raise TypeError("path must be a text path, not bytes")
        if not text:
            raise ValueError("path must not be empty")
        if not isinstance(table, str):
            raise TypeError(f"table must be a str, got {type(table).__name__}")
        if not _TABLE_NAME.match(table):
            raise ValueError(
                f"table must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*), got {table!r}"
            )
        super().__init__(repr(text), default_id)
        self._commit_interval = _check_interval(commit_interval)
        directory = Path(text).parent
        if not directory.is_dir():
            raise FileNotFoundError(
                errno.ENOENT,
                f"the directory of the replay database does not exist: {str(directory)!r}",
                text,
            )
        self._path = text
        self._table = table
        self._upsert = (
            f'INSERT OR REPLACE INTO "{table}" (subscription, date, replay_id) VALUES (?, ?, ?)'
        )
        self._executor: ThreadPoolExecutor | None = None
        # Only ever used in the executor's single thread.
        self._connection: sqlite3.Connection | None = None
        # Markers set but not committed yet (with a commit interval).
        self._pending: dict[str, ReplayMarker] = {}
        self._flush_task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def table(self) -> str:
        """The table that holds the markers."""
        return self._table

    @property
    def commit_interval(self) -> float | None:
        """Seconds between batched commits, or ``None`` when every marker is committed."""
        return self._commit_interval

    def _settings(self) -> str:
        return (
            f"path={self._path!r} table={self._table!r} "
            f"commit_interval={self._commit_interval!r} default_id={self.default_id!r}"
        )

    # -- the storage interface ------------------------------------------------------

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        """Return the marker of *subscription*, or ``None``.

        :raises ReplayError: the database failed, holds a malformed row, or the storage
            is closed
        """
        check_subscription(subscription)
        self._check_open()
        pending = self._pending.get(subscription)
        if pending is not None:
            return pending
        return await self._run(lambda connection: self._select(connection, subscription))

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Store *replay_marker* as the marker of *subscription*.

        Without a commit interval the marker is on disk when this returns.

        :raises TypeError: *replay_marker* is not a :class:`ReplayMarker`
        :raises ValueError: its replay id is empty ``bytes``
        :raises ReplayError: the database failed, the replay id does not fit in a signed
            64-bit integer, or the storage is closed
        """
        marker = self._checked(subscription, replay_marker)
        self._check_open()
        if self._commit_interval is None:
            await self._run(lambda connection: self._write(connection, [(subscription, marker)]))
            return
        self._pending[subscription] = marker
        self._schedule_flush()

    async def store_marker(self, subscription: str, marker: ReplayMarker) -> None:
        """Store *marker* unless the stored marker of *subscription* is newer.

        Without a commit interval, the comparison and the write are one SQLite
        transaction, so the rule holds even between processes sharing the file.

        :raises TypeError: *marker* is not a :class:`ReplayMarker`
        :raises ValueError: its replay id is empty ``bytes``
        :raises ReplayError: the database failed, the replay id does not fit in a signed
            64-bit integer, or the storage is closed
        """
        checked = self._checked(subscription, marker, "marker")
        self._check_open()
        if self._commit_interval is None:
            await self._run(
                lambda connection: self._write_if_newer(connection, subscription, checked)
            )
            return
        async with self._lock():
            current = await self.get_replay_marker(subscription)
            if is_newer(checked, current):
                self._pending[subscription] = checked
                self._schedule_flush()

    async def store_markers(self, markers: Mapping[str, ReplayMarker]) -> None:
        """Store several markers, each only if newer, in one transaction (one disk sync).

        Every marker is checked first: if one cannot be stored, none is.

        :raises TypeError: *markers* is not a mapping of :class:`ReplayMarker` objects
        :raises ValueError: a replay id is empty ``bytes``
        :raises ReplayError: the database failed, a replay id does not fit in a signed
            64-bit integer, or the storage is closed
        """
        checked = self._checked_batch(markers)
        self._check_open()
        if self._commit_interval is not None:
            await super().store_markers(checked)
            return
        await self._run(lambda connection: self._write_newer(connection, checked))

    async def flush(self) -> None:
        """Commit the markers waiting for the commit interval now.

        :raises ReplayError: the database failed, or the storage is closed
        """
        self._check_open()
        await self._flush()

    async def close(self) -> None:
        """Commit the waiting markers, close the database and stop the worker thread.

        Calling it again does nothing.

        :raises ReplayError: the last commit failed (the database is closed anyway)
        """
        if self._closed:
            return
        self._closed = True
        task, self._flush_task = self._flush_task, None
        try:
            if task is not None and not task.done():
                task.cancel()
                if task.get_loop() is asyncio.get_running_loop():
                    await asyncio.wait([task])
            if self._pending:
                batch = list(self._pending.items())
                await self._submit(
                    lambda: self._with_connection(lambda connection: self._write(connection, batch))
                )
                self._pending.clear()
        finally:
            executor, self._executor = self._executor, None
            if executor is not None:
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        executor, self._close_connection
                    )
                finally:
                    # Nothing is left to run in the worker: this returns at once.
                    executor.shutdown(wait=True)

    async def _open(self) -> None:
        await self._run(lambda connection: None)

    # -- batching ---------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        task = self._flush_task
        if task is None or task.done():
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_periodically(), name=f"{type(self).__name__} commits"
            )

    async def _flush_periodically(self) -> None:
        assert self._commit_interval is not None
        while self._pending and not self._closed:
            await asyncio.sleep(self._commit_interval)
            try:
                await self._flush()
            except ReplayError as error:
                # The markers stay pending and the next round tries again.
                logger.error("could not commit replay markers: %s", error)

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch = dict(self._pending)
        await self._run(lambda connection: self._write(connection, batch.items()))
        # Forget only what was written: a marker set meanwhile waits for the next round.
        for subscription, marker in batch.items():
            if self._pending.get(subscription) is marker:
                del self._pending[subscription]

    # -- the worker thread ------------------------------------------------------------

    async def _run(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run *job* with the connection, in the worker thread."""
        self._check_open()
        return await self._submit(lambda: self._with_connection(job))

    async def _submit(self, call: Callable[[], _T]) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="aiosfstream-sqlite"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _with_connection(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            if self._connection is None:
                self._connection = self._connect()
            return job(self._connection)
        except sqlite3.Error as error:
            raise ReplayError(f"replay database {self._path!r}: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: every statement commits on its own unless a BEGIN
        # opens a transaction.
        connection = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT, isolation_level=None)
        try:
            (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                logger.warning("%s: WAL mode unavailable, journal mode is %s", self._path, mode)
            # FULL: a commit syncs the WAL to disk before it returns.
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(_create_table(self._table, if_not_exists=True))
            if _declared_id_type(connection, self._table) == _DEV0_ID_TYPE:
                _migrate_to_blob_ids(connection, self._table)
        except BaseException:
            connection.close()
            raise
        return connection

    def _select(self, connection: sqlite3.Connection, subscription: str) -> ReplayMarker | None:
        row = connection.execute(
            f'SELECT date, replay_id FROM "{self._table}" WHERE subscription = ?',
            (subscription,),
        ).fetchone()
        if row is None:
            return None
        date, replay_id = row
        # sqlite3 gives an integer as int and a blob as bytes; an empty blob is no id.
        if (
            not isinstance(date, str)
            or not isinstance(replay_id, int | bytes)
            or isinstance(replay_id, bool)
            or replay_id == b""
        ):
            raise ReplayError(
                f"replay database {self._path!r}: the row of {subscription!r} is not a "
                f"replay marker ({date!r}, {replay_id!r})"
            )
        return ReplayMarker(date, replay_id)

    def _write(
        self, connection: sqlite3.Connection, markers: Iterable[tuple[str, ReplayMarker]]
    ) -> None:
        rows = [(subscription, marker.date, marker.replay_id) for subscription, marker in markers]
        if len(rows) == 1:
            connection.execute(self._upsert, rows[0])  # a transaction of its own
            return
        with _transaction(connection):
            connection.executemany(self._upsert, rows)

    def _write_if_newer(
        self, connection: sqlite3.Connection, subscription: str, marker: ReplayMarker
    ) -> None:
        self._write_newer(connection, {subscription: marker})

    def _write_newer(
        self, connection: sqlite3.Connection, markers: Mapping[str, ReplayMarker]
    ) -> None:
        with _transaction(connection):
            for subscription, marker in markers.items():
                if is_newer(marker, self._select(connection, subscription)):
                    connection.execute(self._upsert, (subscription, marker.date, marker.replay_id))

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
