"""WarmPool: filling, refilling after rooms land and processes die, trimming, errors, exit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import pytest
from _pooltools import foreign_create, statuses, until

from hathora_async import (
    ClientClosedError,
    HathoraClient,
    RateLimit,
    RateLimitedError,
    Region,
    RegionCounts,
    RetryPolicy,
    WarmPool,
)
from hathora_async import _constants as C
from hathora_async.testing import FakeHathora, Fault, ManualClock

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)
# The background pass runs once on entry, then sleeps: the tests drive refresh().
QUIET = 3600.0


@asynccontextmanager
async def setup(
    clock: ManualClock | None = None,
    retry: RetryPolicy = FAST,
    rate_limit: RateLimit | None = RateLimit(),  # noqa: B008 (frozen)
    client_options: dict[str, Any] | None = None,
    **fake_options: Any,
) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    # The manual clock drives the fake's lifecycle only; the client and pool run in real
    # time (unless ``client_options`` gives the client a clock of its own).
    async with (
        FakeHathora(clock=clock or ManualClock(), seed=9, **fake_options) as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=retry,
            rate_limit=rate_limit,
            **(client_options or {}),
        ) as client,
    ):
        yield fake, client


async def test_fills_every_region_to_its_target() -> None:
    clock = ManualClock()
    async with setup(clock, boot_delay=5.0) as (fake, client):
        targets = {Region.SEATTLE: 2, Region.FRANKFURT: 1}
        async with WarmPool(client, targets, poll_interval=QUIET) as pool:
            assert not pool.ready
            first = await pool.refresh()
            assert first[Region.SEATTLE] == RegionCounts(starting=2)
            assert first[Region.FRANKFURT] == RegionCounts(starting=1)
            clock.advance(5.0)
            await pool.wait_ready(timeout=5)
            assert pool.snapshot() == {
                Region.SEATTLE: RegionCounts(idle=2),
                Region.FRANKFURT: RegionCounts(idle=1),
            }
            # Starting processes count toward the target: no over-creation.
            assert fake.processes_created == 3
            assert sorted(pool.process_ids()) == sorted(statuses(fake))


async def test_refills_when_rooms_land_then_trims_the_surplus() -> None:
    async with (
        setup() as (fake, client),
        WarmPool(client, {Region.TOKYO: 2}, poll_interval=QUIET) as pool,
    ):
        await pool.wait_ready(timeout=5)
        busy = pool.process_ids(Region.TOKYO)[0]
        fake.set_rooms_allocated(busy, 1)
        snapshot = await pool.refresh()
        # The busy process no longer counts as warm: a replacement was created.
        assert snapshot[Region.TOKYO] == RegionCounts(idle=2, busy=1)
        assert fake.processes_created == 3
        assert set(statuses(fake).values()) == {"running"}

        # The match ends: three idle processes, one above the maximum (the target).
        fake.set_rooms_allocated(busy, 0)
        snapshot = await pool.refresh()
        assert snapshot[Region.TOKYO] == RegionCounts(idle=2)
        final = statuses(fake)
        assert sorted(final.values()) == ["running", "running", "stopped"]
        # The oldest idle one went: the process that had hosted the match.
        assert final[busy] == "stopped"
        assert busy not in pool.process_ids()


async def test_keeps_surplus_up_to_max_per_region() -> None:
    async with setup() as (fake, client):
        pool = WarmPool(client, {Region.DALLAS: 1}, max_per_region=2, poll_interval=QUIET)
        async with pool:
            await pool.wait_ready(timeout=5)
            busy = pool.process_ids()[0]
            fake.set_rooms_allocated(busy, 2)
            await pool.refresh()
            fake.set_rooms_allocated(busy, 0)
            assert (await pool.refresh())[Region.DALLAS] == RegionCounts(idle=2)
            assert fake.request_counts["stop_process"] == 0


async def test_replaces_processes_that_fail_or_are_stopped_elsewhere() -> None:
    clock = ManualClock()
    async with (
        setup(clock, boot_delay=1.0) as (fake, client),
        WarmPool(client, {Region.LONDON: 2}, poll_interval=QUIET) as pool,
    ):
        await pool.refresh()  # the creates are made before the clock moves
        clock.advance(1.0)
        await pool.wait_ready(timeout=5)
        victim = pool.process_ids()[0]
        fake.fail_process(victim)
        snapshot = await pool.refresh()
        assert snapshot[Region.LONDON] == RegionCounts(starting=1, idle=1, failed=1)
        assert victim not in pool.process_ids()
        clock.advance(1.0)
        assert (await pool.refresh())[Region.LONDON] == RegionCounts(idle=2, failed=1)

        # A replacement that fails to boot is dropped and replaced in turn.
        fake.world.boot_failure_rate = 1.0
        fake.fail_process(pool.process_ids()[0])
        await pool.refresh()
        clock.advance(1.0)
        await pool.refresh()  # the replacement shows failed: dropped, replaced again
        assert pool.snapshot()[Region.LONDON] == RegionCounts(starting=1, idle=1, failed=3)


async def test_replaces_processes_the_idle_reaper_stopped() -> None:
    clock = ManualClock()
    async with setup(clock, idle_timeout=300.0) as (fake, client):
        targets = {Region.SINGAPORE: 2, Region.SAO_PAULO: 1}
        async with WarmPool(client, targets, poll_interval=QUIET) as pool:
            await pool.wait_ready(timeout=5)
            originals = set(pool.process_ids())
            busy = pool.process_ids(Region.SINGAPORE)[0]
            fake.set_rooms_allocated(busy, 1)
            await pool.refresh()  # one replacement for the busy one
            clock.advance(301.0)  # every idle process is reaped; the busy one is not
            snapshot = await pool.refresh()
            assert snapshot == {
                Region.SINGAPORE: RegionCounts(idle=2, busy=1, failed=2),
                Region.SAO_PAULO: RegionCounts(idle=1, failed=1),
            }
            now = statuses(fake)
            assert now[busy] == "running"
            assert all(now[pid] == "stopped" for pid in originals - {busy})
            assert sum(s == "running" for s in now.values()) == 4


@pytest.mark.usefixtures("short_grace")  # the 503'd create made nothing: no long search
async def test_api_errors_back_off_and_never_kill_the_pool() -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    async with setup(retry=RetryPolicy.none()) as (fake, client):
        fake.faults.add("create_process", Fault(status=429), times=3)
        fake.faults.add("create_process", Fault(status=503))
        fake.faults.add("create_process", Fault(drop="before"))
        pool = WarmPool(
            client, {Region.MUMBAI: 2}, poll_interval=0.01, max_backoff=0.04, sleep=record
        )
        async with pool:
            await pool.wait_ready(timeout=5)
            assert pool.errors == 5
            assert fake.processes_created == 2
            assert pool.snapshot()[Region.MUMBAI] == RegionCounts(idle=2)
    # Errors doubled the wait up to the cap; a clean pass reset it.
    assert delays[:3] == [0.02, 0.04, 0.04]
    assert 0.01 in delays


async def test_a_429_retry_after_is_honoured() -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    # The client's own send budget would pause every call 7 s too (tested in
    # test_ratelimit.py): without it, this tests the pool's backoff alone.
    async with setup(retry=RetryPolicy.none(), rate_limit=None) as (fake, client):
        fake.faults.add("create_process", Fault(status=429, retry_after="7"))
        pool = WarmPool(
            client, {Region.SYDNEY: 1}, poll_interval=0.01, max_backoff=60, sleep=record
        )
        async with pool:
            await pool.wait_ready(timeout=5)
            assert isinstance(pool.last_error, RateLimitedError)
    assert delays[0] == 7.0


async def test_exit_stops_idle_and_starting_processes_but_not_busy_ones() -> None:
    clock = ManualClock()
    async with setup(clock, boot_delay=2.0) as (fake, client):
        async with WarmPool(client, {Region.CHICAGO: 2}, poll_interval=QUIET) as pool:
            await pool.refresh()
            clock.advance(2.0)
            await pool.wait_ready(timeout=5)
            busy = pool.process_ids()[0]
            fake.set_rooms_allocated(busy, 1)
            await pool.refresh()  # creates a replacement, still starting at exit
            assert pool.snapshot()[Region.CHICAGO] == RegionCounts(starting=1, idle=1, busy=1)
        after = statuses(fake)
    assert after.pop(busy) == "running"  # it hosts a match
    assert sorted(after.values()) == ["stopped", "stopped"]


async def test_exit_can_stop_busy_ones_too_or_nothing() -> None:
    async with setup() as (fake, client):
        pool = WarmPool(client, {Region.DUBAI: 1}, poll_interval=QUIET, stop_busy_on_exit=True)
        async with pool:
            await pool.wait_ready(timeout=5)
            fake.set_rooms_allocated(pool.process_ids()[0], 1)
            await pool.refresh()
        assert sorted(statuses(fake).values()) == ["stopped", "stopped"]

        keep = WarmPool(client, {Region.DUBAI: 1}, poll_interval=QUIET, stop_on_exit=False)
        async with keep:
            await keep.wait_ready(timeout=5)
        assert sorted(statuses(fake).values()) == ["running", "stopped", "stopped"]


async def test_exit_mid_pass_lets_creates_land_and_stops_them() -> None:
    sent = asyncio.Event()
    trace = aiohttp.TraceConfig()

    async def on_sent(*_: Any) -> None:
        sent.set()

    trace.on_request_headers_sent.append(on_sent)
    async with FakeHathora(latency=0.05) as fake:
        client = HathoraClient(fake.token, fake.app_id, base_url=fake.url, trace_configs=[trace])
        async with client, WarmPool(client, {Region.SEATTLE: 3}, poll_interval=QUIET) as pool:
            await sent.wait()
            # The creates are on the wire: leave now, in the middle of the pass.
            assert pool.process_ids() == []
        assert fake.processes_created == 3
        assert set(statuses(fake).values()) == {"stopped"}


async def test_misuse_is_refused() -> None:
    async with setup() as (fake, client):
        with pytest.raises(ValueError, match="below its target"):
            WarmPool(client, {Region.SEATTLE: 3}, max_per_region=2)
        with pytest.raises(ValueError, match="without a target"):
            WarmPool(client, {Region.SEATTLE: 1}, max_per_region={Region.TOKYO: 2})
        with pytest.raises(ValueError):
            WarmPool(client, {Region.SEATTLE: -1})
        with pytest.raises(ValueError):
            WarmPool(client, {Region.SEATTLE: 1}, poll_interval=0)
        pool = WarmPool(client, {Region.SEATTLE: 1}, poll_interval=QUIET)
        with pytest.raises(RuntimeError):
            await pool.refresh()
        with pytest.raises(RuntimeError):
            await pool.wait_ready()
        async with pool:
            await pool.wait_ready(timeout=5)
        with pytest.raises(RuntimeError):
            async with pool:
                pass
        with pytest.raises(RuntimeError):
            await pool.refresh()
        assert "Seattle: 1" in repr(pool)
    assert fake.processes_created == 1


async def test_a_real_room_makes_a_pool_process_busy_and_is_replaced() -> None:
    clock = ManualClock()
    async with (
        setup(clock, boot_delay=2.0) as (fake, client),
        WarmPool(client, {Region.SEATTLE: 1}, poll_interval=QUIET) as pool,
    ):
        await pool.refresh()
        clock.advance(2.0)
        await pool.wait_ready(timeout=5)
        room = await client.rooms.create_room(Region.SEATTLE)
        # The room went to the warm process, not to a cold one.
        assert pool.process_ids() == [room.process_id]
        assert fake.processes_created == 1
        snapshot = await pool.refresh()
        assert snapshot[Region.SEATTLE] == RegionCounts(starting=1, busy=1)
        clock.advance(2.0)
        assert (await pool.refresh())[Region.SEATTLE] == RegionCounts(idle=1, busy=1)
        assert fake.processes_created == 2


async def test_exit_rereads_and_spares_a_process_a_match_landed_on_since_the_last_pass() -> None:
    async with setup() as (fake, client):
        async with WarmPool(
            client, {Region.SEATTLE: 1, Region.LONDON: 1}, poll_interval=QUIET
        ) as pool:
            await pool.wait_ready(timeout=5)
            gone = pool.process_ids(Region.LONDON)[0]
            # After the last pass: a match lands on the Seattle process, and the
            # London one is stopped elsewhere.
            room = await client.rooms.create_room(Region.SEATTLE)
            assert room.process_id in pool.process_ids()
            fake.fail_process(gone)
        assert fake.room(room.room_id)["status"] == "active"
        assert statuses(fake)[room.process_id] == "running"
        # The pool's books say why: the match's process is busy, the other one ended.
        assert pool.snapshot() == {
            Region.SEATTLE: RegionCounts(busy=1),
            Region.LONDON: RegionCounts(failed=1),
        }
        assert pool.process_ids() == [room.process_id]
        assert fake.request_counts["stop_process"] == 0


async def test_exit_spares_a_booting_process_a_room_was_placed_on() -> None:
    clock = ManualClock()
    async with setup(clock, boot_delay=5.0) as (fake, client):
        async with WarmPool(client, {Region.SYDNEY: 1}, poll_interval=QUIET) as pool:
            await pool.refresh()
            room = await client.rooms.create_room(Region.SYDNEY)
            assert pool.process_ids() == [room.process_id]
            assert (await pool.refresh())[Region.SYDNEY] == RegionCounts(starting=1, busy=1)
        assert statuses(fake)[room.process_id] == "starting"
        assert fake.room(room.room_id)["status"] != "destroyed"


@pytest.mark.parametrize("change", ["room_lands", "stopped_elsewhere"])
async def test_trimming_rereads_a_process_before_stopping_it(change: str) -> None:
    # When armed, the pass's poll of that process answers "idle" and then, before
    # the pass trims it, a match lands on it (or it is stopped elsewhere).
    armed: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_end(_: Any, __: Any, params: aiohttp.TraceRequestEndParams) -> None:
        # The pass's poll: the process's own read or its region's shared listing (issue 12).
        path = params.url.path
        if armed and params.method == "GET" and path.endswith(("/" + armed[0], "/list/latest")):
            pid = armed.pop()
            if change == "room_lands":
                fake.set_rooms_allocated(pid, 1)
            else:
                fake.fail_process(pid)

    trace.on_request_end.append(on_end)
    async with FakeHathora(clock=ManualClock(), seed=9) as fake:
        client = HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, retry=FAST, trace_configs=[trace]
        )
        async with client, WarmPool(client, {Region.TOKYO: 1}, poll_interval=QUIET) as pool:
            await pool.wait_ready(timeout=5)
            old = pool.process_ids()[0]
            fake.set_rooms_allocated(old, 1)
            await pool.refresh()  # a replacement
            fake.set_rooms_allocated(old, 0)  # the match ends: old is idle surplus...
            armed.append(old)
            snapshot = await pool.refresh()
            assert fake.request_counts["stop_process"] == 0
            if change == "room_lands":
                assert snapshot[Region.TOKYO] == RegionCounts(idle=1, busy=1)
                assert statuses(fake)[old] == "running"
                assert old in pool.process_ids()
            else:
                assert snapshot[Region.TOKYO] == RegionCounts(idle=1, failed=1)
                assert old not in pool.process_ids()


async def test_a_closed_client_ends_the_pool_and_exit_names_what_it_could_not_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hathora_async")
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0.002)

    async with FakeHathora(clock=ManualClock(), seed=9, boot_delay=5.0) as fake:
        client = HathoraClient(fake.token, fake.app_id, base_url=fake.url, retry=FAST)
        pool = WarmPool(
            client, {Region.SEATTLE: 2}, poll_interval=0.002, max_backoff=0.004, sleep=record
        )
        async with client, pool:
            await until(lambda: len(pool.process_ids()) == 2)
            ids = sorted(pool.process_ids())
            await client.aclose()
            # Never ready now: the wait ends with the reason rather than hanging.
            with pytest.raises(ClientClosedError):
                await pool.wait_ready(timeout=5)
            assert isinstance(pool.last_error, ClientClosedError)
            settled = (len(delays), pool.errors)
            await asyncio.sleep(0.05)
            assert (len(delays), pool.errors) == settled  # the background task ended
            with pytest.raises(ClientClosedError):
                await pool.refresh()
        # Exit could not stop them: they stay listed, and a warning names each one.
        assert sorted(pool.process_ids()) == ids
        warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert all(pid in warned for pid in ids)
        assert set(statuses(fake).values()) == {"starting"}


async def test_a_create_with_unknown_outcome_is_reconciled_not_repeated() -> None:
    clock = ManualClock()
    async with setup(clock, retry=RetryPolicy.none()) as (fake, client):
        # Another client's process in the region, from before the pool: not the pool's.
        other = await client.processes.create_process(Region.SEATTLE)
        clock.advance(5.0)
        fake.faults.add("create_process", Fault(drop="after"))
        async with WarmPool(client, {Region.SEATTLE: 1}, poll_interval=QUIET) as pool:
            await until(lambda: pool.errors == 1)
            assert pool.last_error is not None and pool.last_error.outcome_unknown
            # The create's process exists though its answer was lost: adopt it.
            snapshot = await pool.refresh()
            assert snapshot[Region.SEATTLE] == RegionCounts(idle=1)
            assert fake.processes_created == 2
            (stray,) = pool.process_ids()
            assert stray != other.process_id
            assert fake.request_counts["get_latest_processes"] == 1
        # So exit stops it.
        assert statuses(fake) == {other.process_id: "running", stray: "stopped"}


async def test_exit_reconciles_a_create_with_unknown_outcome_and_stops_the_stray() -> None:
    async with setup(retry=RetryPolicy.none()) as (fake, client):
        fake.faults.add("create_process", Fault(drop="after"))
        async with WarmPool(client, {Region.SEATTLE: 1}, poll_interval=QUIET) as pool:
            await until(lambda: pool.errors == 1)
            assert pool.process_ids() == []
        assert fake.processes_created == 1
        assert set(statuses(fake).values()) == {"stopped"}
        assert len(pool.process_ids()) == 0


async def test_a_pass_fenced_out_after_an_error_ends_quietly() -> None:
    """A pass that met an API error and then lost its fence is abandoned, not a crash
    (the backoff after it read a flag only the store-error branch had set)."""
    from hathora_async._store import Commit, FencedOutError, MemoryPoolStore

    class LosesItsLease(MemoryPoolStore):
        fenced_out = False

        async def commit(self, change: Commit, *, fence: int) -> None:
            if self.fenced_out:
                raise FencedOutError("another replica holds the lease now")
            await super().commit(change, fence=fence)

    store = LosesItsLease()
    async with (
        setup(retry=RetryPolicy.none(), boot_delay=3600.0) as (fake, client),
        WarmPool(client, {Region.SEATTLE: 2}, poll_interval=QUIET, store=store) as pool,
    ):
        await pool.refresh()
        assert fake.processes_created == 2
        errors = pool.errors
        fake.faults.add("get_latest_processes", Fault(status=500), times=1000)
        fake.faults.add("get_process_info", Fault(status=500), times=1000)
        store.fenced_out = True
        await pool.refresh()
        assert pool.errors > errors
        assert fake.processes_created == 2  # fenced out: nothing more was sent


# -- lost creates stay in sight (issue 12) ------------------------------------


@contextmanager
def _past_the_grace_on_exit(client_clock: ManualClock, client: HathoraClient) -> Iterator[None]:
    """Whatever happens, the exit finds every lost create's grace over (it looks till then)."""
    try:
        yield
    finally:
        client_clock.advance(C.READ_AFTER_CREATE_GRACE + client.timeouts.total + 1)


