"""The send budget (issue 12) against the fake's gateway rate limit, over loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from hathora_async import (
    ClientClosedError,
    HathoraClient,
    HathoraError,
    RateLimit,
    RateLimitedError,
    Region,
    RetryPolicy,
)
from hathora_async.testing import FakeHathora, Fault, ManualClock
from hathora_async.testing.__main__ import _parse

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


class Recorder:
    """An instant sleep that records what it was asked (the clock does not move)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


class Clock(ManualClock):
    """A manual clock whose sleep moves it and lets the other tasks run."""

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def order_of_requests(log: list[str]) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        log.append(params.url.path.split("/")[4])  # create, info, list, stop

    trace.on_request_start.append(on_start)
    return trace


@asynccontextmanager
async def client_for(fake: FakeHathora, **options: Any) -> AsyncIterator[HathoraClient]:
    options.setdefault("retry", FAST)
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, **options) as client:
        yield client


# -- the fake's gateway ----------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [(1, "1"), (3, "3"), (None, None)])
async def test_the_fake_answers_429_like_a_gateway(retry_after: int | None, header: str) -> None:
    clock = Clock()
    async with (
        FakeHathora(clock=clock, rate_limit=2.0, rate_burst=3, retry_after=retry_after) as fake,
        client_for(fake, retry=RetryPolicy.none(), rate_limit=None) as client,
    ):
        for _ in range(3):  # the burst
            await client.processes.get_latest_processes()
        with pytest.raises(RateLimitedError) as caught:
            await client.processes.create_process(Region.SEATTLE)
        assert caught.value.message.startswith("Too many requests")
        assert caught.value.headers.get("Retry-After") == header
        assert fake.processes_created == 0  # refused before the API
        clock.advance(0.5)  # one token back at 2 per second
        await client.processes.create_process(Region.SEATTLE)
        with pytest.raises(RateLimitedError):
            await client.processes.get_latest_processes()
        assert fake.gateway is not None
        assert (fake.gateway.admitted, fake.gateway.refused) == (4, 2)


async def test_the_fake_limits_each_token_on_its_own() -> None:
    async with FakeHathora(clock=ManualClock(), rate_limit=1.0, rate_burst=1) as fake:
        other = fake.add_token()
        async with (
            client_for(fake, retry=RetryPolicy.none(), rate_limit=None) as first,
            HathoraClient(
                other, fake.app_id, base_url=fake.url, retry=RetryPolicy.none(), rate_limit=None
            ) as second,
        ):
            await first.processes.get_latest_processes()
            await second.processes.get_latest_processes()
            with pytest.raises(RateLimitedError):
                await first.processes.get_latest_processes()


def test_the_fake_cli_takes_the_rate_limit_flags() -> None:
    args = _parse(["--rate-limit", "50", "--rate-burst", "5", "--retry-after", "none"])
    assert (args.rate_limit, args.rate_burst, args.retry_after) == (50.0, 5, None)
    args = _parse([])
    assert (args.rate_limit, args.rate_burst, args.retry_after) == (None, 10, 1)


@pytest.mark.parametrize(
    "options", [{"rate_limit": 0.0}, {"rate_limit": 1.0, "rate_burst": 0}, {"retry_after": -1}]
)
def test_the_fake_refuses_bad_rate_limits(options: dict[str, Any]) -> None:
    options.setdefault("rate_limit", 1.0)
    with pytest.raises(ValueError):
        FakeHathora(**options)


# -- settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings", [{"max_per_second": 0}, {"max_per_second": float("inf")}, {"burst": 0}]
)
def test_bad_rate_limits_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimit(**settings)


def test_rate_limit_must_be_a_rate_limit() -> None:
    with pytest.raises(TypeError):
        HathoraClient("t", "app", rate_limit=10)  # type: ignore[arg-type]


# -- one budget, shared -----------------------------------------------------------


async def test_a_ceiling_is_shared_by_concurrent_calls_and_siblings() -> None:
    # The clock moves only when the budget sleeps; each request's start is
    # stamped with it, client-side (on a manual clock a request may reach the
    # server a few sleeps after it left).
    clock = Clock()
    sent: list[float] = []
    trace = aiohttp.TraceConfig()

    async def on_start(*_: Any) -> None:
        sent.append(clock())

    trace.on_request_start.append(on_start)
    async with (
        FakeHathora(clock=clock) as fake,
        client_for(
            fake,
            clock=clock,
            sleep=clock.sleep,
            trace_configs=[trace],
            rate_limit=RateLimit(max_per_second=10.0, burst=1, adaptive=False),
        ) as client,
    ):
        sibling = client.with_options(timeout=20.0)
        calls = [client.processes.get_latest_processes() for _ in range(6)]
        calls += [sibling.processes.create_process(Region.LONDON) for _ in range(6)]
        await asyncio.gather(*calls)
        assert fake.processes_created == 6
        assert client.rate_limit_state.throttled == 0
        assert sibling.rate_limit_state == client.rate_limit_state
    assert len(sent) == 12
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) == pytest.approx(0.1)  # never two within 1 / max_per_second
    assert sent[-1] == pytest.approx(1.1)


