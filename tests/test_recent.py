"""RecentCreates: what a client created lately, forgotten after the grace, bounded."""

from __future__ import annotations

import pytest

from hathora_async import _constants as C
from hathora_async._recent import RecentCreates

GRACE = C.READ_AFTER_CREATE_GRACE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lasts_the_grace_and_is_then_forgotten() -> None:
    clock = Clock()
    recent = RecentCreates(clock)
    assert recent.note("process", "a") == clock.now
    assert recent.lag_until("process", "a") == clock.now + GRACE
    assert recent.lag_until("room", "a") is None  # kinds apart
    clock.now += GRACE + 0.001
    recent.note("room", "b")  # a note prunes what has expired
    assert recent.lag_until("process", "a") is None
    assert recent.lag_until("room", "b") == clock.now + GRACE


def test_noting_again_renews_an_entry_even_when_it_was_the_oldest() -> None:
    clock = Clock()
    recent = RecentCreates(clock)
    recent.note("process", "a")
    clock.now += 5
    recent.note("process", "b")
    clock.now += 5
    recent.note("process", "a")  # a is the newest now, b the oldest
    clock.now += GRACE - 4  # b (noted at +5 s) expired, a (renewed at +10 s) not
    recent.note("process", "c")
    assert recent.lag_until("process", "b") is None
    assert recent.lag_until("process", "a") == 1010.0 + GRACE
    assert recent.lag_until("process", "c") == clock.now + GRACE


def test_everything_expires_and_noting_starts_over() -> None:
    clock = Clock()
    recent = RecentCreates(clock)
    for key in "abc":
        recent.note("process", key)
    clock.now += 2 * GRACE
    recent.note("process", "d")
    assert [recent.lag_until("process", k) for k in "abc"] == [None, None, None]
    clock.now += GRACE + 1
    recent.note("process", "e")
    assert recent.lag_until("process", "d") is None
    assert recent.lag_until("process", "e") == clock.now + GRACE


def test_the_number_kept_is_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "MAX_RECENT_CREATES", 3)
    clock = Clock()
    recent = RecentCreates(clock)
    for key in "abcd":
        clock.now += 1
        recent.note("process", key)
    assert recent.lag_until("process", "a") is None
    assert [recent.lag_until("process", k) for k in "bcd"] == [
        1002.0 + GRACE,
        1003.0 + GRACE,
        1004.0 + GRACE,
    ]
    clock.now = 1002.0 + GRACE + 0.5  # b expired: found though the oldest was evicted
    recent.note("process", "e")
    assert recent.lag_until("process", "b") is None
    assert recent.lag_until("process", "c") == 1003.0 + GRACE
