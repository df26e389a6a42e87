"""wait_for_process: running, early failure, timeout, backoff, cancellation (real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hathora_async import (
    HathoraClient,
    NotFoundError,
    ProcessFailedError,
    ProcessStatus,
    ProcessWaitTimeoutError,
    Region,
    RetryPolicy,
    Timeouts,
)
from hathora_async.testing import FakeHathora, Fault, ManualClock

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


class RecordingClock(ManualClock):
    """A ManualClock whose sleep also records each requested delay."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


@asynccontextmanager
async def lifecycle(
    clock: ManualClock, retry: RetryPolicy = FAST, **fake_options: Any
) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    """A fake and a client sharing a manual clock: waits take no real time."""
    async with (
        FakeHathora(clock=clock, seed=3, **fake_options) as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=retry,
            sleep=clock.sleep,
            clock=clock,
        ) as client,
    ):
        yield fake, client


async def test_returns_the_process_once_running_with_gentle_bounded_backoff() -> None:
    clock = RecordingClock()
    async with lifecycle(clock, boot_delay=30.0) as (fake, client):
        created = await client.processes.create_process(Region.SEATTLE)
        assert created.status == ProcessStatus.STARTING
        process = await client.processes.wait_for_process(
            created.process_id, poll_interval=1.0, max_poll_interval=5.0
        )
    assert process.process_id == created.process_id
    assert process.status == ProcessStatus.RUNNING
    assert process.exposed_port is not None
    # Seen within one (capped) poll interval of booting.
    assert 30.0 <= clock() <= 35.0
    assert clock.sleeps[0] == 1.0
    assert clock.sleeps == sorted(clock.sleeps)  # never faster than before
    assert max(clock.sleeps) == 5.0  # bounded
    assert clock.sleeps[1] == pytest.approx(1.5)
    # Backoff keeps the poll count far below one per second.
    assert fake.request_counts["get_process_info"] == len(clock.sleeps) + 1 < 15


async def test_already_running_returns_after_one_read() -> None:
    clock = ManualClock()
    async with lifecycle(clock) as (fake, client):
        created = await client.processes.create_process(Region.TOKYO)
        process = await client.processes.wait_for_process(created.process_id)
    assert process.status == ProcessStatus.RUNNING
    assert fake.request_counts["get_process_info"] == 1
    assert clock() == 0.0


async def test_boot_failure_raises_early_with_the_last_state() -> None:
    clock = ManualClock()
    async with lifecycle(clock, boot_delay=10.0, boot_failure_rate=1.0) as (_, client):
        created = await client.processes.create_process(Region.LONDON)
        with pytest.raises(ProcessFailedError) as caught:
            await client.processes.wait_for_process(created.process_id, poll_interval=1.0)
    error = caught.value
    assert error.process_id == created.process_id
    assert error.status == ProcessStatus.FAILED
    assert error.process.status == ProcessStatus.FAILED
    assert created.process_id in str(error)
    # Early: soon after the boot failed, long before the timeout.
    assert 10.0 <= clock() < 20.0


@pytest.mark.parametrize("stop_delay", [0.0, 50.0])
async def test_a_stopped_or_stopping_process_raises_early(stop_delay: float) -> None:
    clock = ManualClock()
    async with lifecycle(clock, boot_delay=10.0, stop_delay=stop_delay) as (fake, client):
        created = await client.processes.create_process(Region.DALLAS)
        fake.fail_process(created.process_id)
        with pytest.raises(ProcessFailedError) as caught:
            await client.processes.wait_for_process(created.process_id)
    expected = ProcessStatus.STOPPED if stop_delay == 0 else ProcessStatus.STOPPING
    assert caught.value.status == expected
    assert clock() == 0.0


async def test_times_out_exactly_at_the_deadline() -> None:
    clock = RecordingClock()
    async with lifecycle(clock, boot_delay=1000.0) as (_, client):
        created = await client.processes.create_process(Region.MUMBAI)
        with pytest.raises(ProcessWaitTimeoutError) as caught:
            await client.processes.wait_for_process(
                created.process_id, timeout=30.0, poll_interval=2.0
            )
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.process_id == created.process_id
    assert error.timeout == 30.0
    assert error.process is not None and error.process.status == ProcessStatus.STARTING
    # The last sleep is cut to the deadline, then one last read, then the error.
    assert clock() == pytest.approx(30.0)
    assert sum(clock.sleeps) == pytest.approx(30.0)


