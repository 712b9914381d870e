"""The server's advice, in seconds, with junk ignored."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from aiosfstream.cometd.advice import Advice, Reconnect
from tests.cometd import samples


def test_defaults() -> None:
    advice = Advice()
    assert advice.reconnect is Reconnect.RETRY
    assert advice.timeout == 0.0
    assert advice.interval == 0.0


def test_milliseconds_become_seconds() -> None:
    advice = Advice().updated({"timeout": 110000, "interval": 2500, "reconnect": "retry"})
    assert advice == Advice(Reconnect.RETRY, timeout=110.0, interval=2.5)
    assert isinstance(advice.timeout, float)
    assert isinstance(advice.interval, float)


def test_fractional_milliseconds() -> None:
    assert Advice().updated({"interval": 1.5}).interval == pytest.approx(0.0015)


def test_zero_is_a_valid_value() -> None:
    advice = Advice(timeout=5.0, interval=5.0).updated({"timeout": 0, "interval": 0})
    assert advice.timeout == 0.0
    assert advice.interval == 0.0


def test_salesforce_first_connect_advice() -> None:
    reply = samples.load(samples.FIRST_CONNECT)
    assert Advice().updated(reply["advice"]) == Advice(Reconnect.RETRY, 110.0, 0.0)


@pytest.mark.parametrize(
    ("value", "reconnect"),
    [("retry", Reconnect.RETRY), ("handshake", Reconnect.HANDSHAKE), ("none", Reconnect.NONE)],
)
def test_reconnect_values(value: str, reconnect: Reconnect) -> None:
    assert Advice().updated({"reconnect": value}).reconnect is reconnect
    # Reconnect is a str enum: it compares equal to the wire value.
    assert reconnect == value


@pytest.mark.parametrize(
    "junk", ["RETRY", "Handshake", "reconnect", "", None, 1, True, [], {}, ["retry"]]
)
def test_unknown_reconnect_is_ignored(junk: object) -> None:
    advice = Advice(reconnect=Reconnect.HANDSHAKE).updated({"reconnect": junk})
    assert advice.reconnect is Reconnect.HANDSHAKE


@pytest.mark.parametrize("junk", [-1, -0.5, True, False, "1000", "", None, [1000], {"ms": 1000}])
@pytest.mark.parametrize("name", ["timeout", "interval"])
def test_junk_durations_are_ignored(name: str, junk: object) -> None:
    before = Advice(Reconnect.RETRY, timeout=3.0, interval=4.0)
    after = before.updated({name: junk})
    assert after == before


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("NaN", id="NaN"),
        pytest.param("Infinity", id="Infinity"),
        pytest.param("-Infinity", id="-Infinity"),
        pytest.param("1e400", id="1e400"),
        pytest.param("1" + "0" * 400, id="int-401-digits"),
    ],
)
@pytest.mark.parametrize("name", ["timeout", "interval"])
def test_non_finite_or_huge_durations_are_ignored(name: str, literal: str) -> None:
    """Python's ``json.loads`` (the client's default decoder) accepts these literals.

    ``NaN``/``Infinity``/``1e400`` decode to non-finite floats and a 401-digit integer to an
    ``int`` too large for a float: none is a usable duration, so like any other junk they
    must leave the advice as it was (an infinite interval would make the client sleep
    forever; the huge integer must not crash the connection with ``OverflowError``).
    """
    fields = json.loads(f'{{"{name}": {literal}}}')
    before = Advice(Reconnect.RETRY, timeout=3.0, interval=4.0)
    after = before.updated(fields)
    assert math.isfinite(after.timeout)
    assert math.isfinite(after.interval)
    assert after == before


def test_updated_keeps_the_fields_it_is_not_given() -> None:
    before = Advice(Reconnect.HANDSHAKE, timeout=110.0, interval=2.0)
    assert before.updated({"interval": 500}) == Advice(Reconnect.HANDSHAKE, 110.0, 0.5)
    assert before.updated({"timeout": 1000}) == Advice(Reconnect.HANDSHAKE, 1.0, 2.0)
    assert before.updated({"reconnect": "none"}) == Advice(Reconnect.NONE, 110.0, 2.0)
    assert before.updated({}) == before
    # Fields Advice does not model are ignored.
    assert before.updated({"multiple-clients": True, "hosts": ["x"]}) == before


@pytest.mark.parametrize("fields", [None, "retry", 5, ["reconnect", "none"], True])
def test_updated_with_a_non_dict_returns_the_same_advice(fields: object) -> None:
    before = Advice(Reconnect.HANDSHAKE, timeout=1.0, interval=2.0)
    assert before.updated(fields) is before


def test_updated_does_not_change_the_original() -> None:
    before = Advice()
    after = before.updated({"reconnect": "none", "timeout": 1000, "interval": 1000})
    assert before == Advice()
    assert after == Advice(Reconnect.NONE, 1.0, 1.0)


def test_advice_is_frozen() -> None:
    advice = Advice()
    with pytest.raises(dataclasses.FrozenInstanceError):
        advice.timeout = 1.0  # type: ignore[misc]
