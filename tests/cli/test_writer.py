"""The event lines of ``listen``: written whole, or (when the last check refuses) not at all."""

from __future__ import annotations

import io

import pytest

from aiosfstream.cli.writer import JsonLinesWriter
from aiosfstream.exceptions import LeaseLost


def test_a_line_is_written_and_flushed_with_bytes_in_hex() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    JsonLinesWriter(stream).write({"replay_id": b"\x00\x01", "n": 1})
    assert stream.buffer.getvalue() == b'{"replay_id":"0001","n":1}\n'


def test_a_refusal_just_before_writing_leaves_nothing_written() -> None:
    # listen --lease checks the lease after the line is ready: a process paused in
    # between (SIGSTOP) past the ttl must not print the event when it runs again.
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    calls: list[str] = []

    def refuse() -> None:
        calls.append("checked")
        raise LeaseLost("the lease is not held any more")

    with pytest.raises(LeaseLost):
        JsonLinesWriter(stream).write({"n": 1}, just_before=refuse)
    assert calls == ["checked"]
    assert stream.buffer.getvalue() == b""
