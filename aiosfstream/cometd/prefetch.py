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
    """A FIFO of messages with a limit and a terminal error.

    At most *maxsize* messages are ready for :meth:`get`; ``maxsize <= 0`` means no
    limit. A batch that arrives while the queue is full is never cut (that would lose
    events): its surplus waits in a backlog and moves up as messages are taken. The
    connection waits for :meth:`wait_for_room`, which also waits for the backlog to
    empty, before it takes in more.

    The connection and the consumer share one thread: a consumer that finds messages
    ready never yields to the event loop. So the take that makes room for a waiting
    connection makes the next :meth:`get_nowait` answer ``None``, and :meth:`get`
    yields once before it hands the next message over: the connection reads on while
    the consumer works, rather than only once the queue runs dry.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Message | _Raise] = deque()
        self._backlog: deque[Message | _Raise] = deque()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._producer_waits = False  # in wait_for_room()
        self._woken = False  # wake() ended the present wait_for_room()
        self._yield_first = False  # the last take made room for the waiting producer
        self._failure: BaseException | None = None
        self._aborted = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def backlog_count(self) -> int:
        """Messages received beyond the limit, waiting for room."""
        return len(self._backlog)

    def full(self) -> bool:
        """Whether the connection should stop asking for more messages."""
        return bool(self._backlog) or 0 < self.maxsize <= len(self._items)

    def extend(self, messages: list[Message]) -> None:
        """Append a received batch."""
        if not messages or self._aborted:
            return
        room = len(messages) if self.maxsize <= 0 else self.maxsize - len(self._items)
        if room >= len(messages) and not self._backlog:
            self._items.extend(messages)
        else:
            room = max(room, 0) if not self._backlog else 0
            self._items.extend(messages[:room])
            self._backlog.extend(messages[room:])
        if self._items:
            self._readable.set()

    def push_front(self, message: Message) -> None:
        """Put back a message that was taken but could not be handed over."""
        if self._aborted:
            return
        self._items.appendleft(message)
        self._readable.set()

    def put_error(self, error: BaseException) -> None:
        """Queue an error that :meth:`get` raises when its turn comes."""
        if self._aborted:
            return
        (self._backlog if self._backlog else self._items).append(_Raise(error))
        self._readable.set()

    def fail(self, error: BaseException) -> None:
        """End the stream: once the queue is drained, :meth:`get` raises *error*."""
        if self._failure is None:
            self._failure = error
        self._readable.set()
        self._room.set()

    def abort(self, error: BaseException) -> None:
        """End the stream at once: drop what waits and whatever comes later;
        :meth:`get` raises *error* from now on."""
        self._aborted = True
        self._items.clear()
        self._backlog.clear()
        self._failure = error
        self._readable.set()
        self._room.set()

    @property
    def failure(self) -> BaseException | None:
        """The error that ended the stream, if any."""
        return self._failure

    async def wait_for_room(self) -> None:
        """Return once fewer than *maxsize* messages wait, the stream ended, or
        :meth:`wake` was called."""
        self._woken = False
        self._producer_waits = True
        try:
            while self.full() and self._failure is None and not self._woken:
                self._room.clear()
                await self._room.wait()
        finally:
            self._producer_waits = False

    def wake(self) -> None:
        """End the present :meth:`wait_for_room` even without room (the connection has
        something more urgent to do)."""
        self._woken = True
        self._room.set()

    def get_nowait(self) -> Message | None:
        """Return the next message; ``None`` means: await :meth:`get` (nothing is
        ready, or the connection was just given room and runs first). Raise a queued
        error."""
        items = self._items
        if not items or self._yield_first:
            if not items and self._failure is not None:
                raise self._failure
            return None
        item = items.popleft()
        if self._backlog:
            items.append(self._backlog.popleft())
        elif not items and self._failure is None:
            self._readable.clear()
        if self._producer_waits and not self.full():
            self._room.set()
            self._yield_first = True
        if isinstance(item, _Raise):
            raise item.error
        return item

    async def get(self) -> Message:
        """Wait for the next message."""
        while True:
            if self._yield_first:
                self._yield_first = False
                await asyncio.sleep(0)
            message = self.get_nowait()
            if message is not None:
                return message
            if not self._yield_first:
                await self._readable.wait()
