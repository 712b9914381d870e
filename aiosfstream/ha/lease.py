"""The lease: the exclusive right of one replica among several to consume a stream.

A replica that wants to consume calls :meth:`Lease.acquire`, which waits while another
replica holds the lease; the holder keeps it alive in the background until it releases it
or loses it, and :meth:`Lease.wait_lost` tells it when that happens.  Each holding has a
*fencing token*, a number that grows with every acquisition, so a store can refuse the
writes of a former holder.  See :doc:`/replicas`.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TypeVar

from aiosfstream.exceptions import LeaseLost

__all__ = ["Lease"]

_Lease = TypeVar("_Lease", bound="Lease")


class Lease(abc.ABC):
    """Exclusive right of one replica to consume; see :doc:`/replicas`."""

    @property
    @abc.abstractmethod
    def held(self) -> bool:
        """``True`` from :meth:`acquire` returning until the lease is lost or released."""

    @property
    @abc.abstractmethod
    def fencing_token(self) -> int | None:
        """The fencing token of the current holding, ``None`` when the lease is not held."""

    @abc.abstractmethod
    async def acquire(self, *, timeout: float | None = None) -> int:
        """Wait until this replica holds the lease, then keep it alive in the background.

        :param timeout: most seconds to wait; ``None`` waits as long as another replica
            holds it, which is a standby's normal state
        :return: the fencing token of the new holding
        :raises TimeoutError: the lease was not acquired within *timeout*
        :raises ~aiosfstream.exceptions.ClientInvalidOperation: the lease is already held,
            being acquired, or closed
        """

    @abc.abstractmethod
    async def wait_lost(self) -> LeaseLost:
        """Wait while the lease is held; return (not raise) the error saying why it ended.

        Returns at once when the lease is not held.
        """

    @abc.abstractmethod
    async def release(self) -> None:
        """Stop keeping the lease alive and give it up, so a standby can take it at once.

        Calling it when the lease is not held does nothing.
        """

    async def close(self) -> None:
        """Release the lease and close what it owns."""
        await self.release()

    async def __aenter__(self: _Lease) -> _Lease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
