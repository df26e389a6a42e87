"""A 503 with Retry-After pauses the whole send budget (issue 12), like a limit's 429."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import formatdate

import pytest
from _sleeps import Recorder

from hathora_async import HathoraClient, Region, RetryPolicy, ServerError
from hathora_async.testing import FakeHathora, Fault, ManualClock

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


@asynccontextmanager
async def recorded(
    policy: RetryPolicy,
) -> AsyncIterator[tuple[FakeHathora, HathoraClient, Recorder]]:
    """A fake and a client on a manual clock at 100.0 whose sleeps are recorded."""
    sleep = Recorder()
    async with (
        FakeHathora() as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            clock=ManualClock(100.0),
            sleep=sleep,
            retry=policy,
        ) as client,
    ):
        yield fake, client, sleep


def in_three_seconds(form: str) -> str:
    if form == "seconds":
        return "3"
    return formatdate(time.time() + 3.0, usegmt=True)  # an HTTP date: 2 to 3 s away


@pytest.mark.parametrize("form", ["seconds", "http-date"])
@pytest.mark.parametrize("route", ["get_latest_processes", "create_process"])
async def test_a_503s_retry_after_pauses_every_call(route: str, form: str) -> None:
    async with recorded(FAST) as (fake, client, sleep):
        target = await client.processes.create_process(Region.TOKYO)
        fake.faults.add(route, Fault(status=503, retry_after=in_three_seconds(form)))
        if route == "create_process":
            # Not provably refused: the create is not sent again, its outcome is unknown.
            with pytest.raises(ServerError) as caught:
                await client.processes.create_process(Region.TOKYO)
            assert caught.value.outcome_unknown
            assert fake.request_counts[route] == 2
            assert sleep.delays == []
        else:
            await client.processes.get_latest_processes()  # its retry waits for the pause
            assert len(sleep.delays) == 1
        state = client.rate_limit_state
        assert state.paused_until is not None
        assert 101.9 <= state.paused_until <= 103.0 + 1e-6
        assert (state.throttled, state.rate) == (0, None)  # no cut: it says nothing of the rate
        waited = len(sleep.delays)
        sibling = client.with_options(timeout=10.0)
        await sibling.processes.get_process_info(target.process_id)
        await client.processes.stop_process(target.process_id)
        # Each waited for the pause (the recorder does not move the clock).
        assert sleep.delays[waited:] == [pytest.approx(state.paused_until - 100.0)] * 2


@pytest.mark.parametrize("header", [None, "60"])
async def test_a_503_without_a_usable_retry_after_pauses_nobody(header: str | None) -> None:
    # No Retry-After: the call's own backoff, as before. Above the cap
    # (max_retry_after): that call ends at once, the others are not held.
    policy = RetryPolicy(initial_delay=0.001, max_delay=0.01, max_retry_after=5.0)
    async with recorded(policy) as (fake, client, sleep):
        target = await client.processes.create_process(Region.TOKYO)
        fake.faults.add("get_latest_processes", Fault(status=503, retry_after=header))
        if header is None:
            await client.processes.get_latest_processes()
            assert len(sleep.delays) == 1 and sleep.delays[0] <= 0.01
        else:
            with pytest.raises(ServerError):
                await client.processes.get_latest_processes()
            assert sleep.delays == []
        assert client.rate_limit_state.paused_until is None
        before = len(sleep.delays)
        await client.processes.get_process_info(target.process_id)
        assert len(sleep.delays) == before
