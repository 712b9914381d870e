"""Decoding a JSON array of Bayeux messages piece by piece, as its bytes arrive.

A server answers a ``/meta/connect`` with everything it queued for the client, which
can be tens of megabytes after a consumer fell behind. Decoding the elements as they
arrive lets the client hand them over, and stop reading while its consumer catches up,
instead of holding the whole body and every decoded message at once.

The decoder finds where one top-level object ends and the next begins by looking for
``}`` ``,`` ``{`` (whitespace allowed between them), then decodes everything up to
there with the user's ``loads``. That pattern can also occur inside an element (a
nested list of objects, a string); such a cut cannot decode, because no proper prefix
of a JSON object is a complete JSON value, so a wrong cut is detected and never
yields a wrong message: the decoder then tries the cut before it. After a few failed
cuts it waits until the buffer has doubled before trying again, which keeps the work
linear in the body size.

Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from aiosfstream.cometd.messages import InvalidMessage
from aiosfstream.typing import JsonLoader

__all__ = ["ArrayDecoder"]

# The end of one object and the start of the next; group 1 ends at the comma.
_BOUNDARY = re.compile(rb"\}(\s*,)\s*\{")
# Cuts tried, from the last one back, before waiting for more of the body.
_CANDIDATES = 3
_WHITESPACE = b" \t\r\n"
_OPEN = ord("[")
_CLOSE = ord("]")
# Bytes of already scanned text scanned again, so that a boundary split between two
# pieces (with some whitespace) is still found.
_OVERLAP = 64


class ArrayDecoder:
    """Turns the bytes of a JSON array into its elements, as early as they are complete.

    Call :meth:`decode` with each piece of the body in order; the last call has
    ``final=True``. Each call returns the elements that piece completed. Errors of
    ``loads`` (``ValueError`` and its subclasses) propagate from the call that meets
    them; a body that is valid JSON but not an array raises :class:`InvalidMessage`.
    A body that does not start with ``[`` is kept whole and decoded by the last call.

    :param loads: the JSON decoder, called with :class:`bytearray` pieces
    """

    def __init__(self, loads: JsonLoader) -> None:
        self._loads = loads
        # The undecoded text; once the array is open it starts with its "[".
        self._buffer = bytearray()
        self._opened = False
        self._not_an_array = False
        self._scanned = 0  # the buffer before this offset holds no boundary
        self._retry_at = 0  # a failed cut is tried again once the buffer is this long

    @property
    def buffered(self) -> int:
        """Bytes received and not decoded yet."""
        return len(self._buffer)

    def decode(self, data: bytes, *, final: bool = False) -> list[Any]:
        """Take the next piece of the body; return the elements it completed."""
        buffer = self._buffer
        buffer += data
        if not self._opened and not self._not_an_array:
            start = _skip_whitespace(buffer, 0)
            if start < len(buffer):
                if buffer[start] == _OPEN:
                    del buffer[:start]
                    self._opened = True
                else:
                    self._not_an_array = True
        if final:
            return self._finish()
        if not self._opened or len(buffer) < self._retry_at:
            return []
        for cut in reversed(self._boundaries()):
            piece = buffer[: cut + 1]
            piece[cut] = _CLOSE  # the comma after the last complete element
            try:
                elements = self._loads(piece)
            except (ValueError, RecursionError):
                continue  # a cut inside an element, or invalid JSON: the end tells
            buffer[: cut + 1] = b"["
            self._scanned = 1
            self._retry_at = 0
            return _as_list(elements)
        self._retry_at = 2 * len(buffer)
        return []

    def _boundaries(self) -> deque[int]:
        """The offsets of the commas after the last few complete-looking elements."""
        buffer = self._buffer
        start = max(self._scanned - _OVERLAP, 1)
        self._scanned = len(buffer)
        found = deque(_BOUNDARY.finditer(buffer, start), maxlen=_CANDIDATES)
        return deque(match.end(1) - 1 for match in found)

    def _finish(self) -> list[Any]:
        buffer, self._buffer = self._buffer, bytearray()
        if not buffer.strip(_WHITESPACE):
            raise InvalidMessage("the response body is empty")
        return _as_list(self._loads(buffer))


def _skip_whitespace(data: bytearray, index: int) -> int:
    while index < len(data) and data[index] in _WHITESPACE:
        index += 1
    return index


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidMessage(
            f"expected a JSON array of Bayeux messages, got a JSON {type(value).__name__}"
        )
    return value
