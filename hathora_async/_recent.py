"""What this client created lately: a 404 for one of those is lag, not absence."""

from __future__ import annotations

from collections import OrderedDict
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
        # Insertion order is time order: the oldest entry is always first.
        self._at: OrderedDict[tuple[str, str], float] = OrderedDict()

    def note(self, kind: str, key: str) -> float:
        """Record that ``kind`` ("process" or "room") ``key`` was created now; returns now."""
        now = self._clock()
        self._prune(now)
        self._at.pop((kind, key), None)
        self._at[(kind, key)] = now
        while len(self._at) > C.MAX_RECENT_CREATES:
            self._at.popitem(last=False)
        return now

    def lag_until(self, kind: str, key: str) -> float | None:
        """Until when (clock reading) a 404 for ``key`` means "not visible yet"; None if never."""
        at = self._at.get((kind, key))
        return None if at is None else at + C.READ_AFTER_CREATE_GRACE

    def _prune(self, now: float) -> None:
        horizon = now - C.READ_AFTER_CREATE_GRACE
        while self._at:
            key, at = next(iter(self._at.items()))
            if at >= horizon:
                return
            del self._at[key]
