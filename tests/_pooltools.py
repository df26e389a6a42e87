"""Helpers of the pool and lifecycle tests: the fake's view, and waiting on the pool's task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hathora_async import Region
from hathora_async.testing import FakeHathora


def statuses(fake: FakeHathora) -> dict[str, str]:
    """Every process of the fake's app: id -> status."""
    return {p["processId"]: p["status"] for p in fake.processes()}


async def until(predicate: Callable[[], bool]) -> None:
    """Wait up to 5 s for ``predicate``: the pool's background pass runs on its own."""
    for _ in range(5000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("still not true after 5 s")


def foreign_create(fake: FakeHathora, region: Region = Region.SEATTLE) -> str:
    """Another client of the fake's app creates a process in ``region``; returns its id.

    Straight in the fake's state, so faults on the create route meet only
    the client under test.
    """
    return fake.world.create_process(fake.world.apps[fake.app_id], region.value).process_id
