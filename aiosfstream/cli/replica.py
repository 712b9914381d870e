"""``listen --lease``: one replica of several, which prints events only while it holds the lease.

A replica stands by until it acquires the lease, then logs in, subscribes from the shared
replay store and prints events. When the lease is lost (another replica took it, or no
renewal reached Redis within the ttl), or the shared store cannot reach Redis, it stops
at once: the session is cancelled, its client disconnected, and no event is printed nor
marker stored after that moment (the store is fenced by the lease, and each event is
checked against the lease's own clock before it is printed). Then it stands by again.
A session that ends for another reason (``--count``, ``--timeout``, a signal, another
error) ends the command as without a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.progress import LOGGER
from aiosfstream.cli.settings import LeaseSettings
from aiosfstream.exceptions import LeaseLost, ReplayError

if TYPE_CHECKING:
    from aiosfstream.ha import RedisLease

__all__ = ["check_held", "open_lease", "run_as_replica"]

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


def check_held(lease: RedisLease) -> None:
    """Raise :exc:`LeaseLost` unless *lease* is held by its own clock.

    A replica paused past the ttl (SIGSTOP, a long GC, a frozen VM) may find events
    waiting when it resumes, before its renewal task learnt the lease is gone.
    """
    if not lease.held:
        raise LeaseLost(f"lease {lease.key!r} is no longer held by this replica")


async def run_as_replica(lease: RedisLease, session: Session) -> Any:
    """Run *session* each time *lease* is acquired, until one ends without losing it.

    :return: what that *session* returned
    :raises Exception: what that *session* raised
    """
    while True:
        LOGGER.info("standing by: waiting for lease %r", lease.key)
        # No timeout: waiting while another replica holds the lease is a standby's job.
        token = await lease.acquire()
        LOGGER.info("active: holding lease %r (fencing token %d)", lease.key, token)
        running = asyncio.ensure_future(session())
        lost = asyncio.ensure_future(lease.wait_lost())
        try:
            await asyncio.wait({running, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also when the command itself is stopped while waiting here.
            lost.cancel()
            running.cancel()
            await asyncio.wait({running})
        failure = None if running.cancelled() else running.exception()
        if not running.cancelled() and not _stands_down_for(failure):
            return running.result()
        LOGGER.info("lost lease %r: %s", lease.key, failure or lost.result())
        await lease.release()


def _stands_down_for(failure: BaseException | None) -> bool:
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
