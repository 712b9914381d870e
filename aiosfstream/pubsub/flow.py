"""How many events each Subscribe stream asks for: the client's demand, kept pure.

The Pub/Sub API is pull-based: a ``FetchRequest`` with ``num_requested = n`` lets the
server send *n* more events on that stream.  It treats more than 100 as 100, and caps the
demand outstanding on one stream at 100 ("Flow Control" page of the Pub/Sub API guide).
Demand once asked for cannot be taken back: it ends only as events arrive.

:class:`DemandBudget` shares the room of the client's prefetch queue between its
streams, so that a slow consumer is never much more than ``max_pending_count`` events
behind, and no topic is ever left with nothing queued and nothing asked for.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["MAX_REQUESTED", "DemandBudget"]

#: The largest ``num_requested`` the server honours, and the most demand one stream holds.
MAX_REQUESTED = 100


class DemandBudget:
    """The events asked for and not delivered yet, per stream, within one limit.

    Each stream tops up to a fair share of the limit, ``max_pending_count // topics``
    (at least 1, at most :data:`MAX_REQUESTED`), from the room the queue and the others'
    demand leave.  A stream with no event queued and none asked for always asks for at
    least one, even when a quiet stream holds demand from before the share shrank: so
    the events queued plus asked for stay within ``max_pending_count`` plus one per
    topic (events a stream forgotten meanwhile left queued come on top until taken),
    and a busy topic is never starved by a quiet one.

    Every method is O(1): the totals are counters, so the client may consult the
    budget on each event.

    :param max_pending_count: the most events queued plus asked for, over all streams;
        ``0`` or less means no limit (each stream then keeps :data:`MAX_REQUESTED` asked for)
    """

    def __init__(self, max_pending_count: int) -> None:
        self.limit = max_pending_count if max_pending_count > 0 else None
        self._outstanding: dict[Hashable, int] = {}
        self._total = 0
        # Streams with nothing asked for: freed room goes to them first.
        self._idle = 0

    def add(self, stream: Hashable) -> None:
        """Count *stream* among those sharing the limit, with nothing asked for yet."""
        self.forget(stream)
        self._outstanding[stream] = 0
        self._idle += 1

    def outstanding(self, stream: Hashable) -> int:
        """The events *stream* asked for and has not received."""
        return self._outstanding.get(stream, 0)

    @property
    def total_outstanding(self) -> int:
        """The events asked for on every stream and not received."""
        return self._total

    def share(self, streams: int) -> int:
        """The most one of *streams* streams may hold asked for.

        Each stream gets an equal part of the limit, so that a quiet topic holding its
        demand cannot starve a busy one.
        """
        if self.limit is None:
            return MAX_REQUESTED
        return min(MAX_REQUESTED, max(1, self.limit // max(1, streams)))

    def worth_granting(self, queued: int) -> bool:
        """Whether :meth:`grant` may give any stream something now, from the queue's room.

        ``False`` means asking every stream would send nothing; a stream with nothing
        queued and nothing asked for is the caller's to ask (it gets one event anyway).
        """
        if self.limit is None:
            return False  # the room never limits: streams top up as their events arrive
        room = self.limit - queued - self._total
        return room > 0 and (self._idle > 0 or room >= self.share(len(self._outstanding)) // 2)

    def grant(self, stream: Hashable, queued: int, stream_queued: int) -> int:
        """How many events *stream* should ask for now (0: send nothing), recorded as asked.

        :param queued: the events received and not yet handed to the consumer
        :param stream_queued: those of them that came on *stream*

        A stream with nothing outstanding asks for whatever room there is (else the
        server closes a stream that owes nothing after 60 s), and for one event if
        there is none but it has nothing queued either; one that still waits for events
        tops up only once half its share is missing, which keeps requests few.
        """
        if stream not in self._outstanding:
            self.add(stream)
        share = self.share(len(self._outstanding))
        held = self._outstanding[stream]
        wanted = share - held
        if self.limit is not None:
            wanted = min(wanted, self.limit - queued - self._total)
        if held == 0 and stream_queued == 0:
            wanted = max(wanted, 1)
        if wanted <= 0 or (held > 0 and wanted < max(1, share // 2)):
            return 0
        self._set(stream, held + wanted)
        return wanted

    def received(self, stream: Hashable, count: int) -> None:
        """Record that *count* events arrived on *stream*.

        A server that sends more than it was asked for leaves nothing outstanding
        rather than a negative demand.
        """
        held = self._outstanding.get(stream)
        if held is not None:
            self._set(stream, max(0, held - count))

    def forget(self, stream: Hashable) -> None:
        """Drop *stream*: its demand ended with it (a new stream starts at zero)."""
        held = self._outstanding.pop(stream, None)
        if held is not None:
            self._total -= held
            self._idle -= held == 0

    def _set(self, stream: Hashable, held: int) -> None:
        before = self._outstanding[stream]
        self._outstanding[stream] = held
        self._total += held - before
        self._idle += (held == 0) - (before == 0)