def _accounted(pool: WarmPool, fake: FakeHathora) -> None:
    """Every process the fake made is the pool's, or stopped: none billed unknown."""
    made = statuses(fake)
    tracked = set(pool.process_ids())
    unknown = {pid: s for pid, s in made.items() if pid not in tracked and s != "stopped"}
    assert unknown == {}


@pytest.mark.parametrize("fault", [Fault(status=502, acted=True), Fault(drop="after")])
async def test_a_lost_create_stays_in_sight_however_many_creates_follow(fault: Fault) -> None:
    # 25 creates in one pass: the lost one's process is the oldest, and a listing
    # shows only the 10 newest. It must be found, not replaced by a 26th.
    client_clock = ManualClock(1000.0)
    async with setup(retry=RetryPolicy.none(), client_options={"clock": client_clock}) as (
        fake,
        client,
    ):
        fake.faults.add("create_process", fault)
        async with WarmPool(
            client, {Region.SEATTLE: 25}, poll_interval=QUIET, concurrency=30
        ) as pool:
            with _past_the_grace_on_exit(client_clock, client):
                await until(lambda: pool.errors == 1)
                for _ in range(2):
                    await pool.refresh()
                assert pool.ready
                _accounted(pool, fake)
                assert len(pool.process_ids()) == 25
                assert fake.processes_created == 25  # nothing sent twice
                # Past every grace window: still nothing unknown, nothing more made.
                client_clock.advance(C.READ_AFTER_CREATE_GRACE + client.timeouts.total + 1)
                await pool.refresh()
                _accounted(pool, fake)
                assert fake.processes_created == 25
        assert set(statuses(fake).values()) == {"stopped"}


