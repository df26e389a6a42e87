"""A sleep for the retry and budget tests that records its delays instead of waiting."""

from __future__ import annotations

import asyncio


class Recorder:
    """An instant sleep that records what it was asked (the clock does not move)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)
