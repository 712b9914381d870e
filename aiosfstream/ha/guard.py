"""What a client does with its lease, the same for the CometD and the Pub/Sub client.

A client given a lease opens only once the lease is held, and stops the moment it is
lost: its stream ends with :class:`~aiosfstream.exceptions.LeaseLost`, and it stores no
marker from then on.  "The moment" is checked twice: a background task wakes when the
lease reports the loss, and every hand-over and every store asks the lease first, since
after a pause of the whole process (a GC, SIGSTOP, a frozen VM) the client's own code may
run before that task does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiosfstream.exceptions import LeaseLost
from aiosfstream.ha.lease import Lease

__all__ = ["LeaseGuard"]

_T = TypeVar("_T")
_logger = logging.getLogger(__name__)


class LeaseGuard:
    """One client's use of a :class:`~aiosfstream.ha.Lease`; without one, it lets all pass.

    :param lease: the lease, or ``None`` for a client that runs alone
    :raises TypeError: *lease* is not a :class:`~aiosfstream.ha.Lease`
    """

    def __init__(self, lease: Lease | None) -> None:
        if lease is not None and not isinstance(lease, Lease):
            raise TypeError(f"lease must be an aiosfstream.ha.Lease, not {type(lease).__name__}")
        self.lease = lease
        #: Why the lease was lost, once it was: the client's stream ends with it.
        self.lost: LeaseLost | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False  # the watch task runs the client's on_lost
        self._acquired = False  # only a lease once held can be lost

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is held right now (or there is none)."""
        if self.lost is not None:
            raise self.lost
        if self.lease is not None and not self.lease.held:
            if not self._acquired:
                raise LeaseLost("the lease is not held yet")
            self.lost = LeaseLost("the lease is not held any more")
            raise self.lost

    def lose(self, lost: LeaseLost) -> None:
        """Take in a loss learnt elsewhere (a fenced store refused a write)."""
        if self.lost is None:
            self.lost = lost

    @property
    def holds(self) -> bool:
        """Whether the client may consume and store: no lease, or a lease held now."""
        try:
            self.check()
        except LeaseLost:
            return False
        return True

    async def acquire(self) -> None:
        """Wait until the lease is held, as long as it takes (a standby's normal state)."""
        if self.lease is not None:
            if not self.lease.held:
                await self.lease.acquire()
            self._acquired = True

    async def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run *work* (the client's opening); if the lease is lost first, cancel it and
        raise :class:`LeaseLost`.  If *work* fails, the lease is given up: a replica
        that cannot open must not keep it from a standby."""
        try:
            return await self._run(work)
        except BaseException:
            await self.release()
            raise

    async def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        if self.lease is None:
            return await work
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self.lease.wait_lost())
        try:
            await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, lost):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
        if task.done() and not task.cancelled():
            return task.result()
        self.lost = lost.result()
        raise self.lost

    def watch(self, on_lost: Callable[[LeaseLost], Awaitable[None]]) -> None:
        """Call *on_lost* once the lease is lost (in a task of its own)."""
        if self.lease is None or self._watch is not None:
            return
        lease = self.lease

        async def wait() -> None:
            lost = await lease.wait_lost()
            if self.lost is None:
                self.lost = lost
            self._stopping = True
            try:
                await on_lost(self.lost)
            except Exception:  # the client's close() must not see it; the log does
                _logger.exception("stopping after the loss of the lease failed")

        self._watch = asyncio.create_task(wait(), name="lease watch")

    async def stop(self) -> None:
        """Stop watching; if the loss is being handled, wait until it is."""
        watch, self._watch = self._watch, None
        if watch is None or watch is asyncio.current_task():
            return
        if not self._stopping:
            watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    async def release(self) -> None:
        """Give the lease up if it is still held, so that a standby takes over at once."""
        if self.lease is not None and self.lost is None and self.lease.held:
            await self.lease.release()