async def test_many_lost_creates_in_many_regions_all_stay_in_sight() -> None:
    client_clock = ManualClock(1000.0)
    async with setup(retry=RetryPolicy.none(), client_options={"clock": client_clock}) as (
        fake,
        client,
    ):
        lost = [Fault(status=502, acted=True), Fault(drop="after")]
        fake.faults.add_random("create_process", 0.2, lost, seed=5)
        targets = {Region.SEATTLE: 25, Region.LONDON: 14, Region.TOKYO: 3}
        async with WarmPool(client, targets, poll_interval=QUIET, concurrency=40) as pool:
            with _past_the_grace_on_exit(client_clock, client):
                await until(lambda: pool.errors > 0)
                for _ in range(4):
                    await pool.refresh()
                assert pool.errors >= 5  # the faults did fire, several per region
                assert pool.ready
                _accounted(pool, fake)
                assert fake.processes_created == sum(targets.values())
        assert set(statuses(fake).values()) == {"stopped"}


async def test_a_lost_create_hidden_by_read_lag_holds_its_regions_creates_until_found() -> None:
    # The search right after the loss cannot see its process yet: the region's
    # creates stop once 9 more are made, and go on once a later pass adopts it.
    clock = ManualClock()
    client_clock = ManualClock(1000.0)
    async with setup(
        clock,
        retry=RetryPolicy.none(),
        client_options={"clock": client_clock},
        read_after_create_lag=1.0,
    ) as (fake, client):
        fake.faults.add("create_process", Fault(status=502, acted=True))
        async with WarmPool(
            client, {Region.SEATTLE: 25}, poll_interval=QUIET, concurrency=30
        ) as pool:
            with _past_the_grace_on_exit(client_clock, client):
                await until(lambda: pool.errors == 1)
                await pool.refresh()
                assert not pool.ready
                # The lost one and at most STRAY_SIGHT newer (headroom left for others').
                assert fake.processes_created == 1 + C.STRAY_SIGHT
                # Past the lag (the client's clock moves with the server's): listings show it.
                clock.advance(2.0)
                client_clock.advance(2.0)
                for _ in range(2):
                    await pool.refresh()
                assert pool.ready
                _accounted(pool, fake)
                assert fake.processes_created == 25
        assert set(statuses(fake).values()) == {"stopped"}


