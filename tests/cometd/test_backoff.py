"""Exponential backoff with jitter, a cap and a floor."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import pytest

from aiosfstream.cometd.backoff import Backoff


def constant(value: float) -> Callable[[], float]:
    """A ``random`` that always returns *value*."""
    return lambda: value


def sequence(*values: float) -> Callable[[], float]:
    """A ``random`` that returns *values* in turn."""
    iterator: Iterator[float] = iter(values)
    return lambda: next(iterator)


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, cap=30.0, factor=2.0, random=constant(1.0))
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_other_factor() -> None:
    backoff = Backoff(initial=1.0, cap=100.0, factor=3.0, random=constant(1.0))
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 3.0, 9.0, 27.0, 81.0, 100.0]


def test_factor_one_is_a_constant_delay() -> None:
    backoff = Backoff(initial=2.0, cap=10.0, factor=1.0, random=constant(1.0))
    assert [backoff.next_delay() for _ in range(5)] == [2.0] * 5


def test_initial_equal_to_cap() -> None:
    backoff = Backoff(initial=5.0, cap=5.0, random=constant(1.0))
    assert [backoff.next_delay() for _ in range(3)] == [5.0, 5.0, 5.0]


def test_jitter_takes_the_lower_half_of_the_ceiling_at_zero() -> None:
    backoff = Backoff(initial=1.0, cap=8.0, random=constant(0.0))
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_jitter_is_linear_in_the_random_draw() -> None:
    backoff = Backoff(initial=4.0, cap=100.0, random=sequence(0.5, 0.25, 0.75))
    assert backoff.next_delay() == pytest.approx(4.0 * 0.75)
    assert backoff.next_delay() == pytest.approx(8.0 * 0.625)
    assert backoff.next_delay() == pytest.approx(16.0 * 0.875)


def test_jitter_stays_within_half_the_ceiling_and_the_ceiling() -> None:
    rng = random.Random(1234)
    backoff = Backoff(initial=0.5, cap=30.0, random=rng.random)
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0] + [30.0] * 200
    delays = [backoff.next_delay() for _ in ceilings]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    # The jitter really varies: the capped delays are not all the same.
    assert len(set(delays[6:])) > 100


def test_default_random_is_used() -> None:
    backoff = Backoff()
    for _ in range(6):
        backoff.next_delay()
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(15.0 <= delay <= 30.0 for delay in delays)
    assert len(set(delays)) > 1


def test_minimum_is_a_floor() -> None:
    backoff = Backoff(initial=1.0, cap=30.0, random=constant(0.0))
    assert backoff.next_delay(minimum=10.0) == 10.0
    # The floor wins over the cap: the server's interval must be honoured.
    assert backoff.next_delay(minimum=100.0) == 100.0
    # A floor below the delay changes nothing.
    assert backoff.next_delay(minimum=0.1) == 2.0


def test_minimum_does_not_stop_the_growth() -> None:
    backoff = Backoff(initial=1.0, cap=30.0, random=constant(1.0))
    for _ in range(3):
        backoff.next_delay(minimum=50.0)
    assert backoff.next_delay() == 8.0


def test_scale_multiplies_the_ceiling() -> None:
    backoff = Backoff(initial=1.0, cap=100.0, random=constant(1.0))
    assert backoff.next_delay(scale=10.0) == 10.0
    assert backoff.next_delay(scale=10.0) == 20.0
    assert backoff.next_delay() == 4.0
    assert backoff.next_delay(scale=10.0) == 80.0


def test_scale_is_capped() -> None:
    backoff = Backoff(initial=1.0, cap=30.0, random=constant(1.0))
    assert backoff.next_delay(scale=1000.0) == 30.0
    # A capped attempt does not count: normal delays resume where they were.
    assert backoff.next_delay() == 1.0


def test_reset_starts_over() -> None:
    backoff = Backoff(initial=0.5, cap=30.0, random=constant(1.0))
    for _ in range(20):
        backoff.next_delay()
    assert backoff.next_delay() == 30.0
    backoff.reset()
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("initial", "cap", "factor", "last"),
    [
        (0.5, 30.0, 2.0, 30.0),
        (1e-9, 1e9, 1000.0, 1e9),
        # 1.0001 ** 10_000 is only e: still far from the cap, but it must not blow up.
        (0.001, 3600.0, 1.0001, None),
        (1.0, 10.0, 1.0, 1.0),
    ],
)
def test_no_overflow_after_ten_thousand_attempts(
    initial: float, cap: float, factor: float, last: float | None
) -> None:
    backoff = Backoff(initial=initial, cap=cap, factor=factor, random=constant(1.0))
    previous = 0.0
    for _ in range(10_000):
        delay = backoff.next_delay()
        assert math.isfinite(delay)
        assert previous <= delay <= cap
        previous = delay
    if last is not None:
        assert backoff.next_delay() == pytest.approx(last)


def test_no_overflow_with_scaled_attempts_mixed_in() -> None:
    backoff = Backoff(random=constant(1.0))
    for attempt in range(10_000):
        delay = backoff.next_delay(scale=5.0 if attempt % 7 == 0 else 1.0)
        assert 0 < delay <= 30.0
    assert backoff.next_delay() == 30.0


@pytest.mark.parametrize(
    ("kwargs", "scale"),
    [
        pytest.param({"cap": math.inf}, 1.0, id="cap=inf"),
        pytest.param({}, 0.0, id="scale=0"),
        pytest.param({}, -1.0, id="scale=-1"),
    ],
)
def test_attempts_never_overflow_even_when_the_cap_is_out_of_reach(
    kwargs: dict[str, float], scale: float
) -> None:
    """``cap=inf`` passes validation and ``scale`` is not checked at all; then the ceiling
    never reaches the cap, and ``factor ** attempt`` must still not overflow (it did after
    1024 attempts with factor 2). Rejecting the parameters with ValueError is fine too."""
    try:
        backoff = Backoff(random=constant(1.0), **kwargs)
        delays = [backoff.next_delay(scale=scale) for _ in range(10_000)]
    except ValueError:
        return
    assert all(delay >= 0 for delay in delays)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.0},
        {"initial": -1.0},
        {"initial": 31.0, "cap": 30.0},
        {"cap": 0.0},
        {"cap": -5.0},
        {"factor": 0.5},
        {"factor": 0.0},
        {"factor": -2.0},
        {"initial": math.nan},
        {"cap": math.nan},
    ],
)
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_repr_hides_the_random_function() -> None:
    assert "random" not in repr(Backoff(random=constant(0.5)))
