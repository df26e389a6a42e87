"""Coalesced polling (issue 12): waits of a region share one listing, over loopback."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from _pooltools import until

from hathora_async import (
    HathoraClient,
    ProcessFailedError,
    ProcessStatus,
    RateLimit,
    Region,
    RetryPolicy,
    WarmPool,
)
from hathora_async import _constants as C
from hathora_async.testing import FakeHathora, ManualClock

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


class Clock(ManualClock):
    """A manual clock whose sleep moves it and lets the other tasks run."""

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def sends(log: list[tuple[str, float, str]], clock: Any) -> aiohttp.TraceConfig:
    """Logs (kind, clock reading, query) of every request sent."""
    trace = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        log.append((params.url.path.split("/")[4], clock(), params.url.query_string))

    trace.on_request_start.append(on_start)
    return trace


@asynccontextmanager
async def setup(
    clock: Clock,
    log: list[tuple[str, float, str]],
    rate_limit: RateLimit | None = RateLimit(),  # noqa: B008 (frozen)
    **fake_options: Any,
) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    async with (
        FakeHathora(clock=clock, seed=3, **fake_options) as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=FAST,
            clock=clock,
            sleep=clock.sleep,
            timeout=30.0,
            trace_configs=[sends(log, clock)],
            rate_limit=rate_limit,
        ) as client,
    ):
        yield fake, client


def kinds(log: list[tuple[str, float, str]], kind: str) -> list[tuple[str, float, str]]:
    return [entry for entry in log if entry[0] == kind]


async def test_the_waits_of_a_region_share_listings_spaced_by_the_poll_interval() -> None:
    clock, log = Clock(), []
    async with setup(clock, log, boot_delay=10.0) as (_, client):
        result = await client.preallocate({Region.TOKYO: 8}, wait=True, poll_interval=1.0)
        assert result.complete and len(result.ready[Region.TOKYO]) == 8
    lists = kinds(log, "list")
    polls = len(lists) + len(kinds(log, "info"))
    # Alone, each of the 8 waits would poll about 5 times over the 10 s boot.
    assert lists and polls <= 12, log
    assert all("status=starting&status=running&region=Tokyo" in q for *_, q in lists)
    # One round in flight per region, rounds at least the poll interval apart.
    starts = [at for _, at, _ in lists]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(starts)), starts


async def test_a_lone_wait_reads_its_process_alone() -> None:
    clock, log = Clock(), []
    async with setup(clock, log, boot_delay=3.0) as (_, client):
        made = await client.processes.create_process(Region.TOKYO)
        running = await client.processes.wait_for_process(made.process_id)
        assert running.status == ProcessStatus.RUNNING
        assert client._watcher._regions == {}  # nothing left behind
    assert kinds(log, "list") == [] and kinds(log, "info")


async def test_concurrent_wait_for_process_calls_share_after_their_first_read() -> None:
    clock, log = Clock(), []
    async with setup(clock, log, boot_delay=10.0) as (_, client):
        made = [await client.processes.create_process(Region.DUBAI) for _ in range(4)]
        sibling = client.with_options(timeout=20.0)  # siblings share the watcher
        waits = [
            (client if i % 2 else sibling).processes.wait_for_process(p.process_id)
            for i, p in enumerate(made)
        ]
        done = await asyncio.gather(*waits)
        assert {p.status for p in done} == {ProcessStatus.RUNNING}
        assert client._watcher._regions == {}
    # The first read of each wait learns the region; the rest is shared.
    assert len(kinds(log, "info")) <= 4 + 2 and kinds(log, "list"), log


async def test_processes_past_the_listing_cap_are_read_alone() -> None:
    clock, log = Clock(), []
    count = C.LATEST_PROCESSES_LIMIT + 4
    async with setup(clock, log, boot_delay=5.0) as (_, client):
        result = await client.preallocate({Region.SYDNEY: count}, wait=True, poll_interval=1.0)
        assert result.complete and len(result.ready[Region.SYDNEY]) == count
    # The listing shows at most 10: the others fell back to their own reads.
    assert kinds(log, "list") and kinds(log, "info"), log


async def test_a_process_filtered_out_of_the_listing_is_read_alone_and_fails() -> None:
    clock, log = Clock(), []
    async with setup(clock, log, boot_delay=10.0) as (fake, client):
        made = [await client.processes.create_process(Region.LONDON) for _ in range(3)]
        fake.fail_process(made[0].process_id)
        outcomes = await asyncio.gather(
            *(client.processes.wait_for_process(p.process_id) for p in made),
            return_exceptions=True,
        )
    assert isinstance(outcomes[0], ProcessFailedError)
    assert [p.status for p in outcomes[1:]] == [ProcessStatus.RUNNING] * 2  # type: ignore[union-attr]


async def test_absent_from_a_listing_during_read_after_create_lag_is_not_gone() -> None:
    clock, log = Clock(), []
    async with setup(clock, log, boot_delay=2.0, read_after_create_lag=4.0) as (_, client):
        result = await client.preallocate({Region.FRANKFURT: 5}, wait=True, poll_interval=0.5)
    assert result.complete and not result.failed, result.failed
    assert kinds(log, "list")


@asynccontextmanager
async def real_time(
    log: list[tuple[str, float, str]], **fake_options: Any
) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    """The fake and a client on the real clock (for background tasks and handovers)."""
    async with (
        FakeHathora(seed=3, **fake_options) as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=FAST,
            trace_configs=[sends(log, time.monotonic)],
        ) as client,
    ):
        yield fake, client


@pytest.mark.parametrize("who", ["leader", "member"])
async def test_cancelling_a_wait_in_a_round_leaves_the_others_served(who: str) -> None:
    log: list[tuple[str, float, str]] = []
    async with real_time(log, boot_delay=1.0) as (_, client):
        made = [await client.processes.create_process(Region.CHICAGO) for _ in range(3)]
        waits = {
            p.process_id: asyncio.create_task(
                client.processes.wait_for_process(
                    p.process_id, poll_interval=0.2, max_poll_interval=0.2, timeout=5.0
                )
            )
            for p in made
        }
        watcher = client._watcher
        assert client.app_id is not None
        key = (client.app_id, Region.CHICAGO)

        def gathering() -> bool:
            # A round waiting its turn (after a first listing), with a member.
            state = watcher._regions.get(key)
            return (
                bool(kinds(log, "list"))
                and state is not None
                and bool(state.round and state.round.members)
            )

        await until(gathering)
        round_ = watcher._regions[key].round
        assert round_ is not None
        members = [pid for pid, _ in round_.members]
        victim = round_.leader if who == "leader" else members[0]
        waits[victim].cancel()
        done = dict(
            zip(waits, await asyncio.gather(*waits.values(), return_exceptions=True), strict=True)
        )
        assert isinstance(done.pop(victim), asyncio.CancelledError)
        assert {p.status for p in done.values()} == {ProcessStatus.RUNNING}  # type: ignore[union-attr]
        assert watcher._regions == {}


async def test_a_warm_pool_pass_lists_each_region_once() -> None:
    log: list[tuple[str, float, str]] = []
    async with (
        real_time(log, boot_delay=0.05) as (_, client),
        WarmPool(client, {Region.TOKYO: 4, Region.MUMBAI: 3}, poll_interval=1000.0) as pool,
    ):
        for _ in range(100):  # the background pass is 1000 s away: pass by hand
            await pool.refresh()
            if pool.ready:
                break
            await asyncio.sleep(0.05)
        log.clear()
        await pool.refresh()
        passed = list(log)
    # One listing per region answered the pass's 7 polls (none looks for strays now).
    assert sorted(q for kind, _, q in passed) == [
        "status=starting&status=running&region=Mumbai",
        "status=starting&status=running&region=Tokyo",
    ], passed


async def test_shared_polls_under_a_tight_limit_let_creates_through() -> None:
    clock, log = Clock(), []
    tight_limit = RateLimit(max_per_second=2.0, burst=1, adaptive=False)
    async with setup(clock, log, tight_limit, boot_delay=30.0) as (_, tight):
        made = [await tight.processes.create_process(Region.TOKYO) for _ in range(4)]
        waits = [
            asyncio.create_task(tight.processes.wait_for_process(p.process_id, timeout=60.0))
            for p in made
        ]
        await until(lambda: bool(kinds(log, "list")))
        log.clear()
        creates = [tight.processes.create_process(Region.TOKYO) for _ in range(3)]
        await asyncio.gather(*creates)
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    # Writes go first: the three creates are among the first four sends.
    assert [kind for kind, *_ in log[:4]].count("create") == 3, log
