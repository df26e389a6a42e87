"""RetryPolicy, Timeouts and Retry-After parsing: pure functions, no I/O."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import attrs
import pytest

from hathora_async import RetryPolicy, Timeouts
from hathora_async import _constants as C
from hathora_async.retry import parse_retry_after

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_defaults_come_from_the_constants() -> None:
    policy = RetryPolicy()
    assert policy.attempts == C.DEFAULT_RETRY_ATTEMPTS
    assert policy.initial_delay == C.DEFAULT_RETRY_INITIAL_DELAY
    assert policy.multiplier == C.DEFAULT_RETRY_MULTIPLIER
    assert policy.max_delay == C.DEFAULT_RETRY_MAX_DELAY
    assert policy.max_retry_after == C.DEFAULT_RETRY_AFTER_CAP
    assert policy.jitter is True
    timeouts = Timeouts()
    assert (timeouts.connect, timeouts.read, timeouts.total) == (
        C.DEFAULT_CONNECT_TIMEOUT,
        C.DEFAULT_READ_TIMEOUT,
        C.DEFAULT_TOTAL_TIMEOUT,
    )


def test_none_means_a_single_attempt() -> None:
    assert RetryPolicy.none().attempts == 1


def test_policy_and_timeouts_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        RetryPolicy().attempts = 9  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Timeouts().total = 1.0  # type: ignore[misc]


def test_backoff_without_jitter_grows_then_caps() -> None:
    policy = RetryPolicy(initial_delay=0.5, multiplier=3.0, max_delay=4.0, jitter=False)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.0, 4.0]


def test_full_jitter_draws_within_zero_and_the_bound() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=3.0)
    rng = random.Random(5)
    for n, bound in ((1, 1.0), (2, 2.0), (3, 3.0), (9, 3.0)):
        draws = [policy.backoff(n, rng) for _ in range(500)]
        assert all(0.0 <= d <= bound for d in draws)
        # Spread over the whole range, not stuck at one end.
        assert min(draws) < 0.1 * bound
        assert max(draws) > 0.9 * bound


def test_backoff_of_a_very_late_retry_does_not_overflow() -> None:
    policy = RetryPolicy(attempts=10_000, initial_delay=0.1, multiplier=2.0, max_delay=7.0)
    assert policy.backoff(5_000, random.Random(1)) <= 7.0
    assert attrs.evolve(policy, jitter=False).backoff(5_000) == 7.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"attempts": True},
        {"attempts": 2.0},
        {"initial_delay": -0.1},
        {"multiplier": 0},
        {"max_delay": -1},
        {"max_retry_after": -1},
        {"initial_delay": math.nan},
    ],
)
def test_bad_policy_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_number_timeout_is_the_whole_call_deadline() -> None:
    assert Timeouts.coerce(60) == Timeouts(
        connect=C.DEFAULT_CONNECT_TIMEOUT, read=C.DEFAULT_READ_TIMEOUT, total=60.0
    )
    # Connect and read limits never exceed a short deadline.
    assert Timeouts.coerce(0.5) == Timeouts(connect=0.5, read=0.5, total=0.5)
    finer = Timeouts(connect=1, read=2, total=3)
    assert Timeouts.coerce(finer) is finer


@pytest.mark.parametrize("value", [True, "5", None, [1]])
def test_a_timeout_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        Timeouts.coerce(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, math.nan])
def test_a_non_positive_timeout_is_refused(value: float) -> None:
    with pytest.raises(ValueError):
        Timeouts.coerce(value)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        # HTTP date, IMF-fixdate form: 90 s after NOW.
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        # The obsolete RFC 850 and asctime forms are HTTP dates too.
        ("Wednesday, 01-May-24 12:00:30 GMT", 30.0),
        ("Wed May  1 12:00:45 2024", 45.0),
        # A decimal delay, as some gateways send it.
        ("1.5", 1.5),
        (" 0.25 ", 0.25),
        # A date in the past means "now".
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
    ],
)
def test_retry_after_in_both_forms(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [
        *[None, "", "  ", "soon", "-3", "-0.5", "²", "nan", "inf", "1e3", "1.", ".5", "1,5"],
        "Mon, 99 Foo 2024 99:99:99 GMT",
    ],
)
def test_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_retry_after_date_defaults_to_the_wall_clock() -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=100)
    seconds = parse_retry_after(format_datetime(later, usegmt=True))
    assert seconds is not None
    assert 98.0 <= seconds <= 100.0
