"""Clocks for the fake: the real monotonic one, or a manual one for fast tests."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """A clock that moves only when told to. Call it for the current time.

    Pass it as ``clock=`` to ``FakeHathora`` so a test can jump a process past its
    boot delay or idle timeout instantly: ``clock.advance(100)``.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backward)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backward")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """An instant ``asyncio.sleep`` stand-in that advances this clock."""
        self.advance(max(0.0, seconds))