async def test_without_a_ceiling_no_429_means_no_waiting() -> None:
    sleep = Recorder()
    async with FakeHathora() as fake, client_for(fake, sleep=sleep) as client:
        await asyncio.gather(*(client.processes.get_latest_processes() for _ in range(20)))
        for _ in range(80):
            await client.processes.get_latest_processes()
        state = client.rate_limit_state
    assert sleep.delays == []
    assert (state.rate, state.throttled, state.paused_until) == (None, 0, None)
    assert client._transport.budget.gated is False  # the fast path: nothing counted


# -- adapting -------------------------------------------------------------------


async def test_a_429_storm_lowers_the_rate_and_success_raises_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, "hathora_async")
    async with (
        FakeHathora(clock=clock, rate_limit=20.0, rate_burst=5, retry_after=None) as fake,
        client_for(fake, clock=clock, sleep=clock.sleep, timeout=60.0) as client,
    ):
        assert client.rate_limit_state.rate is None
        await asyncio.gather(*(client.processes.create_process("Chicago") for _ in range(40)))
        lowered = client.rate_limit_state
        assert lowered.throttled >= 1
        assert lowered.rate is not None
        assert fake.processes_created == 40  # every create made exactly one process
        assert any("answered 429" in r.getMessage() for r in caplog.records)
        # The limit goes away: successes probe the pace back up.
        assert fake.gateway is not None
        fake.gateway.rate = 1e9
        fake.gateway.burst = 10**9
        for _ in range(200):
            await client.processes.get_latest_processes()
            clock.advance(0.05)
        raised = client.rate_limit_state
        assert raised.rate is not None
        assert raised.rate > lowered.rate
        assert raised.throttled == lowered.throttled


async def test_the_budget_finds_the_limit_and_keeps_under_it() -> None:
    # Real time (about 2 s): the budget does not know the limit in advance.
    async with (
        FakeHathora(rate_limit=100.0, rate_burst=10, retry_after=None) as fake,
        client_for(fake, timeout=60.0) as client,
    ):
        result = await client.preallocate(
            {region: 14 for region in Region}, concurrency=100, wait=False
        )
        assert not result.failed
        assert fake.processes_created == 196
        assert fake.gateway is not None
        # Without the budget about 80 % are refused (see BENCHMARKS.md).
        assert fake.gateway.refused < 0.25 * (fake.gateway.admitted + fake.gateway.refused)
        state = client.rate_limit_state
        assert state.rate is not None
        assert 30 < state.rate < 150


async def test_retry_after_pauses_every_call_and_sibling() -> None:
    clock = ManualClock(100.0)
    sleep = Recorder()
    # Not adaptive: the pause alone holds calls back (no pace on top).
    async with (
        FakeHathora() as fake,
        client_for(fake, clock=clock, sleep=sleep, rate_limit=RateLimit(adaptive=False)) as client,
    ):
        target = await client.processes.create_process(Region.TOKYO)
        fake.faults.add("get_latest_processes", Fault(status=429, retry_after="3"))
        await client.processes.get_latest_processes()  # refused once, then paused 3 s
        assert client.rate_limit_state.paused_until == pytest.approx(103.0)
        sibling = client.with_options(timeout=10.0)
        before = len(sleep.delays)
        await sibling.processes.get_process_info(target.process_id)
        await client.processes.stop_process(target.process_id)
        # Each waited for the pause (the recorder does not move the clock).
        assert sleep.delays[before:] == [pytest.approx(3.0)] * 2
        assert client.rate_limit_state.throttled == 1


async def test_a_retry_after_above_the_cap_pauses_only_up_to_the_cap() -> None:
    clock = ManualClock(0.0)
    async with (
        FakeHathora() as fake,
        client_for(fake, clock=clock, retry=RetryPolicy(max_retry_after=5.0)) as client,
    ):
        fake.faults.add("get_latest_processes", Fault(status=429, retry_after="60"))
        with pytest.raises(RateLimitedError):
            await client.processes.get_latest_processes()
        assert client.rate_limit_state.paused_until == pytest.approx(5.0)


# -- creates --------------------------------------------------------------------


async def test_a_create_refused_by_429_is_retried_past_its_attempts() -> None:
    async with FakeHathora() as fake, client_for(fake, retry=RetryPolicy(attempts=2)) as client:
        fake.faults.add("create_process", Fault(status=429), times=6)
        process = await client.processes.create_process(Region.DALLAS)
        assert fake.request_counts["create_process"] == 7
        assert fake.processes_created == 1
        assert process.process_id == fake.processes()[0]["processId"]


