"""``listen --lease``: one replica of several, which prints events only while it holds the lease.

A replica stands by until it acquires the lease, then logs in, subscribes from the shared
replay store and prints events. When the lease is lost (another replica took it, or no
renewal reached Redis within the ttl), or the shared store cannot reach Redis, it stops
at once: the client, which holds the lease too, hands over no event after that moment
(it checks the lease's own clock at each one, so a pause past the ttl is caught) and
ends its stream, and the store is fenced by the lease. Then it stands by again.
A session that ends for another reason (``--count``, ``--timeout``, a signal, another
error) ends the command as without a lease.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.progress import LOGGER
from aiosfstream.cli.settings import LeaseSettings
from aiosfstream.exceptions import LeaseLost, ReplayError

if TYPE_CHECKING:
    from aiosfstream.ha import RedisLease

__all__ = ["open_lease", "run_as_replica"]

#: One session of the command: log in, subscribe, print events; its exit status.
Session = Callable[[], Coroutine[Any, Any, Any]]


@contextlib.asynccontextmanager
async def open_lease(settings: LeaseSettings) -> AsyncIterator[RedisLease]:
    """The lease of *settings*, released and closed when the block ends.

    :raises UsageError: redis-py is missing, or the URL or a setting is refused
    """
    try:
        from aiosfstream.ha import RedisLease

        lease = RedisLease(settings.url, settings.name, ttl=settings.ttl)
    except ImportError as error:
        raise UsageError(f"--lease cannot run here: {error}") from None
    except (TypeError, ValueError) as error:
        # The lease's messages show the URL without its password.
        raise UsageError(f"--lease: {error}") from None
    async with lease:
        yield lease


async def run_as_replica(lease: RedisLease, session: Session) -> Any:
    """Run *session* each time *lease* is acquired, until one ends without losing it.

    The session's client holds the lease too: it raises
    :exc:`~aiosfstream.exceptions.LeaseLost` the moment the lease is lost, and gives
    the lease up when it closes.

    :return: what that *session* returned
    :raises Exception: what that *session* raised, but for a lost lease
    """
    while True:
        LOGGER.info("standing by: waiting for lease %r", lease.key)
        # No timeout: waiting while another replica holds the lease is a standby's job.
        token = await lease.acquire()
        LOGGER.info("active: holding lease %r (fencing token %d)", lease.key, token)
        try:
            return await session()
        except (LeaseLost, ReplayError) as failure:
            if not _stands_down_for(failure):
                raise
            LOGGER.info("lost lease %r: %s", lease.key, failure)
        # Given up already if the session's client closed while holding it.
        await lease.release()


def _stands_down_for(failure: Exception) -> bool:
    """Whether a session that ended with *failure* hands over rather than ends the command.

    That is a lost lease, and a shared store that Redis cannot be reached for: this
    replica cannot store positions, nor tell that it still holds the lease, and another
    one may reach Redis. Any other error ends the command.
    """
    if isinstance(failure, LeaseLost):
        return True
    if not isinstance(failure, ReplayError):
        return False
    from redis.exceptions import ConnectionError, TimeoutError

    return isinstance(failure.__cause__, (ConnectionError, TimeoutError))
