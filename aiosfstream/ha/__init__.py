"""Running several replicas of a consumer, of which one consumes and the others stand by.

:class:`Lease` is what the clients accept; :class:`RedisLease` keeps it in Redis, where a
fenced :class:`~aiosfstream.stores.RedisReplayStorage` checks it.  See :doc:`/replicas`.
redis-py is imported when a :class:`RedisLease` is created, not when this package is.
"""

from aiosfstream.exceptions import LeaseLost
from aiosfstream.ha.lease import Lease
from aiosfstream.ha.redis import RedisLease

__all__ = ["Lease", "LeaseLost", "RedisLease"]
