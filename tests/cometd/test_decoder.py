"""The incremental decoder of response bodies: the same messages whatever the pieces."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiosfstream.cometd.decoder import ArrayDecoder
from aiosfstream.cometd.messages import InvalidMessage

# Elements chosen to hold what looks like a boundary: "},{" in strings and in nested
# lists of objects, and whitespace between the objects of the array.
ELEMENTS: list[dict[str, Any]] = [
    {"channel": "/topic/a", "data": {"event": {"replayId": 1}, "text": "},{"}},
    {"channel": "/topic/a", "data": {"list": [{"x": 1}, {"y": 2}], "s": "} , {"}},
    {"channel": "/meta/connect", "successful": True, "id": "7"},
    {"channel": "/topic/b", "data": {"quote": '"},{"', "nested": {"deep": [[{}], {}]}}},
    {"channel": "/topic/\u00e9", "data": {"unicode": "\u2603 \U0001f600"}},
]


def pieces(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(body)) for cut in cuts})
    edges = [0, *points, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(edges)]


def decode_all(body: bytes, cuts: list[int], loads: Any = json.loads) -> tuple[list[Any], int]:
    decoder = ArrayDecoder(loads)
    parts = pieces(body, cuts)
    found: list[Any] = []
    early = 0
    for index, part in enumerate(parts):
        got = decoder.decode(part, final=index == len(parts) - 1)
        if index < len(parts) - 1:
            early += len(got)
        found.extend(got)
    return found, early


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_split_gives_the_same_elements(separators: tuple[str, str], cuts: list[int]) -> None:
    body = json.dumps(ELEMENTS * 3, separators=separators).encode()
    found, _ = decode_all(body, cuts)
    assert found == ELEMENTS * 3


def test_elements_are_handed_over_before_the_body_ends() -> None:
    body = json.dumps([{"channel": "/topic/a", "data": {"n": n}} for n in range(1000)]).encode()
    found, early = decode_all(body, list(range(4096, len(body), 4096)))
    assert len(found) == 1000
    assert early > 900  # all but the last piece's worth came before the end


def test_a_cut_inside_an_element_is_retried_and_never_yields_a_wrong_message() -> None:
    tricky = {"channel": "/topic/a", "data": {"list": [{"a": 1}, {"b": 2}, {"c": 3}]}}
    body = json.dumps([tricky, tricky], separators=(",", ":")).encode()
    # Cut right after the first "},{" inside the nested list.
    cut = body.index(b"},{") + 3
    found, _ = decode_all(body, [cut])
    assert found == [tricky, tricky]


def test_orjson_decodes_the_same() -> None:
    import orjson

    body = json.dumps(ELEMENTS * 50).encode()
    found, early = decode_all(body, list(range(100, len(body), 100)), orjson.loads)
    assert found == ELEMENTS * 50
    assert early > 0


def test_whitespace_around_the_array_is_accepted() -> None:
    found, _ = decode_all(b'  \n [ {"channel": "/a"} ] \n', [1, 3, 6])
    assert found == [{"channel": "/a"}]


def test_an_empty_array_gives_nothing() -> None:
    assert decode_all(b"[]", [1]) == ([], 0)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", InvalidMessage),
        (b"   ", InvalidMessage),
        (b'{"channel": "/a"}', InvalidMessage),
        (b'[{"channel": "/a"},', json.JSONDecodeError),
        (b'[{"channel": "/a"}, {"channel": ', json.JSONDecodeError),
        (b"<html>", json.JSONDecodeError),
    ],
)
def test_a_body_that_is_no_complete_array_raises_at_the_end(
    body: bytes, error: type[Exception]
) -> None:
    decoder = ArrayDecoder(json.loads)
    assert decoder.decode(body) == [] or body.startswith(b"[")
    with pytest.raises(error):
        decoder.decode(b"", final=True)


def test_invalid_json_in_the_middle_raises_at_the_end_after_the_valid_part() -> None:
    decoder = ArrayDecoder(json.loads)
    first = decoder.decode(b'[{"channel": "/a"},{"channel": "/b"},{"bad": }')
    assert first == [{"channel": "/a"}, {"channel": "/b"}]
    with pytest.raises(json.JSONDecodeError):
        decoder.decode(b',{"channel": "/c"}]', final=True)


def test_a_huge_element_is_not_decoded_again_on_every_piece() -> None:
    calls = 0

    def counting(text: Any) -> Any:
        nonlocal calls
        calls += 1
        return json.loads(text)

    big = {"channel": "/a", "data": {"list": [{"n": n} for n in range(20_000)]}}
    body = json.dumps([big, big], separators=(",", ":")).encode()
    decoder = ArrayDecoder(counting)
    parts = pieces(body, list(range(1024, len(body), 1024)))
    found: list[Any] = []
    for index, part in enumerate(parts):
        found.extend(decoder.decode(part, final=index == len(parts) - 1))
    assert found == [big, big]
    # Guessing would try (and fail) a cut on each of the ~500 pieces; the exact scan
    # decodes only where an element ends.
    assert calls < 40, calls
    assert decoder.buffered == 0


def _serialized_json_event(n: int) -> dict[str, Any]:
    # A text field holding serialized JSON: many "},{" that belong to a string.
    inner = json.dumps([{"k": n, "v": "x"} for _ in range(6)])
    return {"channel": "/topic/a", "data": {"payload": inner, "escaped": '\\"},{\\"'}}


def test_serialized_json_in_text_fields_does_not_make_the_decoder_hold_the_body() -> None:
    events = [_serialized_json_event(n) for n in range(2000)]
    body = json.dumps(events, separators=(",", ":")).encode()
    element = len(json.dumps(events[0], separators=(",", ":")))
    decoder = ArrayDecoder(json.loads)
    found: list[Any] = []
    most = 0
    parts = pieces(body, list(range(4096, len(body), 4096)))
    for index, part in enumerate(parts):
        found.extend(decoder.decode(part, final=index == len(parts) - 1))
        most = max(most, decoder.buffered)
    assert found == events
    # Never more than one piece and one element waiting, whatever the strings hold.
    assert most <= 4096 + 2 * element, (most, len(body))


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=15),
    texts=st.lists(st.text(alphabet='{}[],"\\: ab\u00e9', max_size=12), min_size=1, max_size=6),
)
def test_any_split_of_strings_full_of_structure_gives_the_same_elements(
    cuts: list[int], texts: list[str]
) -> None:
    # Strings made of quotes, backslashes and brackets, so escapes are split between
    # pieces and the guessed cuts fail, exercising the exact scan.
    events = [{"channel": "/topic/a", "data": {"t": text, "l": [{"x": text}]}} for text in texts]
    events.append(_serialized_json_event(0))
    body = json.dumps(events * 2).encode()
    found, _ = decode_all(body, cuts)
    assert found == events * 2


def test_invalid_json_met_by_the_exact_scan_raises_from_that_piece() -> None:
    decoder = ArrayDecoder(json.loads)
    event = _serialized_json_event(1)
    serialized = json.dumps(event)
    # The guesses fail on the serialized JSON, so the decoder scans exactly from here on.
    # Past the fourth "}, {" of the serialized payload: the last guesses are all in it.
    half = [match.end() for match in re.finditer(r"\}, \{", serialized)][3]
    assert decoder.decode(f"[{serialized},{serialized[:half]}".encode()) == [event]
    with pytest.raises(json.JSONDecodeError):
        decoder.decode(f'{serialized[half:]},{{"bad": }},{{"channel": "/c"}},'.encode())