async def test_a_create_refused_until_its_deadline_is_known_not_made() -> None:
    # Not adaptive, so the refusals are retried at the policy's pace, not slowed.
    # Time moves only in the pauses between attempts (the test clock): the deadline
    # then always falls between attempts, never while one is on the wire, where
    # the outcome would rightly be unknown.
    budget = RateLimit(adaptive=False)
    clock = Clock()
    policy = RetryPolicy(initial_delay=1.0, max_delay=1.0, jitter=False)
    async with (
        FakeHathora() as fake,
        client_for(
            fake, timeout=10.0, rate_limit=budget, retry=policy, clock=clock, sleep=clock.sleep
        ) as client,
    ):
        fake.faults.add("create_process", Fault(status=429), times=10_000)
        with pytest.raises(HathoraError) as caught:
            await client.processes.create_process(Region.DALLAS)
        assert caught.value.outcome_unknown is False
        assert fake.request_counts["create_process"] > 4  # more than the attempts
        assert fake.processes_created == 0


async def test_retry_policy_none_still_never_retries_a_429() -> None:
    async with FakeHathora() as fake, client_for(fake, retry=RetryPolicy.none()) as client:
        fake.faults.add("create_process", Fault(status=429))
        with pytest.raises(RateLimitedError):
            await client.processes.create_process(Region.DALLAS)
        assert fake.request_counts["create_process"] == 1


@pytest.mark.parametrize("lost", ["after", "truncated"])
async def test_a_create_refused_then_lost_is_never_sent_again(lost: str) -> None:
    async with FakeHathora() as fake, client_for(fake) as client:
        fake.faults.add("create_process", Fault(status=429), times=2)
        fault = Fault(drop="after") if lost == "after" else Fault(body="truncated")
        fake.faults.add("create_process", fault)
        with pytest.raises(HathoraError) as caught:
            await client.processes.create_process(Region.SYDNEY)
        assert caught.value.outcome_unknown is True
        assert fake.request_counts["create_process"] == 3
        assert fake.processes_created == 1


# -- priorities -----------------------------------------------------------------


async def test_polls_under_a_tight_limit_let_creates_through() -> None:
    clock = Clock()
    order: list[str] = []
    async with (
        FakeHathora(clock=clock) as fake,
        client_for(
            fake,
            clock=clock,
            sleep=clock.sleep,
            timeout=60.0,
            trace_configs=[order_of_requests(order)],
            rate_limit=RateLimit(max_per_second=5.0, burst=1, adaptive=False),
        ) as client,
    ):
        target = await client.processes.create_process(Region.MUMBAI)
        order.clear()
        polls = [
            asyncio.create_task(client.processes.get_process_info(target.process_id))
            for _ in range(30)
        ]
        await asyncio.sleep(0)  # the polls queue first
        creates = [client.processes.create_process(Region.MUMBAI) for _ in range(3)]
        await asyncio.gather(*creates)
        await asyncio.gather(*polls)
    # Writes go before queued reads: the creates are among the first sends.
    assert order.count("create") == 3
    assert max(i for i, kind in enumerate(order) if kind == "create") <= 4


# -- cancellation and close -------------------------------------------------------


async def test_cancelling_a_call_waiting_for_budget_is_immediate_and_leaks_nothing() -> None:
    async with (
        FakeHathora() as fake,
        client_for(fake, rate_limit=RateLimit(max_per_second=1.0, burst=1)) as client,
    ):
        budget = client._transport.budget
        await client.processes.create_process(Region.LONDON)  # takes the one token
        waiting = asyncio.create_task(client.processes.create_process(Region.LONDON))
        for _ in range(100):
            if budget._writes:
                break
            await asyncio.sleep(0.001)
        assert budget.waiting(waiting)
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert loop.time() - started < 0.2
        assert fake.request_counts["create_process"] == 1
        assert not budget._writes and not budget._reads and not budget._waiting
        assert not client._transport._inflight
        # The cancelled waiter took no slot: the next call waits one interval at most.
        started = loop.time()
        await client.processes.create_process(Region.LONDON)
        assert loop.time() - started < 1.5


async def test_close_ends_calls_waiting_for_budget_as_not_sent() -> None:
    async with FakeHathora() as fake:
        client = HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            rate_limit=RateLimit(max_per_second=0.5, burst=1),
        )
        async with client:
            await client.processes.create_process(Region.LONDON)
            waiting = [
                asyncio.create_task(client.processes.create_process(Region.LONDON))
                for _ in range(3)
            ]
            await asyncio.sleep(0.05)
            await client.aclose()
            results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, ClientClosedError) for r in results)
        assert not any(r.outcome_unknown for r in results if isinstance(r, HathoraError))
        assert fake.request_counts["create_process"] == 1


async def test_preallocate_withdraws_creates_waiting_for_budget_on_cancel() -> None:
    caught: list[asyncio.CancelledError] = []

    async def call(client: HathoraClient) -> None:
        try:
            await client.preallocate({Region.SEATTLE: 6}, concurrency=6, wait=False)
        except asyncio.CancelledError as exc:
            caught.append(exc)
            raise

    async with (
        FakeHathora() as fake,
        client_for(fake, rate_limit=RateLimit(max_per_second=2.0, burst=2)) as client,
    ):
        task = asyncio.create_task(call(client))
        for _ in range(500):
            if fake.request_counts["create_process"] == 2:
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fake.request_counts["create_process"] == 2  # the waiting four were not sent
    result = caught[0].preallocation
    assert len(result.created) == 2
    assert not any(f.outcome_unknown for f in result.failed)
