"""How many events each Subscribe stream asks for: the client's demand, kept pure.

The Pub/Sub API is pull-based: a ``FetchRequest`` with ``num_requested = n`` lets the
server send *n* more events on that stream.  It treats more than 100 as 100, and caps the
demand outstanding on one stream at 100 ("Flow Control" page of the Pub/Sub API guide).

:class:`DemandBudget` shares the room of the client's prefetch queue between its
streams, so that the events queued plus the events asked for never exceed
``max_pending_count``: a slow consumer is never more than that many events behind.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["MAX_REQUESTED", "DemandBudget"]

#: The largest ``num_requested`` the server honours, and the most demand one stream holds.
MAX_REQUESTED = 100


class DemandBudget:
    """The events asked for and not delivered yet, per stream, within one limit.

    :param max_pending_count: the most events queued plus asked for, over all streams;
        ``0`` or less means no limit (each stream then keeps :data:`MAX_REQUESTED` asked for)
    """

    def __init__(self, max_pending_count: int) -> None:
        self.limit = max_pending_count if max_pending_count > 0 else None
        self._outstanding: dict[Hashable, int] = {}

    def add(self, stream: Hashable) -> None:
        """Count *stream* among those sharing the limit, with nothing asked for yet."""
        self._outstanding[stream] = 0

    def outstanding(self, stream: Hashable) -> int:
        """The events *stream* asked for and has not received."""
        return self._outstanding.get(stream, 0)

    @property
    def total_outstanding(self) -> int:
        """The events asked for on every stream and not received."""
        return sum(self._outstanding.values())

    def share(self, streams: int) -> int:
        """The most one of *streams* streams may hold asked for.

        Each stream gets an equal part of the limit, so that a quiet topic holding its
        demand cannot starve a busy one.
        """
        if self.limit is None:
            return MAX_REQUESTED
        return min(MAX_REQUESTED, max(1, self.limit // max(1, streams)))

    def grant(self, stream: Hashable, queued: int) -> int:
        """How many events *stream* should ask for now (0: send nothing), recorded as asked.

        :param queued: the events received and not yet handed to the consumer

        A stream with nothing outstanding asks for whatever room there is (else the
        server closes a stream that owes nothing after 60 s); one that still waits for
        events tops up only once half its share is missing, which keeps requests few.
        """
        self._outstanding.setdefault(stream, 0)
        share = self.share(len(self._outstanding))
        held = self._outstanding[stream]
        wanted = share - held
        if self.limit is not None:
            wanted = min(wanted, self.limit - queued - self.total_outstanding)
        if wanted <= 0 or (held > 0 and wanted < max(1, share // 2)):
            return 0
        self._outstanding[stream] = held + wanted
        return wanted

    def received(self, stream: Hashable, count: int) -> None:
        """Record that *count* events arrived on *stream*.

        A server that sends more than it was asked for leaves nothing outstanding
        rather than a negative demand.
        """
        if stream in self._outstanding:
            self._outstanding[stream] = max(0, self._outstanding[stream] - count)

    def forget(self, stream: Hashable) -> None:
        """Drop *stream*: its demand ended with it (a new stream starts at zero)."""
        self._outstanding.pop(stream, None)
