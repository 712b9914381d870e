"""The buffer between the background connection and ``receive()``."""

from __future__ import annotations

import asyncio
from collections import deque

from aiosfstream.typing import Message

__all__ = ["PrefetchQueue"]


class _Raise:
    """An error that takes its turn in the stream, such as a failed resubscription."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class PrefetchQueue:
    """A FIFO of messages with a soft limit and a terminal error.

    The connection waits for :meth:`wait_for_room` before it asks the server for
    more, so at most *maxsize* messages wait in the queue, plus the rest of the
    batch that was being received (a batch is never cut: that would lose events).
    ``maxsize <= 0`` means no limit.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Message | _Raise] = deque()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._failure: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        """Whether the connection should stop asking for more messages."""
        return 0 < self.maxsize <= len(self._items)

    def extend(self, messages: list[Message]) -> None:
        """Append a received batch."""
        if messages:
            self._items.extend(messages)
            self._readable.set()
            if self.full():
                self._room.clear()

    def put_error(self, error: BaseException) -> None:
        """Queue an error that :meth:`get` raises when its turn comes."""
        self._items.append(_Raise(error))
        self._readable.set()

    def fail(self, error: BaseException) -> None:
        """End the stream: once the queue is drained, :meth:`get` raises *error*."""
        if self._failure is None:
            self._failure = error
        self._readable.set()
        self._room.set()

    @property
    def failure(self) -> BaseException | None:
        """The error that ended the stream, if any."""
        return self._failure

    async def wait_for_room(self) -> None:
        """Return once fewer than *maxsize* messages wait."""
        while self.full() and self._failure is None:
            await self._room.wait()

    def get_nowait(self) -> Message | None:
        """Return the next message, ``None`` if there is none; raise a queued error."""
        if not self._items:
            if self._failure is not None:
                raise self._failure
            return None
        item = self._items.popleft()
        if not self._items and self._failure is None:
            self._readable.clear()
        if not self.full():
            self._room.set()
        if isinstance(item, _Raise):
            raise item.error
        return item

    async def get(self) -> Message:
        """Wait for the next message."""
        while True:
            message = self.get_nowait()
            if message is not None:
                return message
            await self._readable.wait()
