"""client.preallocate: fan-out, limits, partial failure, 429s, cancellation (real HTTP)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from _pooltools import foreign_create, until

from hathora_async import (
    BadRequestError,
    HathoraClient,
    PreallocationEvent,
    ProcessFailedError,
    ProcessStatus,
    ProcessWaitTimeoutError,
    RateLimitedError,
    Region,
    RetryPolicy,
)
from hathora_async._strays import list_strays
from hathora_async.testing import FakeHathora, Fault

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)
ALL_REGIONS = tuple(Region)


class InFlight:
    """Counts the client's requests in flight, overall and per region of a create."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.by_region: Counter[str] = Counter()
        self.peak_by_region: Counter[str] = Counter()
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._start)
        self.trace.on_request_end.append(self._end)
        self.trace.on_request_exception.append(self._end)

    @staticmethod
    def _region(params: Any) -> str | None:
        parts = params.url.path.split("/")
        return parts[-1] if "create" in parts else None

    async def _start(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        region = self._region(params)
        if region is not None:
            self.by_region[region] += 1
            self.peak_by_region[region] = max(self.peak_by_region[region], self.by_region[region])

    async def _end(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        self.now -= 1
        region = self._region(params)
        if region is not None:
            self.by_region[region] -= 1


@asynccontextmanager
async def setup(
    retry: RetryPolicy = FAST,
    trace: InFlight | None = None,
    timeout: float | None = None,
    **fake_options: Any,
) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    fake_options.setdefault("seed", 5)
    async with (
        FakeHathora(**fake_options) as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=retry,
            trace_configs=[trace.trace] if trace else None,
            **({} if timeout is None else {"timeout": timeout}),
        ) as client,
    ):
        yield fake, client


def kinds(events: list[PreallocationEvent]) -> Counter[str]:
    return Counter(e.kind for e in events)


async def test_every_region_is_preallocated_and_awaited() -> None:
    events: list[PreallocationEvent] = []
    async with setup(boot_delay=(0.01, 0.08)) as (fake, client):
        result = await client.preallocate(
            dict.fromkeys(ALL_REGIONS, 2), poll_interval=0.01, on_event=events.append
        )
        fake_ids = {p["processId"] for p in fake.processes()}
    assert result.complete
    assert not result.failed and not result.strays
    assert result.requested == dict.fromkeys(ALL_REGIONS, 2)
    assert set(result.ready) == set(ALL_REGIONS)
    for region, processes in result.ready.items():
        assert len(processes) == 2
        assert all(p.region == region and p.status == ProcessStatus.RUNNING for p in processes)
    assert len(result.created) == len(set(result.created)) == 28
    assert set(result.created) == fake_ids
    assert kinds(events) == {"created": 28, "running": 28}
    assert all(e.elapsed is not None and e.elapsed >= 0 for e in events)
    # A process is announced as created before it is announced running.
    order = [e.process_id for e in events if e.kind == "created"]
    for event in events:
        if event.kind == "running":
            assert event.process_id in order[: events.index(event) + 1]


async def test_without_wait_processes_are_reported_starting() -> None:
    async with setup(boot_delay=60.0) as (fake, client):
        result = await client.preallocate({Region.SEATTLE: 3, "London": 2}, wait=False)
    assert result.complete
    assert all(not processes for processes in result.ready.values())
    assert [len(result.starting[r]) for r in (Region.SEATTLE, Region.LONDON)] == [3, 2]
    assert all(p.status == ProcessStatus.STARTING for ps in result.starting.values() for p in ps)
    assert fake.request_counts["get_process_info"] == 0
    assert fake.processes_created == 5


async def test_the_global_limit_bounds_every_request_in_flight() -> None:
    trace = InFlight()
    async with setup(trace=trace, latency=0.005, boot_delay=(0.01, 0.05)) as (fake, client):
        result = await client.preallocate(
            dict.fromkeys(ALL_REGIONS, 2), concurrency=3, poll_interval=0.005
        )
    assert result.complete
    assert fake.request_counts["get_process_info"] > 0  # polls went through the limit too
    assert trace.peak == 3


async def test_the_per_region_limit_bounds_each_region() -> None:
    trace = InFlight()
    plan = {Region.SEATTLE: 6, Region.TOKYO: 6, Region.DUBAI: 6}
    async with setup(trace=trace, latency=0.01) as (fake, client):
        result = await client.preallocate(
            plan, concurrency=10, per_region_concurrency=2, wait=False
        )
    assert result.complete and fake.processes_created == 18
    assert max(trace.peak_by_region.values()) == 2
    assert trace.peak == 6


@pytest.mark.usefixtures("short_grace")  # the 500'd create made nothing: no long search
async def test_partial_failure_is_a_normal_result_and_nothing_is_lost() -> None:
    events: list[PreallocationEvent] = []
    plan = dict.fromkeys(ALL_REGIONS, 3)
    async with setup(retry=RetryPolicy.none(), boot_delay=(0.01, 0.05), boot_failure_rate=0.25) as (
        fake,
        client,
    ):
        fake.faults.add("create_process", Fault(status=500))  # sent, not acted on
        fake.faults.add("create_process", Fault(status=400))  # refused
        fake.faults.add("create_process", Fault(drop="after"))  # acted on, answer lost
        result = await client.preallocate(
            plan, concurrency=1, poll_interval=0.01, on_event=events.append
        )
        fake_processes = {p["processId"]: p for p in fake.processes()}

    assert not result.complete
    create_failures = [f for f in result.failed if f.process_id is None]
    boot_failures = [f for f in result.failed if f.process_id is not None]
    # concurrency=1: the three faults hit the first three creates, in order.
    assert [type(f.error).__name__ for f in create_failures] == [
        "ServerError",
        "BadRequestError",
        "HathoraConnectionError",
    ]
    assert [f.outcome_unknown for f in create_failures] == [True, False, True]
    assert isinstance(create_failures[1].error, BadRequestError)
    assert boot_failures, "the seeded boot failure rate should fail some processes"
    for failure in boot_failures:
        assert isinstance(failure.error, ProcessFailedError)
        assert failure.process is not None and failure.process.status == ProcessStatus.FAILED
        assert failure.process_id in result.created

    ready = {p.process_id for processes in result.ready.values() for p in processes}
    assert len(ready) + len(result.failed) == 42
    # Every process the fake made is reported: created, or found as the stray of
    # the create whose answer was lost.
    assert len(result.strays) == 1
    stray = result.strays[0].process_id
    assert stray not in result.created
    assert set(fake_processes) == set(result.created) | {stray}
    running = {pid for pid, p in fake_processes.items() if p["status"] == "running"}
    assert running - {stray} == ready
    assert kinds(events)["stray"] == 1
    assert kinds(events)["failed"] == len(result.failed)


async def test_no_reconcile_means_no_extra_lookups() -> None:
    async with setup(retry=RetryPolicy.none()) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        result = await client.preallocate({Region.SEATTLE: 2}, wait=False, reconcile=False)
    assert [f.outcome_unknown for f in result.failed] == [True]
    assert result.strays == []
    assert fake.request_counts["get_latest_processes"] == 0
    assert fake.processes_created == 2


async def test_429s_are_retried_with_one_process_per_slot() -> None:
    plan = dict.fromkeys(ALL_REGIONS, 2)
    patient = RetryPolicy(attempts=10, initial_delay=0.001, max_delay=0.005)
    async with setup(retry=patient) as (fake, client):
        fake.faults.add("create_process", Fault(status=429), times=6)
        fake.faults.add("create_process", Fault(status=429, retry_after="0"), times=2)
        result = await client.preallocate(plan, concurrency=4, wait=False)
    assert result.complete and not result.failed
    assert fake.processes_created == 28
    assert fake.request_counts["create_process"] == 28 + 8
    assert len(set(result.created)) == 28


async def test_429s_past_the_retry_budget_fail_their_slot_with_a_known_outcome() -> None:
    async with setup(retry=RetryPolicy.none()) as (fake, client):
        fake.faults.add("create_process", Fault(status=429), times=3)
        result = await client.preallocate({Region.SEATTLE: 5, Region.LONDON: 5}, wait=False)
    assert len(result.failed) == 3
    assert all(isinstance(f.error, RateLimitedError) for f in result.failed)
    assert not any(f.outcome_unknown for f in result.failed)
    assert fake.processes_created == len(result.created) == 7
    assert fake.request_counts["get_latest_processes"] == 0  # nothing to reconcile


async def test_wait_timeouts_keep_their_process_ids() -> None:
    async with setup(boot_delay=3600.0) as (fake, client):
        result = await client.preallocate(
            {Region.SYDNEY: 2, Region.MUMBAI: 1}, timeout=0.1, poll_interval=0.02
        )
    assert len(result.failed) == 3
    assert all(isinstance(f.error, ProcessWaitTimeoutError) for f in result.failed)
    assert {f.process_id for f in result.failed} == set(result.created)
    assert fake.processes_created == 3


async def _cancel_after(
    client: HathoraClient, created_before_cancel: int, **options: Any
) -> tuple[list[PreallocationEvent], asyncio.Task[Any]]:
    events: list[PreallocationEvent] = []
    enough = asyncio.Event()

    def on_event(event: PreallocationEvent) -> None:
        events.append(event)
        if kinds(events)["created"] >= created_before_cancel:
            enough.set()

    task = asyncio.create_task(
        client.preallocate(dict.fromkeys(ALL_REGIONS, 5), on_event=on_event, **options)
    )
    await enough.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return events, task


async def test_cancelled_midway_every_created_process_is_reported_and_stopped() -> None:
    async with setup(latency=0.02) as (fake, client):
        events, _ = await _cancel_after(client, 10, concurrency=4, wait=False)
        fake_processes = fake.processes()
    created = [e.process_id for e in events if e.kind == "created"]
    # Creates on the wire at the cancel were let finish: none goes unreported.
    assert 10 <= len(created) < 70
    assert {p["processId"] for p in fake_processes} == set(created)
    # stop_on_cancel (the default) stopped them all.
    assert all(p["status"] == "stopped" for p in fake_processes)
    assert {e.process_id for e in events if e.kind == "stopped"} == set(created)


async def test_cancelled_without_stopping_leaves_them_running_but_reported() -> None:
    async with setup(latency=0.02) as (fake, client):
        events, _ = await _cancel_after(client, 5, concurrency=8, wait=False, stop_on_cancel=False)
        fake_processes = fake.processes()
    created = {e.process_id for e in events if e.kind == "created"}
    assert {p["processId"] for p in fake_processes} == created
    assert all(p["status"] == "running" for p in fake_processes)
    assert fake.request_counts["stop_process"] == 0


class CreatesAnswered(InFlight):
    """Also sets ``enough`` once ``count`` creates have been answered."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.enough = asyncio.Event()

    async def _end(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        await super()._end(session, context, params)
        if self._region(params) is not None:
            self.count -= 1
            if self.count <= 0:
                self.enough.set()


async def _cancel_once_created(
    client: HathoraClient, answered: CreatesAnswered, **options: Any
) -> Any:
    """Cancel a preallocate (no on_event) midway; the CancelledError it raised."""
    caught: list[asyncio.CancelledError] = []

    async def call() -> None:
        try:
            await client.preallocate(dict.fromkeys(ALL_REGIONS, 5), **options)
        except asyncio.CancelledError as exc:
            caught.append(exc)
            raise

    task = asyncio.create_task(call())
    await asyncio.wait_for(answered.enough.wait(), 5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (cancelled,) = caught
    return cancelled


async def test_cancelled_without_stopping_or_on_event_the_ids_are_on_the_error_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answered = CreatesAnswered(10)
    async with setup(trace=answered, boot_delay=3600.0, latency=0.02) as (fake, client):
        with caplog.at_level(logging.WARNING, logger="hathora_async"):
            cancelled = await _cancel_once_created(
                client, answered, concurrency=4, stop_on_cancel=False
            )
        fake_processes = fake.processes()
    result = cancelled.preallocation
    # Every process the call made, those that were on the wire at the cancel included.
    assert 10 <= len(result.created) < 70
    assert {p["processId"] for p in fake_processes} == set(result.created)
    assert all(p["status"] == "starting" for p in fake_processes)
    assert result.stopped == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(any(pid in message for message in warnings) for pid in result.created)
    # The ids ride on the record too, for handlers that must not parse the text.
    (marked,) = [
        r.hathora_left_running for r in caplog.records if hasattr(r, "hathora_left_running")
    ]
    assert set(marked) == set(result.created)


async def test_cancelled_with_a_failed_stop_the_survivors_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answered = CreatesAnswered(6)
    async with setup(retry=RetryPolicy.none(), trace=answered, boot_delay=3600.0, latency=0.02) as (
        fake,
        client,
    ):
        fake.faults.add("stop_process", Fault(status=500), times=2)
        with caplog.at_level(logging.WARNING, logger="hathora_async"):
            cancelled = await _cancel_once_created(client, answered, concurrency=4)
        fake_processes = fake.processes()
    result = cancelled.preallocation
    alive = {p["processId"] for p in fake_processes if p["status"] != "stopped"}
    assert len(alive) == 2
    assert set(result.stopped) == set(result.created) - alive
    assert {p["processId"] for p in fake_processes} == set(result.created)
    survivors = [r.getMessage() for r in caplog.records if "were not stopped" in r.getMessage()]
    assert len(survivors) == 1
    assert all(pid in survivors[0] for pid in alive)
    marked = [r.hathora_left_running for r in caplog.records if hasattr(r, "hathora_left_running")]
    assert marked == [tuple(sorted(alive, key=result.created.index))]


async def test_cancelled_creates_waiting_to_retry_a_429_are_not_sent_again() -> None:
    pauses = 0
    all_pausing = asyncio.Event()

    async def sleep(seconds: float) -> None:
        nonlocal pauses
        pauses += 1
        if pauses == 4:
            all_pausing.set()
        await asyncio.sleep(seconds)

    patient = RetryPolicy(attempts=5, initial_delay=10.0, max_delay=10.0, jitter=False)
    caught: list[asyncio.CancelledError] = []

    async def call(client: HathoraClient) -> None:
        try:
            await client.preallocate({Region.SEATTLE: 4}, concurrency=4, wait=False)
        except asyncio.CancelledError as exc:
            caught.append(exc)
            raise

    async with (
        FakeHathora(seed=5) as fake,
        HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, retry=patient, sleep=sleep
        ) as client,
    ):
        fake.faults.add("create_process", Fault(status=429), times=4)
        task = asyncio.create_task(call(client))
        await asyncio.wait_for(all_pausing.wait(), 5.0)  # each create was refused once
        loop = asyncio.get_running_loop()
        started = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        took = loop.time() - started
    assert took < 1.0  # not the 10 s pause before the retries
    assert fake.request_counts["create_process"] == 4  # nothing sent after the cancel
    assert fake.processes_created == 0
    result = caught[0].preallocation
    assert result.created == []
    # Nothing was made, and the result says so: no unknown outcome to reconcile.
    assert len(result.failed) == 4
    assert not any(f.outcome_unknown for f in result.failed)


async def test_cancelled_while_waiting_ends_promptly_and_stops_them() -> None:
    async with setup(boot_delay=3600.0) as (fake, client):
        loop = asyncio.get_running_loop()
        started = loop.time()
        events, _ = await _cancel_after(client, 70, concurrency=16, poll_interval=30.0)
        took = loop.time() - started
        fake_processes = fake.processes()
    assert took < 5.0  # not the 30 s poll interval, nor the wait timeout
    assert len(fake_processes) == 70
    assert {p["processId"] for p in fake_processes} == {
        e.process_id for e in events if e.kind == "created"
    }
    assert all(p["status"] == "stopped" for p in fake_processes)


async def test_a_timeout_around_the_call_also_stops_what_it_created() -> None:
    async with setup(boot_delay=3600.0, latency=0.01) as (fake, client):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                client.preallocate({Region.DALLAS: 4}, poll_interval=0.05), timeout=0.3
            )
        fake_processes = fake.processes()
    assert len(fake_processes) == 4
    assert all(p["status"] == "stopped" for p in fake_processes)


async def test_a_failing_progress_callback_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: PreallocationEvent) -> None:
        raise RuntimeError("display bug")

    async with setup() as (_, client):
        with caplog.at_level(logging.ERROR, logger="hathora_async"):
            result = await client.preallocate({Region.CHICAGO: 2}, on_event=broken)
    assert result.complete
    assert "on_event" in caplog.text


async def test_an_empty_plan_does_nothing() -> None:
    async with setup() as (fake, client):
        result = await client.preallocate({Region.SEATTLE: 0})
        empty = await client.preallocate({})
    assert result.complete and empty.complete
    assert result.created == [] and result.ready == {Region.SEATTLE: []}
    assert sum(fake.request_counts.values()) == 0


@pytest.mark.parametrize(
    ("plan", "options", "error"),
    [
        ([("Seattle", 1)], {}, TypeError),
        ({"Seattle": -1}, {}, ValueError),
        ({"Seattle": True}, {}, ValueError),
        ({"Seattle": 1.5}, {}, ValueError),
        ({"no/such": 1}, {}, ValueError),
        ({"Seattle": 1}, {"concurrency": 0}, ValueError),
        ({"Seattle": 1}, {"per_region_concurrency": 0}, ValueError),
        ({"Seattle": 1}, {"timeout": 0}, ValueError),
        ({"Seattle": 1}, {"poll_interval": -1}, ValueError),
        ({"Seattle": 1}, {"on_event": "print"}, TypeError),
        ({"Seattle": 1}, {"app_id": ".."}, ValueError),
    ],
)
async def test_bad_input_fails_before_any_io(
    plan: Any, options: dict[str, Any], error: type[Exception]
) -> None:
    async with setup() as (fake, client):
        with pytest.raises(error):
            await client.preallocate(plan, **options)
    assert sum(fake.request_counts.values()) == 0


async def test_a_create_timing_out_during_the_fakes_latency_leaves_a_stray_found() -> None:
    # The fake acts on a create its client gave up on (as a real server would):
    # the outcome-unknown create is reconciled into the process it made.
    async with FakeHathora(seed=5) as fake:
        fake.faults.add("create_process", Fault(latency=0.5))
        async with HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, timeout=0.2, retry=RetryPolicy.none()
        ) as client:
            events: list[PreallocationEvent] = []
            result = await client.preallocate(
                {Region.SEATTLE: 2}, wait=False, poll_interval=0.05, on_event=events.append
            )
        made = {p["processId"] for p in fake.processes()}
        assert fake.processes_created == 2
        [failure] = result.failed
        assert failure.outcome_unknown is True
        [stray] = result.strays
        assert {stray.process_id, *result.created} == made
        assert [e.kind for e in events].count("stray") == 1


LOST_ANSWERS = {
    "connection closed": Fault(drop="after"),
    "502 after creating": Fault(status=502, acted=True),
    # The client gives up at its 0.5 s deadline; the fake creates at 0.8 s.
    "timeout": Fault(latency=0.8),
}


@pytest.mark.parametrize("limited", [False, True], ids=["no limit", "rate limited"])
@pytest.mark.parametrize("lost", list(LOST_ANSWERS))
async def test_every_process_of_a_lost_create_is_found_under_concurrency(
    lost: str, limited: bool
) -> None:
    # Many creates in one region at once, some answers lost after the fake
    # created: listings show only the region's 10 newest processes, so a lost
    # create's process must be looked for before the run's later creates there
    # push it out of sight. Nothing billed may go unreported.
    limit = {"rate_limit": 60.0, "rate_burst": 5, "retry_after": None} if limited else {}
    events: list[PreallocationEvent] = []
    async with setup(latency=(0.002, 0.02), timeout=0.5, **limit) as (fake, client):
        fake.faults.add_random("create_process", 0.12, [LOST_ANSWERS[lost]], seed=7)
        result = await client.preallocate(
            {Region.SEATTLE: 60},
            concurrency=60,
            wait=False,
            poll_interval=0.05,
            on_event=events.append,
        )
        made = {p["processId"] for p in fake.processes()}
    unknown = [f for f in result.failed if f.outcome_unknown]
    assert len(unknown) >= 4, "the seeded fault rate should lose a few answers"
    # (Rate limited, a create may be refused until its short deadline: known, not made.)
    assert fake.processes_created == len(result.created) + len(unknown)  # none sent twice
    strays = {p.process_id for p in result.strays}
    assert not strays & set(result.created)
    assert made == set(result.created) | strays
    assert len(strays) == len(unknown)
    assert kinds(events)["stray"] == len(unknown)


async def test_a_stray_behind_ten_newer_processes_of_other_statuses_is_found() -> None:
    # Ten newer processes fill the region's listing; the stray's own status
    # (starting) reaches back further. The newer ones are stopped here, as
    # another client's might be.
    async with setup(boot_delay=60.0) as (fake, client):
        sent = client._options.clock()
        stray = await client.processes.create_process(Region.SEATTLE)  # its answer "lost"
        newer = [await client.processes.create_process(Region.SEATTLE) for _ in range(12)]
        for process in newer:
            await client.processes.stop_process(process.process_id)
        before = fake.request_counts["get_latest_processes"]
        look = await list_strays(client, Region.SEATTLE, sent=sent, known=set(), app_id=None)
        listings = fake.request_counts["get_latest_processes"] - before
    assert [p.process_id for p in look.found] == [stray.process_id]
    assert not look.truncated
    assert listings == 4  # the region, then starting, running and failed on their own


@pytest.mark.parametrize("reconcile", [True, False])
async def test_reconcile_keeps_at_most_ten_creates_of_a_region_in_flight(reconcile: bool) -> None:
    # The price of finding every lost create's process (a listing shows 10):
    # without reconcile nothing is looked for, so nothing holds creates back.
    trace = InFlight()
    async with setup(trace=trace, latency=0.02) as (fake, client):
        result = await client.preallocate(
            {Region.SEATTLE: 40}, concurrency=40, wait=False, reconcile=reconcile
        )
    assert result.complete and fake.processes_created == 40
    if reconcile:
        assert trace.peak_by_region["Seattle"] <= 10
    else:
        assert trace.peak_by_region["Seattle"] > 10


LOST_SLOWLY = {
    "connection closed": Fault(drop="after", latency=0.3),
    "502 after creating": Fault(status=502, acted=True, latency=0.3),
}


@pytest.mark.parametrize("limited", [False, True], ids=["no limit", "rate limited"])
@pytest.mark.parametrize("lost", list(LOST_SLOWLY))
async def test_another_clients_process_in_a_lost_creates_window_is_reported_ambiguous(
    lost: str, limited: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Another client creates in the region while the fake works on a create
    # whose answer is then lost: its process is older than ours and newer than
    # the send. Picking the oldest took it for ours and left ours unreported.
    limit = {"rate_limit": 50.0, "rate_burst": 5, "retry_after": None} if limited else {}
    async with setup(**limit) as (fake, client):
        fake.faults.add("create_process", LOST_SLOWLY[lost])

        async def other() -> str:
            await until(lambda: fake.request_counts["create_process"] > 0)  # ours arrived
            return foreign_create(fake)

        other_task = asyncio.create_task(other())
        with caplog.at_level(logging.WARNING, logger="hathora_async"):
            result = await client.preallocate({Region.SEATTLE: 1}, wait=False, poll_interval=0.05)
        foreign = await other_task
        made = {p["processId"] for p in fake.processes()}
    [ours] = made - {foreign}
    [failure] = result.failed
    assert failure.outcome_unknown
    assert result.strays == [] and result.created == []
    assert {p.process_id for p in result.ambiguous} == {ours, foreign}
    [warning] = [r for r in caplog.records if "candidate" in r.getMessage()]
    assert ours in warning.getMessage() and foreign in warning.getMessage()


@pytest.mark.parametrize("limited", [False, True], ids=["no limit", "rate limited"])
@pytest.mark.parametrize("lost", ["connection closed", "502 after creating"])
async def test_no_process_of_ours_is_lost_while_another_client_creates_in_the_region(
    lost: str, limited: bool
) -> None:
    # Many creates in one region, some answers lost after the fake created,
    # while another client keeps creating there: every process made for us is
    # created, a stray or ambiguous, and none of the other client's is a stray.
    limit = {"rate_limit": 100.0, "rate_burst": 10, "retry_after": None} if limited else {}
    async with setup(latency=(0.002, 0.02), timeout=0.5, **limit) as (fake, client):
        fake.faults.add_random("create_process", 0.12, [LOST_ANSWERS[lost]], seed=7)
        foreign: set[str] = set()
        done = asyncio.Event()

        async def other() -> None:
            while not done.is_set():
                foreign.add(foreign_create(fake))
                await asyncio.sleep(0.1)

        other_task = asyncio.create_task(other())
        try:
            result = await client.preallocate(
                {Region.SEATTLE: 40}, concurrency=40, wait=False, poll_interval=0.05
            )
        finally:
            done.set()
            await other_task
        ours = {p["processId"] for p in fake.processes()} - foreign
    unknown = [f for f in result.failed if f.outcome_unknown]
    assert len(unknown) >= 2, "the seeded fault rate should lose a few answers"
    strays = {p.process_id for p in result.strays}
    ambiguous = {p.process_id for p in result.ambiguous}
    assert ours <= set(result.created) | strays | ambiguous
    assert not strays & foreign
    assert len(strays) + len(ambiguous & ours) == len(unknown)


async def test_a_listing_full_of_newer_processes_is_not_conclusive() -> None:
    # Another client made 12 processes in the region since the send, all
    # starting: even the status's own listing cannot reach back to the send.
    async with setup(boot_delay=60.0) as (fake, client):
        sent = client._options.clock()
        await client.processes.create_process(Region.SEATTLE)  # its answer "lost"
        for _ in range(12):
            foreign_create(fake)
        look = await list_strays(client, Region.SEATTLE, sent=sent, known=set(), app_id=None)
    assert look.truncated and not look.conclusive
    assert len(look.found) == 10  # what is in sight: all candidates, none certain