async def test_the_default_timeout_is_a_little_above_the_port_binding_deadline() -> None:
    clock = ManualClock()
    async with lifecycle(clock, boot_delay=10_000.0) as (_, client):
        created = await client.processes.create_process(Region.SYDNEY)
        with pytest.raises(ProcessWaitTimeoutError) as caught:
            await client.processes.wait_for_process(created.process_id)
    assert 100.0 < caught.value.timeout <= 120.0
    assert clock() == pytest.approx(caught.value.timeout)


async def test_transient_errors_are_polled_through() -> None:
    clock = ManualClock()
    # No retries in the client: every injected fault reaches the wait loop.
    async with lifecycle(clock, retry=RetryPolicy.none(), boot_delay=5.0) as (fake, client):
        created = await client.processes.create_process(Region.CHICAGO)
        fake.faults.add("get_process_info", Fault(status=503), times=2)
        fake.faults.add("get_process_info", Fault(status=429, retry_after="1"))
        fake.faults.add("get_process_info", Fault(drop="before"))
        process = await client.processes.wait_for_process(created.process_id, poll_interval=1.0)
    assert process.status == ProcessStatus.RUNNING


async def test_timeout_chains_the_last_polling_error() -> None:
    clock = ManualClock()
    async with lifecycle(clock, retry=RetryPolicy.none(), boot_delay=5.0) as (fake, client):
        created = await client.processes.create_process(Region.CHICAGO)
        fake.faults.add("get_process_info", Fault(status=503), times=1000)
        with pytest.raises(ProcessWaitTimeoutError) as caught:
            await client.processes.wait_for_process(created.process_id, timeout=10.0)
    assert caught.value.process is None  # never read successfully
    assert "503" in str(caught.value.__cause__)


async def test_an_unknown_process_raises_at_once() -> None:
    clock = ManualClock()
    async with lifecycle(clock) as (fake, client):
        with pytest.raises(NotFoundError):
            await client.processes.wait_for_process("no-such-process")
    assert fake.request_counts["get_process_info"] == 1
    assert clock() == 0.0


async def test_a_slow_poll_ends_by_the_wait_deadline(fake: FakeHathora) -> None:
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, retry=FAST) as client:
        created = await client.processes.create_process(Region.SEATTLE)
        fake.faults.add("get_process_info", Fault(latency=10.0), times=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ProcessWaitTimeoutError):
            await client.processes.wait_for_process(created.process_id, timeout=0.3)
        took = loop.time() - started
    assert 0.2 < took < 2.0  # the wait's 0.3 s, not the client's 30 s call deadline


async def test_a_bounded_poll_keeps_the_clients_tighter_read_limit(fake: FakeHathora) -> None:
    # The wait's deadline (10 s) is below the call deadline (30 s), so polls are
    # bounded by it; the 0.2 s read limit must still hold inside them.
    timeouts = Timeouts(connect=1.0, read=0.2, total=30.0)
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none(), timeout=timeouts
    ) as client:
        created = await client.processes.create_process(Region.SEATTLE)
        fake.faults.add("get_process_info", Fault(latency=1.5))
        loop = asyncio.get_running_loop()
        started = loop.time()
        process = await client.processes.wait_for_process(
            created.process_id, timeout=10.0, poll_interval=0.01
        )
        took = loop.time() - started
    assert process.status == ProcessStatus.RUNNING
    # The slow read was cut at 0.2 s and polled again, not waited out for 1.5 s.
    assert fake.request_counts["get_process_info"] == 2
    assert took < 1.2


@pytest.mark.parametrize(
    ("process_id", "options"),
    [
        ("..", {}),
        ("", {}),
        ("p", {"timeout": 0}),
        ("p", {"timeout": -1}),
        ("p", {"timeout": float("inf")}),
        ("p", {"poll_interval": 0}),
        ("p", {"max_poll_interval": True}),
    ],
)
async def test_bad_input_fails_before_any_io(process_id: str, options: dict[str, Any]) -> None:
    clock = ManualClock()
    async with lifecycle(clock) as (fake, client):
        with pytest.raises(ValueError):
            await client.processes.wait_for_process(process_id, **options)
    assert sum(fake.request_counts.values()) == 0


async def test_cancellation_stops_the_wait_at_once(fake: FakeHathora) -> None:
    sleeping = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(seconds)

    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, sleep=sleep) as client:
        fake.world.boot_delay = 3600.0
        created = await client.processes.create_process(Region.FRANKFURT)
        task = asyncio.create_task(
            client.processes.wait_for_process(created.process_id, poll_interval=60.0)
        )
        await sleeping.wait()  # polled once; now 60 s before the next poll
        assert fake.request_counts["get_process_info"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)
    assert task.cancelled()
