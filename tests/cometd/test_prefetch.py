"""The queue between the background connection and ``receive()``."""

from __future__ import annotations

import asyncio

import pytest

from aiosfstream.cometd.exceptions import ServerError, TransportTimeoutError
from aiosfstream.cometd.prefetch import PrefetchQueue
from aiosfstream.typing import Message
from tests.cometd import samples


def events(*numbers: int) -> list[Message]:
    return [samples.load(samples.PLATFORM_EVENT, n=n) for n in numbers]


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fifo_order_across_batches() -> None:
    queue = PrefetchQueue(0)
    batches = [events(1, 2, 3), events(4), events(5, 6)]
    for batch in batches:
        queue.extend(batch)
    assert len(queue) == 6
    received = [await queue.get() for _ in range(6)]
    assert [message["n"] for message in received] == [1, 2, 3, 4, 5, 6]
    assert received[0] is batches[0][0]
    assert len(queue) == 0
    assert queue.get_nowait() is None


async def test_extend_with_an_empty_batch_does_nothing() -> None:
    queue = PrefetchQueue(1)
    queue.extend([])
    assert len(queue) == 0
    assert not queue.full()
    getter = asyncio.ensure_future(queue.get())
    await settle()
    assert not getter.done()
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter


def test_full_with_a_limit() -> None:
    queue = PrefetchQueue(2)
    assert not queue.full()
    queue.extend(events(1))
    assert not queue.full()
    queue.extend(events(2))
    assert queue.full()
    assert queue.get_nowait() is not None
    assert not queue.full()


@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_no_limit(maxsize: int) -> None:
    queue = PrefetchQueue(maxsize)
    queue.extend(events(*range(1000)))
    assert len(queue) == 1000
    assert not queue.full()


async def test_wait_for_room_returns_at_once_when_there_is_room() -> None:
    queue = PrefetchQueue(2)
    queue.extend(events(1))
    await asyncio.wait_for(queue.wait_for_room(), 1)


async def test_wait_for_room_returns_at_once_without_a_limit() -> None:
    queue = PrefetchQueue(0)
    queue.extend(events(*range(50)))
    await asyncio.wait_for(queue.wait_for_room(), 1)


async def test_wait_for_room_blocks_until_a_get() -> None:
    queue = PrefetchQueue(2)
    queue.extend(events(1, 2))
    waiter = asyncio.ensure_future(queue.wait_for_room())
    await settle()
    assert not waiter.done()
    assert (await queue.get())["n"] == 1
    await asyncio.wait_for(waiter, 1)
    assert len(queue) == 1


async def test_a_batch_is_never_cut() -> None:
    queue = PrefetchQueue(2)
    queue.extend(events(1, 2, 3, 4, 5))
    # Two are ready; the surplus waits in the backlog, outside pending_count.
    assert len(queue) == 2
    assert queue.backlog_count == 3
    assert queue.full()
    waiter = asyncio.ensure_future(queue.wait_for_room())
    received = [(await queue.get())["n"] for _ in range(3)]
    await settle()
    # Still two waiting: no room yet.
    assert received == [1, 2, 3]
    assert not waiter.done()
    assert (await queue.get())["n"] == 4
    await asyncio.wait_for(waiter, 1)
    assert (await queue.get())["n"] == 5


async def test_put_error_is_raised_in_turn() -> None:
    queue = PrefetchQueue(0)
    error = ServerError("Subscribe request to /topic/a failed", samples.load(samples.REPLAY_ERROR))
    queue.extend(events(1))
    queue.put_error(error)
    queue.extend(events(2))
    assert len(queue) == 3
    assert (await queue.get())["n"] == 1
    with pytest.raises(ServerError) as info:
        await queue.get()
    assert info.value is error
    assert (await queue.get())["n"] == 2
    assert queue.failure is None
    assert queue.get_nowait() is None


async def test_put_error_wakes_a_waiting_get() -> None:
    queue = PrefetchQueue(0)
    getter = asyncio.ensure_future(queue.get())
    await settle()
    assert not getter.done()
    error = ServerError("Subscribe request to /topic/a failed")
    queue.put_error(error)
    with pytest.raises(ServerError) as info:
        await asyncio.wait_for(getter, 1)
    assert info.value is error


async def test_get_after_a_queued_error_waits_again() -> None:
    queue = PrefetchQueue(0)
    queue.put_error(ServerError("x"))
    with pytest.raises(ServerError):
        queue.get_nowait()
    getter = asyncio.ensure_future(queue.get())
    await settle()
    assert not getter.done()
    queue.extend(events(7))
    assert (await asyncio.wait_for(getter, 1))["n"] == 7


async def test_fail_raises_only_after_draining() -> None:
    queue = PrefetchQueue(0)
    error = TransportTimeoutError("could not reconnect within 10 s")
    queue.extend(events(1, 2))
    queue.fail(error)
    assert queue.failure is error
    assert (await queue.get())["n"] == 1
    assert (await queue.get())["n"] == 2
    for _ in range(3):
        with pytest.raises(TransportTimeoutError) as info:
            await queue.get()
        assert info.value is error
    with pytest.raises(TransportTimeoutError):
        queue.get_nowait()


