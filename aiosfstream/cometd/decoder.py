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
yields a wrong message: the decoder then tries the cut before it.

When none of the last few cuts decodes (elements that carry serialized JSON in their
text fields, or lists of objects, hide the real ends), the decoder stops guessing for
the rest of the body and follows its structure exactly: strings, escapes and nesting
depth, kept from one piece to the next, so each byte is scanned once and the commas
between top-level elements are known for sure. That is slower per byte than the
guess, which is why it is not the first choice, but it keeps the memory bounded by the
largest element whatever the elements hold.

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
# Cuts tried, from the last one back, before scanning the body exactly.
_CANDIDATES = 3
# The exact scan: what it skips in one step (text without structure, and whole
# strings with their escapes), at the array's own level and inside its elements, and
# the rest of a string that an earlier piece left open.
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_SKIP_INSIDE = re.compile(rb'(?:[^][{}"]+|' + _STRING + rb")*", re.DOTALL)
_SKIP_AT_TOP = re.compile(rb'(?:[^][{}",]+|' + _STRING + rb")*", re.DOTALL)
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_COMMA, _QUOTE = ord(","), ord('"')
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
        self._exact: _ExactScan | None = None  # set once guessing the cuts failed

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
        if not self._opened:
            return []
        if self._exact is None:
            guesses = self._boundaries()
            for guess in reversed(guesses):
                elements = self._decode_before(guess, guessed=True)
                if elements is not None:
                    return elements
            if not guesses:
                return []
            self._exact = _ExactScan()
        cut = self._exact.last_comma(buffer)
        if cut is None:
            return []
        elements = self._decode_before(cut, guessed=False)
        assert elements is not None  # an exact cut raises rather than fail quietly
        self._exact.moved_back(cut)
        return elements

    def _decode_before(self, cut: int, *, guessed: bool) -> list[Any] | None:
        """Decode the elements before the comma at *cut*, and drop them from the buffer.

        A guessed cut that does not decode returns ``None``; an exact one raises.
        """
        buffer = self._buffer
        piece = buffer[: cut + 1]
        piece[cut] = _CLOSE  # the comma after the last complete element
        try:
            elements = self._loads(piece)
        except (ValueError, RecursionError):
            if guessed:
                return None  # a cut inside an element, or invalid JSON: the end tells
            raise
        buffer[: cut + 1] = b"["
        self._scanned = 1
        return _as_list(elements)

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


class _ExactScan:
    """Where the top-level commas of an array are, found by following its structure.

    The state (offset reached, nesting depth, inside a string or not) carries over
    from one piece to the next, so each byte is looked at once.
    """

    def __init__(self) -> None:
        self._offset = 0  # the next byte to look at
        self._depth = 0  # 1 inside the array itself
        self._in_string = False

    def last_comma(self, buffer: bytearray) -> int | None:
        """Scan what arrived since the last call; return the last top-level comma."""
        found = None
        offset, depth, in_string = self._offset, self._depth, self._in_string
        end = len(buffer)
        while offset < end:
            if in_string:
                offset = _skip(_STRING_REST, buffer, offset)
                if offset == end or buffer[offset] != _QUOTE:
                    break  # the string goes on in the next piece (maybe after a "\\")
                offset += 1
                in_string = False
                continue
            offset = _skip(_SKIP_AT_TOP if depth == 1 else _SKIP_INSIDE, buffer, offset)
            if offset == end:
                break
            byte = buffer[offset]
            offset += 1
            if byte == _QUOTE:
                in_string = True  # a string that does not end in this piece
            elif byte == _COMMA:
                found = offset - 1
            elif byte in _OPENERS:
                depth += 1
            else:
                depth -= 1
        self._offset, self._depth, self._in_string = offset, depth, in_string
        return found

    def moved_back(self, cut: int) -> None:
        """The buffer up to the comma at *cut* became one ``[``: shift the offset."""
        self._offset -= cut


_OPENERS = frozenset(b"[{")


def _skip(pattern: re.Pattern[bytes], buffer: bytearray, offset: int) -> int:
    match = pattern.match(buffer, offset)
    assert match is not None  # each of the patterns also matches nothing
    return match.end()


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
