"""Opening the SQLite replay store of ``listen --replay-store``."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator

from aiosfstream.cli.errors import ReplayStoreError
from aiosfstream.exceptions import ReplayError
from aiosfstream.replay import ReplayMarkerStorage
from aiosfstream.stores import SQLiteReplayStorage

__all__ = ["open_replay_store"]


@contextlib.asynccontextmanager
async def open_replay_store(path: str, default_id: int) -> AsyncIterator[ReplayMarkerStorage]:
    """Open the SQLite replay store at *path*, for the time of the ``async with`` block.

    :param default_id: the replay id of the channels the store has no marker of
    :raises ReplayStoreError: the database cannot be opened
    """
    try:
        storage = SQLiteReplayStorage(path, default_id=default_id)
    except OSError as error:
        raise ReplayStoreError(f"cannot open {path!r}: {error.strerror or error}") from error
    try:
        # Opening the database now reports a bad file here rather than at the first event.
        await storage.__aenter__()
    except (OSError, sqlite3.Error, ReplayError) as error:
        with contextlib.suppress(Exception):
            await storage.close()
        raise ReplayStoreError(f"cannot open {path!r}: {error}") from error
    try:
        yield storage
    finally:
        await storage.close()