async def test_messages_added_after_fail_are_still_delivered_first() -> None:
    queue = PrefetchQueue(0)
    error = TransportTimeoutError("gone")
    queue.fail(error)
    queue.extend(events(1))
    assert (await queue.get())["n"] == 1
    with pytest.raises(TransportTimeoutError):
        await queue.get()


async def test_the_first_failure_wins() -> None:
    queue = PrefetchQueue(0)
    first = ServerError("/meta/connect refused")
    queue.fail(first)
    queue.fail(TransportTimeoutError("later"))
    assert queue.failure is first
    with pytest.raises(ServerError) as info:
        await queue.get()
    assert info.value is first


async def test_abort_drops_what_waits_and_raises_at_once() -> None:
    queue = PrefetchQueue(2)
    queue.extend(events(1, 2, 3))  # two ready, one in the backlog
    queue.fail(TransportTimeoutError("earlier, still draining"))
    error = ServerError("the lease was lost")
    queue.abort(error)
    assert queue.failure is error
    assert len(queue) == 0 and queue.backlog_count == 0 and not queue.full()
    with pytest.raises(ServerError) as info:
        await queue.get()
    assert info.value is error


async def test_nothing_added_after_abort_is_delivered() -> None:
    queue = PrefetchQueue(0)
    error = ServerError("the lease was lost")
    getter = asyncio.ensure_future(queue.get())
    await settle()
    queue.abort(error)
    queue.extend(events(1))
    queue.push_front(events(2)[0])
    queue.put_error(TransportTimeoutError("later"))
    with pytest.raises(ServerError):
        await asyncio.wait_for(getter, 1)
    assert len(queue) == 0
    with pytest.raises(ServerError):
        queue.get_nowait()


async def test_get_wakes_on_extend() -> None:
    queue = PrefetchQueue(1)
    getter = asyncio.ensure_future(queue.get())
    await settle()
    assert not getter.done()
    queue.extend(events(1, 2))
    assert (await asyncio.wait_for(getter, 1))["n"] == 1
    assert len(queue) == 1


async def test_get_wakes_on_fail() -> None:
    queue = PrefetchQueue(1)
    getter = asyncio.ensure_future(queue.get())
    await settle()
    assert not getter.done()
    error = TransportTimeoutError("gone")
    queue.fail(error)
    with pytest.raises(TransportTimeoutError) as info:
        await asyncio.wait_for(getter, 1)
    assert info.value is error


async def test_several_getters_each_get_one_message() -> None:
    queue = PrefetchQueue(0)
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await settle()
    queue.extend(events(1))
    await settle()
    assert sum(getter.done() for getter in getters) == 1
    queue.extend(events(2, 3))
    results = await asyncio.wait_for(asyncio.gather(*getters), 1)
    assert sorted(message["n"] for message in results) == [1, 2, 3]


async def test_fail_releases_wait_for_room() -> None:
    queue = PrefetchQueue(1)
    queue.extend(events(1))
    waiter = asyncio.ensure_future(queue.wait_for_room())
    await settle()
    assert not waiter.done()
    queue.fail(TransportTimeoutError("gone"))
    await asyncio.wait_for(waiter, 1)
    # Once failed, the connection is never held back again.
    queue.extend(events(2, 3))
    await asyncio.wait_for(queue.wait_for_room(), 1)


async def test_get_nowait_refills_room_only_below_the_limit() -> None:
    queue = PrefetchQueue(3)
    queue.extend(events(1, 2, 3, 4))
    assert queue.get_nowait() is not None
    assert queue.full()
    waiter = asyncio.ensure_future(queue.wait_for_room())
    await settle()
    assert not waiter.done()
    assert queue.get_nowait() is not None
    await asyncio.wait_for(waiter, 1)


async def test_the_take_that_makes_room_lets_the_waiting_connection_run_first() -> None:
    # One thread: without the yield the connection would run only once the queue
    # runs dry, and the server would wait for it meanwhile.
    queue = PrefetchQueue(2)
    queue.extend(events(1, 2, 3))

    async def connection() -> None:
        await queue.wait_for_room()
        queue.extend(events(4))

    task = asyncio.ensure_future(connection())
    await settle()
    assert taken(queue) == 1  # the backlog moved up: still full
    assert taken(queue) == 2  # room
    assert queue.get_nowait() is None  # the connection goes first ...
    assert (await queue.get())["n"] == 3  # ... within one yield of get()
    assert task.done()
    assert [taken(queue)] == [4]


async def test_a_take_without_a_waiting_connection_never_yields() -> None:
    queue = PrefetchQueue(2)
    queue.extend(events(1, 2, 3))
    assert [taken(queue) for _ in range(3)] == [1, 2, 3]


async def test_wake_ends_wait_for_room_without_room() -> None:
    queue = PrefetchQueue(1)
    queue.extend(events(1, 2))
    waiter = asyncio.ensure_future(queue.wait_for_room())
    await settle()
    assert not waiter.done()
    queue.wake()
    await asyncio.wait_for(waiter, 1)
    assert queue.full()
    # The next wait waits again.
    waiter = asyncio.ensure_future(queue.wait_for_room())
    await settle()
    assert not waiter.done()
    waiter.cancel()


def taken(queue: PrefetchQueue) -> int:
    message = queue.get_nowait()
    assert message is not None
    number: int = message["n"]
    return number
