"""What this client created lately: a 404 for one of those is lag, not absence."""

from __future__ import annotations

import math
from collections.abc import Callable

from . import _constants as C

__all__ = ["RecentCreates"]


class RecentCreates:
    """Process and room ids this client created, with when (its monotonic clock).

    Shared by a client and its siblings. Entries older than
    ``READ_AFTER_CREATE_GRACE`` are forgotten, and at most
    ``MAX_RECENT_CREATES`` are kept, so memory stays bounded.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # Insertion order is time order: the oldest entry is always first. A plain
        # dict (re-inserting moves an entry last): every create notes here.
        self._at: dict[tuple[str, str], float] = {}
        # When the oldest entry expires (no later than): until then nothing to prune.
        self._expires = math.inf

    def note(self, kind: str, key: str) -> float:
        """Record that ``kind`` ("process" or "room") ``key`` was created now; returns now."""
        now = self._clock()
        at = self._at
        # Every create passes here: the oldest entry is looked at only once it may be stale.
        if now >= self._expires:
            self._prune(now)
        entry = (kind, key)
        # One lookup when ``key`` is new (the usual case): a noted one moves last.
        if at.pop(entry, None) is None:
            if not at:
                self._expires = now + C.READ_AFTER_CREATE_GRACE
            elif len(at) >= C.MAX_RECENT_CREATES:
                del at[next(iter(at))]  # (``_expires`` stays a lower bound: no need to touch)
        at[entry] = now
        return now

    def lag_until(self, kind: str, key: str) -> float | None:
        """Until when (clock reading) a 404 for ``key`` means "not visible yet"; None if never."""
        at = self._at.get((kind, key))
        return None if at is None else at + C.READ_AFTER_CREATE_GRACE

    def _prune(self, now: float) -> None:
        horizon = now - C.READ_AFTER_CREATE_GRACE
        at = self._at
        while at:
            key, when = next(iter(at.items()))
            if when >= horizon:
                self._expires = when + C.READ_AFTER_CREATE_GRACE
                return
            del at[key]
        self._expires = math.inf  # empty: the next entry sets it