@pytest.mark.parametrize(
    "fault",
    [Fault(status=502, acted=True, latency=0.3), Fault(drop="after", latency=0.3)],
    ids=["502 after creating", "connection closed"],
)
async def test_another_clients_process_in_a_lost_creates_window_is_never_adopted(
    fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    # Another client creates in the region while the fake works on the pool's
    # create whose answer is then lost: its process is older than the pool's
    # and newer than the send. Adopting the oldest took it, and the exit
    # stopped another client's process while the pool's own ran on unknown.
    client_clock = ManualClock(1000.0)
    async with setup(retry=RetryPolicy.none(), client_options={"clock": client_clock}) as (
        fake,
        client,
    ):
        fake.faults.add("create_process", fault)

        async def other() -> str:
            await until(lambda: fake.request_counts["create_process"] > 0)
            return foreign_create(fake)

        other_task = asyncio.create_task(other())
        with caplog.at_level(logging.WARNING, logger="hathora_async"):
            async with WarmPool(
                client, {Region.SEATTLE: 3}, poll_interval=QUIET, concurrency=5
            ) as pool:
                with _past_the_grace_on_exit(client_clock, client):
                    foreign = await other_task
                    await until(lambda: pool.errors == 1)
                    for _ in range(2):
                        await pool.refresh()
                    assert foreign not in pool.process_ids()
                    ours = set(statuses(fake)) - {foreign} - set(pool.process_ids())
                    assert len(ours) == 1  # the lost create's: not adopted either
                    assert set(pool.ambiguous_process_ids()) == ours | {foreign}
    assert statuses(fake)[foreign] != "stopped"  # the exit left the other client's alone
    assert any(
        foreign in r.getMessage() and "not adopted" in r.getMessage() for r in caplog.records
    )
