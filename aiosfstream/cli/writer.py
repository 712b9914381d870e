"""Writing events to stdout, one line of compact JSON each."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import TextIO

from aiosfstream.cli.errors import OutputClosed
from aiosfstream.typing import Message

__all__ = ["JsonLinesWriter", "silence_stdout"]


def _bytes_as_hex(value: object) -> str:
    """JSON has no bytes: a Pub/Sub replay id (or an Avro ``bytes`` field) is written in hex."""
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


class JsonLinesWriter:
    """Writes each message as one line of compact JSON, in UTF-8, and flushes it.

    ``bytes`` values are written as lower-case hexadecimal text.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, message: Message, *, just_before: Callable[[], None] | None = None) -> None:
        """Write and flush *message*.

        :param just_before: called once the line is ready, right before it is written; an
            error it raises leaves nothing written
        :raises OutputClosed: the reader closed the pipe
        """
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=_bytes_as_hex)
        text += "\n"
        if just_before is not None:
            just_before()
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                # A lone surrogate (possible in decoded JSON) becomes its JSON escape.
                buffer.write(text.encode("utf-8", errors="backslashreplace"))
                buffer.flush()
            else:
                self.stream.write(text)
                self.stream.flush()
        except BrokenPipeError as error:
            raise OutputClosed from error


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail.

    For when the reader of stdout went away: the buffered rest has nowhere to go.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
