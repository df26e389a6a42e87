"""Issue 9, lost billed processes: eventually consistent reads, clock skew, creates
whose answer names a process. Real HTTP against the fake in its impolite modes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from _pooltools import statuses, until

from hathora_async import (
    HathoraClient,
    HathoraError,
    NotFoundError,
    ProcessStatus,
    Region,
    RegionCounts,
    RetryPolicy,
    RoomWaitTimeoutError,
    WarmPool,
    prealloc,
)
from hathora_async import _constants as C
from hathora_async.processes import ProcessesApi
from hathora_async.testing import FakeHathora, Fault, ManualClock
from hathora_async.testing.__main__ import _parse

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)
QUIET = 3600.0  # the pool's background pass runs once on entry; tests drive refresh()


@asynccontextmanager
async def setup(
    retry: RetryPolicy = FAST, client_options: dict[str, Any] | None = None, **fake_options: Any
) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    fake_options.setdefault("seed", 9)
    async with (
        FakeHathora(**fake_options) as fake,
        HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, retry=retry, **(client_options or {})
        ) as client,
    ):
        yield fake, client


# -- the fake's impolite modes -------------------------------------------------


async def test_the_fake_hides_new_processes_and_rooms_from_reads_during_the_lag() -> None:
    clock = ManualClock()
    async with setup(clock=clock, read_after_create_lag=2.0) as (fake, client):
        process = await client.processes.create_process(Region.SEATTLE)
        room = await client.rooms.create_room(Region.SEATTLE)
        pid, rid = process.process_id, room.room_id
        reads = [
            client.processes.get_process_info(pid),
            client.rooms.get_room_info(rid),
            client.rooms.get_connection_info(rid),
            client.rooms.get_active_rooms_for_process(pid),
            client.rooms.get_inactive_rooms_for_process(pid),
        ]
        for read in reads:
            with pytest.raises(NotFoundError):
                await read
        assert await client.processes.get_latest_processes() == []
        # Writes act on what reads cannot see yet.
        await client.rooms.update_room_config(rid, "x")
        clock.advance(2.0)
        assert (await client.processes.get_process_info(pid)).process_id == pid
        assert [r.room_id for r in await client.rooms.get_active_rooms_for_process(pid)] == [rid]
        assert (await client.rooms.get_room_info(rid)).room_config == "x"
        assert [p.process_id for p in await client.processes.get_latest_processes()] == [pid]
        # A room made later on a visible process is left out of its lists during its lag.
        later = await client.rooms.create_room(Region.SEATTLE)
        assert later.process_id == pid
        assert len(await client.rooms.get_active_rooms_for_process(pid)) == 1
        await client.rooms.destroy_room(later.room_id)
        second = await client.processes.create_process(Region.SEATTLE)
        await client.processes.stop_process(second.process_id)
        assert statuses(fake)[second.process_id] == "stopped"


@pytest.mark.parametrize("offset", [-60.0, 60.0])
async def test_the_fake_clock_offset_shifts_every_timestamp_and_the_date_header(
    offset: float,
) -> None:
    async with setup(clock_offset=offset, boot_delay=0.0) as (_fake, client):
        before = datetime.now(timezone.utc)
        room = await client.rooms.create_room(Region.LONDON)
        await client.processes.stop_process(room.process_id)
        response = await client.processes.get_process_info_with_http_info(room.process_id)
        info = await client.rooms.get_room_info(room.room_id)
        after = datetime.now(timezone.utc)
    shift = timedelta(seconds=offset)
    slack = timedelta(seconds=1)
    process = response.data
    stamps = [process.created_at, process.started_at, process.stopping_at, process.terminated_at]
    stamps += [info.allocations[0].scheduled_at, info.allocations[0].unscheduled_at]
    for stamp in stamps:
        assert stamp is not None
        assert before + shift - slack <= stamp <= after + shift + slack
    date = parsedate_to_datetime(response.headers["Date"])
    assert before + shift - 2 * slack <= date <= after + shift + slack


def test_the_fake_cli_takes_the_lag_and_the_offset() -> None:
    args = _parse(["--read-after-create-lag", "1.5", "--clock-offset", "-60"])
    assert (args.read_after_create_lag, args.clock_offset) == (1.5, -60.0)
    defaults = _parse([])
    assert (defaults.read_after_create_lag, defaults.clock_offset) == (0.0, 0.0)


@pytest.mark.parametrize(
    "options",
    [
        {"read_after_create_lag": -1.0},
        {"read_after_create_lag": float("nan")},
        {"clock_offset": float("inf")},
    ],
)
def test_the_fake_refuses_bad_lag_and_offset(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FakeHathora(**options)


# -- 1. eventually consistent reads: waits -------------------------------------


async def test_wait_for_room_polls_through_a_404_right_after_create_room() -> None:
    async with setup(boot_delay=0.2) as (fake, client):
        room = await client.rooms.create_room(Region.TOKYO)
        fake.faults.add("get_connection_info", Fault(status=404))
        active = await client.rooms.wait_for_room(room.room_id, poll_interval=0.02)
        assert active.room_id == room.room_id and active.port > 0
        assert fake.request_counts["get_connection_info"] >= 2


@pytest.mark.parametrize("on", ["process", "room"])
async def test_waits_poll_through_read_lag_on_what_this_client_created(on: str) -> None:
    async with setup(boot_delay=0.05, read_after_create_lag=0.3) as (fake, client):
        if on == "process":
            process = await client.processes.create_process(Region.DUBAI)
            running = await client.processes.wait_for_process(
                process.process_id, poll_interval=0.02
            )
            assert running.status == ProcessStatus.RUNNING
        else:
            room = await client.rooms.create_room(Region.DUBAI)
            active = await client.rooms.wait_for_room(room.room_id, poll_interval=0.02)
            assert active.room_id == room.room_id
        route = "get_process_info" if on == "process" else "get_connection_info"
        assert fake.request_counts[route] >= 3  # it met 404s and kept polling


async def test_a_sibling_client_shares_what_was_created() -> None:
    async with setup(read_after_create_lag=0.2) as (_fake, client):
        process = await client.processes.create_process(Region.DUBAI)
        sibling = client.with_options(timeout=5.0)
        running = await sibling.processes.wait_for_process(process.process_id, poll_interval=0.02)
        assert running.process_id == process.process_id


async def test_a_404_for_what_another_client_created_or_never_existed_is_not_lag() -> None:
    async with setup(read_after_create_lag=60.0) as (fake, client):
        room = await client.rooms.create_room(Region.SYDNEY)
        process = await client.processes.create_process(Region.SYDNEY)
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as other:
            with pytest.raises(NotFoundError):
                await other.rooms.wait_for_room(room.room_id)
            with pytest.raises(NotFoundError):
                await other.processes.wait_for_process(process.process_id)
        with pytest.raises(NotFoundError):
            await client.processes.wait_for_process("never-made")
        with pytest.raises(NotFoundError):
            await client.rooms.wait_for_room("never-made")


async def test_after_the_grace_window_a_404_stands(short_grace: float) -> None:
    async with setup(read_after_create_lag=60.0) as (_fake, client):
        room = await client.rooms.create_room(Region.SYDNEY)
        process = await client.processes.create_process(Region.SYDNEY)
        started = asyncio.get_running_loop().time()
        with pytest.raises(NotFoundError):
            await client.processes.wait_for_process(process.process_id, poll_interval=0.02)
        with pytest.raises(NotFoundError):
            await client.rooms.wait_for_room(room.room_id, poll_interval=0.02)
        assert asyncio.get_running_loop().time() - started >= short_grace


async def test_a_room_wait_shorter_than_the_lag_times_out_with_the_404_as_cause() -> None:
    async with setup(read_after_create_lag=60.0) as (_fake, client):
        room = await client.rooms.create_room(Region.SYDNEY)
        with pytest.raises(RoomWaitTimeoutError) as caught:
            await client.rooms.wait_for_room(room.room_id, timeout=0.1, poll_interval=0.02)
        assert isinstance(caught.value.__cause__, NotFoundError)


async def test_preallocate_waits_through_read_lag() -> None:
    async with setup(boot_delay=0.05, read_after_create_lag=0.3) as (fake, client):
        result = await client.preallocate(
            {Region.LONDON: 2, Region.TOKYO: 2}, poll_interval=0.02, concurrency=4
        )
        assert result.complete and not result.failed
        assert sorted(result.created) == sorted(statuses(fake))
        assert fake.request_counts["get_process_info"] > 4  # the first reads answered 404


# -- 1. eventually consistent reads: the warm pool ------------------------------


async def test_the_pool_keeps_a_process_whose_first_read_answers_404() -> None:
    async with setup(boot_delay=0.2) as (fake, client):
        fake.faults.add("get_process_info", Fault(status=404))
        async with WarmPool(client, {Region.TOKYO: 1}, poll_interval=0.02) as pool:
            await pool.wait_ready(timeout=5)
            assert fake.processes_created == 1
            assert pool.lost_process_ids() == []
        assert fake.request_counts["get_process_info"] >= 2
    # Nothing forgotten, nothing left running.
    assert list(statuses(fake).values()) == ["stopped"]


async def test_the_pool_under_read_lag_neither_overcreates_nor_forgets_and_trims_right() -> None:
    clock = ManualClock()  # the fake's: its lag ends only when the test says so
    async with setup(clock=clock, boot_delay=1.0, read_after_create_lag=10.0) as (fake, client):
        async with WarmPool(client, {Region.LONDON: 1}, poll_interval=QUIET) as pool:
            await until(lambda: len(pool.process_ids()) == 1)
            first = pool.process_ids()[0]
            for _ in range(3):
                snapshot = await pool.refresh()  # 404s: not visible yet, still counted
                assert snapshot[Region.LONDON] == RegionCounts(starting=1)
            assert fake.processes_created == 1
            clock.advance(10.0)
            await pool.refresh()
            assert pool.ready

            # A match lands: a replacement is made, and reads do not see it yet.
            fake.set_rooms_allocated(first, 1)
            await pool.refresh()
            (second,) = set(pool.process_ids()) - {first}
            assert pool.snapshot()[Region.LONDON] == RegionCounts(starting=1, busy=1)
            fake.set_rooms_allocated(first, 0)
            await pool.refresh()  # first is idle again; second is unseen: nothing trimmed
            assert fake.request_counts["stop_process"] == 0
            assert set(pool.process_ids()) == {first, second}

            clock.advance(10.0)
            snapshot = await pool.refresh()  # both idle now: the older one is trimmed
            assert snapshot[Region.LONDON] == RegionCounts(idle=1)
            assert statuses(fake)[first] == "stopped"

            # On exit a process reads cannot see yet is stopped too.
            fake.set_rooms_allocated(second, 1)
            await pool.refresh()
            fake.set_rooms_allocated(second, 0)
            await pool.refresh()
            (third,) = set(pool.process_ids()) - {second}
            assert pool.snapshot()[Region.LONDON] == RegionCounts(starting=1, idle=1)
        assert statuses(fake) == {first: "stopped", second: "stopped", third: "stopped"}
        assert pool.lost_process_ids() == []


async def test_the_pool_gives_up_on_a_process_still_404_after_the_grace_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hathora_async")
    client_clock = ManualClock(1000.0)  # the client's: the grace window runs on it
    options = {"clock": client_clock}
    async with setup(client_options=options, clock=ManualClock(), read_after_create_lag=1e6) as (
        fake,
        client,
    ):
        async with WarmPool(client, {Region.MUMBAI: 1}, poll_interval=QUIET) as pool:
            await until(lambda: len(pool.process_ids()) == 1)
            ghost = pool.process_ids()[0]
            client_clock.advance(C.READ_AFTER_CREATE_GRACE - 1)
            await pool.refresh()
            assert pool.process_ids() == [ghost]  # still within the window: kept
            client_clock.advance(2)
            await pool.refresh()
            # Given up: logged by id, stopped anyway, listed; a replacement is made.
            assert pool.lost_process_ids() == [ghost]
            assert statuses(fake)[ghost] == "stopped"
            (replacement,) = pool.process_ids()
        assert statuses(fake)[replacement] == "stopped"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(ghost in m and "lost track" in m and "stopped it" in m for m in warned)


async def test_a_stop_answered_404_on_exit_is_tried_again_within_the_grace_window() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    async with setup(client_options={"sleep": sleep}, read_after_create_lag=60.0) as (
        fake,
        client,
    ):
        async with WarmPool(client, {Region.CHICAGO: 1}, poll_interval=QUIET) as pool:
            await until(lambda: len(pool.process_ids()) == 1)
            fake.faults.add("stop_process", Fault(status=404))
        assert list(statuses(fake).values()) == ["stopped"]
        assert fake.request_counts["stop_process"] == 2
        assert C.LAG_RETRY_INTERVAL in slept
        assert pool.lost_process_ids() == []


async def test_a_stop_answered_404_after_the_grace_window_is_a_lost_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hathora_async")
    client_clock = ManualClock()
    async with setup(client_options={"clock": client_clock}) as (fake, client):
        async with WarmPool(client, {Region.CHICAGO: 1}, poll_interval=QUIET) as pool:
            await pool.wait_ready(timeout=5)
            pid = pool.process_ids()[0]
            client_clock.advance(C.READ_AFTER_CREATE_GRACE + 1)
            fake.faults.add("stop_process", Fault(status=404), times=2)
        # The exit's stop and its one retry of lost processes met 404s: named, listed.
        assert pool.lost_process_ids() == [pid]
        assert statuses(fake)[pid] == "running"
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert pid in warned and "may still run" in warned


# -- 2. clock skew ------------------------------------------------------------


@pytest.mark.parametrize("offset", [-60.0, 60.0])
async def test_preallocate_finds_the_stray_of_a_lost_create_whatever_the_skew(
    offset: float,
) -> None:
    async with setup(retry=RetryPolicy.none(), clock_offset=offset) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        result = await client.preallocate({Region.LONDON: 1}, wait=False)
        (made,) = statuses(fake)
    # strays, not created: the call never learnt the id from its create.
    assert [p.process_id for p in result.strays] == [made]
    assert result.created == [] and result.starting[Region.LONDON] == []
    assert [f.outcome_unknown for f in result.failed] == [True]
    # The fake really is skewed.
    skew = result.strays[0].created_at - datetime.now(timezone.utc)
    assert abs(skew.total_seconds() - offset) < 5


@pytest.mark.parametrize("offset", [-60.0, 60.0])
async def test_the_pool_adopts_the_stray_of_a_lost_create_whatever_the_skew(
    offset: float,
) -> None:
    async with setup(retry=RetryPolicy.none(), clock_offset=offset) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        async with WarmPool(client, {Region.LONDON: 1}, poll_interval=QUIET) as pool:
            await until(lambda: pool.errors == 1)
            snapshot = await pool.refresh()
            assert snapshot[Region.LONDON] == RegionCounts(idle=1)
            assert fake.processes_created == 1
        assert list(statuses(fake).values()) == ["stopped"]


@pytest.mark.parametrize("offset", [-60.0, 0.0, 60.0])
async def test_another_clients_earlier_process_is_not_claimed_as_a_stray(offset: float) -> None:
    clock = ManualClock()
    async with setup(retry=RetryPolicy.none(), clock=clock, clock_offset=offset) as (
        fake,
        client,
    ):
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as other:
            theirs = await other.processes.create_process(Region.LONDON)
        clock.advance(5.0)  # a few seconds before this call, on the server's clock
        fake.faults.add("create_process", Fault(drop="after"))
        result = await client.preallocate({Region.LONDON: 1}, wait=False)
        (ours,) = set(statuses(fake)) - {theirs.process_id}
        assert [p.process_id for p in result.strays] == [ours]

        fake.faults.add("create_process", Fault(drop="after"))
        clock.advance(5.0)
        async with WarmPool(client, {Region.LONDON: 1}, poll_interval=QUIET) as pool:
            await until(lambda: pool.errors == 1)
            await pool.refresh()
            (adopted,) = pool.process_ids()
        assert adopted not in (theirs.process_id, ours)
        assert statuses(fake)[theirs.process_id] == "running"


async def test_the_stray_search_outlasts_read_lag() -> None:
    async with setup(retry=RetryPolicy.none(), read_after_create_lag=0.3) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        result = await client.preallocate({Region.SEATTLE: 1}, wait=False, poll_interval=0.05)
        assert [p.process_id for p in result.strays] == list(statuses(fake))
        assert fake.request_counts["get_latest_processes"] >= 2
        # Stopped, so the pool below cannot mistake it for the stray of its own lost create.
        first = result.strays[0].process_id
        await client.processes.stop_process(first)

        def adopted() -> bool:
            # The lost create's process and the replacement: tracked, or (surplus) trimmed.
            now = statuses(fake)
            mine = set(now) - {first}
            tracked = pool.process_ids()
            return len(mine) == 2 and all(p in tracked or now[p] == "stopped" for p in mine)

        fake.faults.add("create_process", Fault(drop="after"))
        async with WarmPool(client, {Region.SEATTLE: 1}, poll_interval=0.05) as pool:
            await until(lambda: pool.errors == 1)
            await until(adopted)
        assert set(statuses(fake).values()) == {"stopped"}
        assert fake.processes_created == 3


async def test_exit_keeps_looking_for_a_stray_through_read_lag() -> None:
    async with setup(retry=RetryPolicy.none(), read_after_create_lag=0.3) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        async with WarmPool(client, {Region.SEATTLE: 1}, poll_interval=QUIET) as pool:
            await until(lambda: pool.errors == 1)
        assert fake.processes_created == 1
        assert set(statuses(fake).values()) == {"stopped"}


async def test_eleven_creates_after_a_lost_one_do_not_push_its_process_out_of_sight() -> None:
    # GetLatestProcesses shows 10: the lost create's region is listed before
    # more of the call's creates go there (it was the residual limit).
    async with setup(retry=RetryPolicy.none()) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        result = await client.preallocate({Region.TOKYO: 12}, wait=False, concurrency=1)
        made = {p["processId"] for p in fake.processes()}
    assert len(result.created) == 11
    assert made == set(result.created) | {p.process_id for p in result.strays}
    assert len(result.strays) == 1


# -- 3. a create error that names its process ---------------------------------


@pytest.fixture
def create_answers_unreadably(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next create really happens, then fails as an unreadable answer naming the id.

    Stands in for the transport's decoding failure (e.g. a 201 nested too deep)
    until it sets ``process_id``; each id so made is appended to the list.
    """
    made: list[str] = []
    real = ProcessesApi.create_process_with_http_info

    async def create(self: ProcessesApi, region: Any, *, app_id: str | None = None) -> Any:
        response = await real(self, region, app_id=app_id)
        if made:
            return response
        made.append(response.data.process_id)
        error = HathoraError("the answer could not be decoded")
        error.outcome_unknown = True
        error.process_id = response.data.process_id
        self._client._recent.note("process", error.process_id)
        raise error

    monkeypatch.setattr(ProcessesApi, "create_process_with_http_info", create)
    return made


