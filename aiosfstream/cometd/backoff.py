"""Delays between reconnection attempts."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Exponential backoff with full jitter and a cap.

    Each failure doubles the ceiling (``initial``, ``2 * initial``, ... up to ``cap``);
    the delay is drawn between half the ceiling and the ceiling so that many clients
    failing together do not come back together. :meth:`reset` starts over after a
    success.
    """

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    random: Callable[[], float] = field(default=random.random, repr=False)
    _attempt: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap < math.inf:
            raise ValueError("Backoff needs 0 < initial <= cap < infinity")
        if not 1 <= self.factor < math.inf:
            raise ValueError("Backoff factor must be a finite number of at least 1")

    def next_delay(self, minimum: float = 0.0, *, scale: float = 1.0) -> float:
        """Return the delay before the next attempt, never below *minimum*.

        :param minimum: a floor, such as the server's advice ``interval``
        :param scale: multiplies the ceiling, for errors that deserve a longer pause
        """
        delay = self.delay(self._attempt, self.random(), minimum=minimum, scale=scale)
        if self.initial * scale * self.factor**self._attempt < self.cap:
            self._attempt += 1
        return delay

    def delay(
        self, attempt: int, jitter: float, *, minimum: float = 0.0, scale: float = 1.0
    ) -> float:
        """The delay after *attempt* earlier failures, placed by *jitter* in [0, 1).

        Pure: the same arguments always give the same delay.
        """
        if not 0 < scale < math.inf:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        try:
            growth = self.factor**attempt
        except OverflowError:  # a very long outage: the cap applies anyway
            growth = math.inf
        ceiling = min(self.cap, self.initial * scale * growth)
        return max(minimum, ceiling * (0.5 + 0.5 * jitter))

    def reset(self) -> None:
        """Forget past failures."""
        self._attempt = 0
