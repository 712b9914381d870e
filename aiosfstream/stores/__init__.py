"""Durable replay marker storages.

:class:`SQLiteReplayStorage` needs only the standard library.
:class:`RedisReplayStorage` needs redis-py (``pip install aiosfstream[redis]``), which it
imports only when one is created, so importing this package never imports ``redis``.
"""

from aiosfstream.stores.redis import RedisReplayStorage
from aiosfstream.stores.sqlite import SQLiteReplayStorage

__all__ = ["RedisReplayStorage", "SQLiteReplayStorage"]