@pytest.mark.parametrize("wait", [True, False])
async def test_preallocate_reports_a_process_its_create_error_names(
    create_answers_unreadably: list[str], wait: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The waits of the region may share listings (issue 12): count the stray searches.
    searches: list[Region] = []
    real = prealloc.list_strays

    async def list_strays(client: Any, region: Region, **options: Any) -> Any:
        searches.append(region)
        return await real(client, region, **options)

    monkeypatch.setattr(prealloc, "list_strays", list_strays)
    async with setup(boot_delay=0.05, read_after_create_lag=0.1) as (_, client):
        result = await client.preallocate({Region.FRANKFURT: 2}, wait=wait, poll_interval=0.02)
    (named,) = create_answers_unreadably
    assert result.complete and not result.failed and not result.strays
    assert named in result.created and len(result.created) == 2
    reported = result.ready if wait else result.starting
    assert named in {p.process_id for p in reported[Region.FRANKFURT]}
    assert searches == []  # known: no stray search


async def test_the_pool_adopts_a_process_its_create_error_names(
    create_answers_unreadably: list[str],
) -> None:
    async with setup() as (fake, client):
        async with WarmPool(client, {Region.FRANKFURT: 1}, poll_interval=QUIET) as pool:
            await until(lambda: pool.errors == 1)
            (named,) = create_answers_unreadably
            assert pool.process_ids() == [named]
            snapshot = await pool.refresh()
            assert snapshot[Region.FRANKFURT] == RegionCounts(idle=1)
        assert statuses(fake) == {named: "stopped"}
        assert fake.request_counts["get_latest_processes"] == 0


async def test_preallocate_never_aborts_on_an_error_of_one_slot(short_grace: float) -> None:
    async with setup(retry=RetryPolicy.none(), boot_delay=0.05) as (fake, client):
        for route, fault in [
            ("create_process", Fault(status=500)),
            ("create_process", Fault(body="malformed")),
            ("create_process", Fault(body="truncated")),
            ("get_process_info", Fault(status=404)),
            ("get_process_info", Fault(status=401)),
            ("get_latest_processes", Fault(status=503)),
        ]:
            fake.faults.add(route, fault)
        result = await client.preallocate({Region.SEATTLE: 6}, poll_interval=0.02, concurrency=1)
    assert len(result.failed) >= 3
    made = set(statuses(fake))
    assert made == set(result.created) | {p.process_id for p in result.strays}


# -- the fake acts on a request it accepted, whether or not its client waits ----------


async def test_a_create_whose_client_hung_up_during_the_fakes_latency_is_still_made() -> None:
    async with setup(retry=RetryPolicy.none(), client_options={"timeout": 0.1}) as (fake, client):
        fake.faults.add("create_process", Fault(latency=0.4))
        with pytest.raises(HathoraError) as caught:
            await client.processes.create_process(Region.SEATTLE)
        assert caught.value.outcome_unknown is True
        # The connection is gone at once (the handler ended), the action goes on.
        await until(lambda: fake.open_connections == 0)
        assert fake.processes_created == 0
        await until(lambda: fake.processes_created == 1)
        [made] = fake.processes()
        assert made["region"] == "Seattle"


@pytest.mark.parametrize(
    "operation", ["stop_process", "create_room", "destroy_room", "update_room_config"]
)
async def test_every_state_change_is_carried_out_after_its_client_hung_up(operation: str) -> None:
    async with setup(retry=RetryPolicy.none()) as (fake, client):
        process = await client.processes.create_process(Region.SEATTLE)
        room = await client.rooms.create_room(Region.SEATTLE)
        hasty = client.with_options(timeout=0.1)
        fake.faults.add(operation, Fault(latency=0.4))
        with pytest.raises(HathoraError):
            if operation == "stop_process":
                await hasty.processes.stop_process(process.process_id)
            elif operation == "create_room":
                await hasty.rooms.create_room(Region.SEATTLE, room_id="late-room")
            elif operation == "update_room_config":
                await hasty.rooms.update_room_config(room.room_id, "late-config")
            else:
                await hasty.rooms.destroy_room(room.room_id)
        if operation == "stop_process":
            await until(lambda: statuses(fake)[process.process_id] != "running")
        elif operation == "create_room":
            await until(lambda: fake.rooms_created == 2)
            assert fake.room("late-room")["status"] in ("active", "scheduling")
        elif operation == "update_room_config":
            await until(lambda: fake.room(room.room_id)["roomConfig"] == "late-config")
        else:
            await until(lambda: fake.room(room.room_id)["status"] == "destroyed")


async def test_a_read_whose_client_hung_up_ends_with_it() -> None:
    async with setup(retry=RetryPolicy.none(), client_options={"timeout": 0.1}) as (fake, client):
        fake.faults.add("get_latest_processes", Fault(latency=30.0))
        with pytest.raises(HathoraError):
            await client.processes.get_latest_processes()
        await until(lambda: fake.open_connections == 0)
        assert not fake._acting


async def test_closing_the_fake_ends_the_actions_still_running() -> None:
    async with setup(retry=RetryPolicy.none(), client_options={"timeout": 0.1}) as (fake, client):
        fake.faults.add("create_process", Fault(latency=30.0))
        with pytest.raises(HathoraError):
            await client.processes.create_process(Region.SEATTLE)
        await until(lambda: fake.open_connections == 0)
        assert len(fake._acting) == 1
    # Out of the fake's context: the pending action was cancelled, nothing made.
    assert not fake._acting
    assert fake.processes_created == 0
