"""The warm pool's stores: the contract both keep, then Redis's lease, fence, TTLs.

The Redis tests run a real redis-server (tests/redis_server.py): skipped with
the reason when it is missing, failed when CI=true.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis_server import RedisServer, redis_server

from hathora_async import _constants as C
from hathora_async._reconcile import CreateIntent, ProcessRecord, RegionCounts
from hathora_async._store import (
    Commit,
    FencedOutError,
    MemoryPoolStore,
    PoolStore,
    Snapshot,
    StoreError,
    StoreUnavailableError,
    Targets,
    keep_lease,
)
from hathora_async.models import ProcessStatus, Region
from hathora_async.testing._clock import ManualClock

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from hathora_async.redis import RedisPoolStore

TOKYO, LONDON = Region.TOKYO, Region.LONDON
ROOT = Path(__file__).resolve().parents[1]
MakeStore = Callable[..., "RedisPoolStore"]


def record(pid: str, status: ProcessStatus = ProcessStatus.RUNNING, **kw: Any) -> ProcessRecord:
    return ProcessRecord(pid, kw.pop("region", TOKYO), status, **kw)


def snapshot(fence: int, leader: str = "r", idle: int = 1) -> Snapshot:
    return Snapshot(
        counts={TOKYO: RegionCounts(starting=1, idle=idle, busy=2, failed=3)},
        targets={TOKYO: 2, LONDON: 0},
        max_per_region={TOKYO: 3},
        leader=leader,
        fence=fence,
        written_at=1234.5,
    )


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


@pytest.fixture
async def make_store(server: RedisServer) -> AsyncIterator[MakeStore]:
    """New RedisPoolStore instances, each on its own connection pool (like replicas)."""
    import redis.asyncio as aioredis

    from hathora_async.redis import RedisPoolStore

    clients: list[aioredis.Redis] = []
    name = f"pool-{uuid.uuid4().hex[:6]}"

    def make(decode: bool = False, **kw: Any) -> RedisPoolStore:
        client = aioredis.Redis.from_url(server.url, decode_responses=decode)
        clients.append(client)
        kw.setdefault("name", name)
        return RedisPoolStore(client, **kw)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(params=["memory", "redis-bytes", "redis-text"])
def store(request: pytest.FixtureRequest) -> PoolStore:
    if request.param == "memory":
        return MemoryPoolStore()
    make: MakeStore = request.getfixturevalue("make_store")
    return make(decode=request.param == "redis-text")


# -- the contract, for every store ---------------------------------------------------


async def test_a_new_store_is_empty_and_not_leading(store: PoolStore) -> None:
    assert not store.is_leader
    assert store.fence is None
    state = await store.load()
    assert (state.records, state.intents, state.snapshot) == ({}, {}, None)


async def test_commit_and_load_round_trip(store: PoolStore) -> None:
    assert await store.acquire()
    fence = store.fence
    assert fence is not None
    records = (
        record("p1", rooms_allocated=2, created_at=1.5, seen_at=2.5),
        record("p2", ProcessStatus("hibernating"), region=Region("Atlantis"), missing_since=3.25),
    )
    intents = (
        CreateIntent("i1", LONDON, 10.0, fence, None),
        CreateIntent("i2", TOKYO, 11.0, fence, 9.5),
    )
    await store.commit(
        Commit(put_records=records, put_intents=intents, snapshot=snapshot(fence)), fence=fence
    )
    state = await store.load()
    assert state.records == {r.process_id: r for r in records}
    assert state.intents == {i.intent_id: i for i in intents}
    assert state.snapshot == snapshot(fence)
    # An intent completed: removed with its record added, in one write.
    await store.commit(
        Commit(put_records=(record("p3"),), drop_intents=("i1",), drop_records=("p1",)),
        fence=fence,
    )
    state = await store.load()
    assert sorted(state.records) == ["p2", "p3"]
    assert list(state.intents) == ["i2"]
    assert state.snapshot == snapshot(fence)  # kept when a commit brings none


async def test_a_write_under_an_old_fence_is_refused(store: PoolStore) -> None:
    assert await store.acquire()
    old = store.fence
    assert old is not None
    await store.commit(Commit(put_records=(record("p1"),)), fence=old)
    await store.release()
    assert not store.is_leader
    assert await store.acquire()
    new = store.fence
    assert new is not None and new > old
    with pytest.raises(FencedOutError):
        await store.commit(Commit(drop_records=("p1",), snapshot=snapshot(old)), fence=old)
    state = await store.load()
    assert list(state.records) == ["p1"]
    assert state.snapshot is None
    await store.commit(Commit(drop_records=("p1",)), fence=new)
    assert (await store.load()).records == {}


async def test_acquire_when_leading_keeps_the_fence(store: PoolStore) -> None:
    assert await store.acquire()
    fence = store.fence
    assert await store.acquire()
    assert await store.renew()
    assert store.fence == fence


async def test_membership_of_one(store: PoolStore) -> None:
    assert await store.members() == []
    assert await store.heartbeat() == 1
    assert await store.members() == [store.replica_id]
    assert await store.leave() == 0
    assert await store.members() == []


# -- Redis: the lease ----------------------------------------------------------------


async def test_one_lease_among_many_replicas(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(6)]
    won = await asyncio.gather(*(s.acquire() for s in stores))
    assert sum(won) == 1
    assert [s.is_leader for s in stores] == won
    # Trying again changes nothing: the leader renews, the others still fail.
    again = await asyncio.gather(*(s.acquire() for s in stores))
    assert again == won
    assert len({s.replica_id for s in stores}) == len(stores)


async def test_every_new_lease_has_a_larger_fence(make_store: MakeStore) -> None:
    a, b = make_store(), make_store()
    fences = []
    for s in (a, b, a, a, b):
        assert await s.acquire()
        fences.append(s.fence)
        assert await s.renew()
        assert s.fence == fences[-1]
        await s.release()
        assert not s.is_leader and s.fence is None
    assert fences == sorted(fences) and len(set(fences)) == len(fences)


async def test_a_paused_leader_is_fenced_out_and_knows_it(make_store: MakeStore) -> None:
    clock = ManualClock(1000.0)
    a = make_store(lease_ttl=0.4, clock=clock)
    b = make_store(lease_ttl=0.4)
    assert await a.acquire()
    stale = a.fence
    assert stale is not None
    # "a" is paused: it does not renew; its monotonic clock runs on meanwhile.
    clock.advance(0.4 * (1 - C.LEASE_SAFETY_FRACTION))
    assert not a.is_leader and a.fence is None
    deadline = time.monotonic() + 5
    while not await b.acquire():
        assert time.monotonic() < deadline, "the lease never expired"
        await asyncio.sleep(0.02)
    assert b.fence is not None and b.fence > stale
    await b.commit(Commit(put_records=(record("b1"),)), fence=b.fence)
    # "a" resumes and writes what it believed before the pause: refused.
    with pytest.raises(FencedOutError):
        await a.commit(Commit(drop_records=("b1",), put_records=(record("a1"),)), fence=stale)
    assert list((await b.load()).records) == ["b1"]
    assert not await a.renew()
    assert not await a.acquire()  # b holds it


async def test_a_crashed_leaders_lease_passes_on_after_its_ttl(make_store: MakeStore) -> None:
    ttl = 0.6
    a = make_store(lease_ttl=ttl)
    b = make_store(lease_ttl=ttl)
    started = time.monotonic()
    assert await a.acquire()
    # "a" crashes: no renewal, no release. "b" polls like a follower's lease task.
    overlap = False
    while not await b.acquire():
        overlap = overlap or (a.is_leader and b.is_leader)
        await asyncio.sleep(0.02)
        assert time.monotonic() - started < ttl + 5, "no handover"
    elapsed = time.monotonic() - started
    assert not a.is_leader  # it had stepped down before the lease could expire
    assert not overlap
    assert elapsed >= ttl * 0.95  # Redis kept the lease for its ttl (ms rounding)


async def test_a_released_lease_passes_on_at_once(make_store: MakeStore) -> None:
    a, b = make_store(lease_ttl=30), make_store(lease_ttl=30)
    assert await a.acquire()
    assert not await b.acquire()
    await a.release()
    assert await b.acquire()
    await a.release()  # not a's any more: releasing does nothing
    assert b.is_leader and await b.renew()


async def test_unreachable_redis_the_leader_steps_down_and_keeps_no_stale_lease(
    server: RedisServer, make_store: MakeStore
) -> None:
    clock = ManualClock(0.0)
    a = make_store(lease_ttl=30, op_timeout=0.2, clock=clock)
    b = make_store(lease_ttl=30, op_timeout=0.2)
    assert await a.acquire()
    first = a.fence
    assert first is not None
    server.pause()
    try:
        with pytest.raises(StoreUnavailableError):
            await a.renew()
        assert a.is_leader  # its deadline has not passed: the lease still holds
        clock.advance(30 * (1 - C.LEASE_SAFETY_FRACTION))
        assert not a.is_leader  # no I/O needed to step down
        with pytest.raises(StoreUnavailableError):
            await a.renew()
        with pytest.raises(StoreUnavailableError):
            await a.load()
    finally:
        server.resume()
    assert not await b.acquire()  # the old lease still holds in Redis...
    assert await a.acquire()  # ...until "a" releases it and starts a new one
    assert a.fence is not None and a.fence > first
    with pytest.raises(FencedOutError):
        await a.commit(Commit(put_records=(record("late"),)), fence=first)
    await a.commit(Commit(put_records=(record("now"),)), fence=a.fence)
    assert list((await b.load()).records) == ["now"]


async def test_an_acquire_that_timed_out_is_released_at_the_next_contact(
    server: RedisServer, make_store: MakeStore
) -> None:
    a = make_store(lease_ttl=30, op_timeout=0.2)
    b = make_store(lease_ttl=30)
    # Connected, and the script cached in Redis: the call leaves, unanswered.
    assert await b.acquire()
    await b.release()
    await a.load()
    server.pause()
    try:
        with pytest.raises(StoreUnavailableError):
            await a.acquire()
    finally:
        server.resume()
    await asyncio.sleep(0.1)  # the queued SET lands: "a" holds a lease it does not know
    assert not a.is_leader
    assert not await b.acquire()
    assert await a.acquire()
    await a.release()
    assert await b.acquire()


async def test_redis_paused_for_twice_the_lease_one_leader_after(
    server: RedisServer, make_store: MakeStore
) -> None:
    ttl = 1.0
    stores = [make_store(lease_ttl=ttl, op_timeout=0.25) for _ in range(3)]
    tasks = [asyncio.create_task(keep_lease(s)) for s in stores]
    samples: list[int] = []
    try:

        async def sample(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                samples.append(sum(s.is_leader for s in stores))
                await asyncio.sleep(0.01)

        while not any(s.is_leader for s in stores):
            await sample(0.05)
        (leader,) = [s for s in stores if s.is_leader]
        before = leader.fence
        assert before is not None
        paused_at = time.monotonic()
        server.pause()
        try:
            await sample(ttl * (1 - C.LEASE_SAFETY_FRACTION) - (time.monotonic() - paused_at))
            # Every renewal that counted was sent before the pause: nobody leads now,
            # and the lease has not expired in Redis yet.
            assert not any(s.is_leader for s in stores)
            await sample(2 * ttl - (time.monotonic() - paused_at))
            assert not any(s.is_leader for s in stores)
        finally:
            server.resume()
        deadline = time.monotonic() + 2 * ttl + 3
        while sum(s.is_leader for s in stores) != 1:
            assert time.monotonic() < deadline, "no leader after Redis came back"
            await sample(0.05)
        await sample(ttl)  # and it stays one
        assert max(samples) == 1
        assert sum(s.is_leader for s in stores) == 1
        (after,) = [s.fence for s in stores if s.is_leader]
        assert after is not None and after > before
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- Redis: state across crashes, membership, keys ----------------------------------------


async def test_intents_and_records_survive_the_writer(make_store: MakeStore) -> None:
    a = make_store(lease_ttl=0.3)
    assert await a.acquire()
    fence = a.fence
    assert fence is not None
    intent = CreateIntent("i1", TOKYO, 5.0, fence, 4.0)
    await a.commit(
        Commit(put_records=(record("p1"),), put_intents=(intent,), snapshot=snapshot(fence)),
        fence=fence,
    )
    del a  # crashed: its client is closed by the fixture later, nothing released
    successor = make_store(lease_ttl=0.3)
    state = await successor.load()
    assert state.intents == {"i1": intent}
    assert list(state.records) == ["p1"]
    assert state.snapshot == snapshot(fence)
    deadline = time.monotonic() + 5
    while not await successor.acquire():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert successor.fence is not None and successor.fence > fence
    await successor.commit(Commit(drop_intents=("i1",)), fence=successor.fence)
    assert (await successor.load()).intents == {}


async def test_membership_answers_who_is_last(make_store: MakeStore) -> None:
    stores = [make_store(lease_ttl=0.2) for _ in range(3)]
    for n, s in enumerate(stores, 1):
        assert await s.heartbeat() == n
    assert await stores[0].members() == sorted(s.replica_id for s in stores)
    assert await stores[0].leave() == 2
    # The other two leave at once: exactly one of them is the last.
    assert sorted(await asyncio.gather(*(s.leave() for s in stores[1:]))) == [0, 1]
    assert await stores[0].members() == []


async def test_a_silent_replica_lapses_after_its_member_ttl(make_store: MakeStore) -> None:
    ttl = 0.2
    quiet, alive = make_store(lease_ttl=ttl), make_store(lease_ttl=ttl)
    assert await quiet.heartbeat() == 1
    assert await alive.heartbeat() == 2
    await asyncio.sleep(C.MEMBER_TTL_LEASES * ttl * 0.5)
    assert await alive.heartbeat() == 2  # "quiet" has not lapsed yet
    deadline = time.monotonic() + 5
    while await alive.heartbeat() != 1:  # "quiet" crashed: it stops counting
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await alive.leave() == 0


async def test_a_leaving_replica_does_not_count_one_silent_for_two_leases(
    make_store: MakeStore,
) -> None:
    ttl = 0.2
    crashed, first, last = (make_store(lease_ttl=ttl) for _ in range(3))
    for s in (crashed, first, last):
        await s.heartbeat()
    assert await first.leave() == 2  # "crashed" heartbeated just now: it counts
    await asyncio.sleep(C.LEAVE_FRESH_LEASES * ttl + 0.05)
    await last.heartbeat()
    assert crashed.replica_id in await last.members()  # still a member...
    assert await last.leave() == 0  # ...but silent too long to hold back the last one


async def test_every_key_is_under_the_prefix_and_expires(
    server: RedisServer, make_store: MakeStore
) -> None:
    import redis.asyncio as aioredis

    a = make_store(lease_ttl=2, state_ttl=100, intent_ttl=50)
    await a.heartbeat()
    assert await a.acquire()
    fence = a.fence
    assert fence is not None
    await a.commit(
        Commit(
            put_records=(record("p1"),),
            put_intents=(CreateIntent("i1", TOKYO, 1.0, fence),),
            snapshot=snapshot(fence),
        ),
        fence=fence,
    )
    await a.restore((), (), seen=None, hold=3)  # the marker of a recovery
    await a.claim_targets(Targets({TOKYO: 2}, {TOKYO: 3}))
    async with aioredis.Redis.from_url(server.url, decode_responses=True) as r:
        keys = sorted([k async for k in r.scan_iter(match="*")])
        assert keys == sorted(a.keys.values())
        prefix = f"hathora-async:pool:{{{a.name}}}:"
        assert all(k.startswith(prefix) for k in keys)
        ttls = {k.removeprefix(prefix): await r.pttl(k) for k in keys}
        limits = {
            "lease": 2000,
            "members": C.MEMBER_TTL_LEASES * 2000,
            "intents": 50_000,
            "records": 100_000,
            "snapshot": 100_000,
            "targets": 100_000,
            "fence": 100_000,
            "epoch": 100_000,
            "seq": 100_000,
            "recovering": 3000,
        }
        assert set(ttls) == set(limits)
        for key, ttl in ttls.items():
            assert 0.5 * limits[key] < ttl <= limits[key], key
        # Values stay small.
        for key in ("records", "intents"):
            assert all(len(v) < 200 for v in (await r.hgetall(prefix + key)).values())
        assert len(await r.get(prefix + "snapshot")) < 300
        assert len(await r.get(prefix + "targets")) < 100
        # Emptied and left: nothing remains but what expires by itself.
        await a.commit(Commit(drop_records=("p1",), drop_intents=("i1",)), fence=fence)
        await a.release()
        await a.leave()
        left = {"epoch", "fence", "recovering", "seq", "snapshot", "targets"}  # with TTLs above
        assert sorted([k async for k in r.scan_iter(match="*")]) == sorted(prefix + k for k in left)


async def test_an_unreadable_value_is_a_store_error(
    server: RedisServer, make_store: MakeStore
) -> None:
    import redis.asyncio as aioredis

    a = make_store()
    async with aioredis.Redis.from_url(server.url) as r:
        await r.hset(a.keys["records"], "p1", "[1, 2")
    with pytest.raises(StoreError, match="unreadable record 'p1'"):
        await a.load()


async def test_the_pool_name_is_checked(make_store: MakeStore) -> None:
    for bad in ("", "a{b", "x}", "n" * 201):
        with pytest.raises(ValueError, match="name"):
            make_store(name=bad)
    with pytest.raises(ValueError, match="lease_ttl"):
        make_store(lease_ttl=0)


async def test_keep_lease_takes_over_from_a_crashed_leader(make_store: MakeStore) -> None:
    ttl = 0.5
    crashed, follower = make_store(lease_ttl=ttl), make_store(lease_ttl=ttl)
    assert await crashed.acquire()
    task = asyncio.create_task(keep_lease(follower))
    try:
        started = time.monotonic()
        while not follower.is_leader:
            assert not crashed.is_leader or time.monotonic() - started < ttl
            assert time.monotonic() - started < ttl + 5, "no takeover"
            await asyncio.sleep(0.01)
        # Within the lease plus one tick (a third of it), with room for a loaded machine.
        assert time.monotonic() - started < ttl + ttl / 3 + 2
        assert follower.replica_id in await follower.members()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- the extra stays optional ---------------------------------------------------------------


def test_the_core_never_imports_redis() -> None:
    code = (
        "import sys, hathora_async, hathora_async.redis, hathora_async._store;"
        "assert 'redis.asyncio' not in sys.modules, sorted(m for m in sys.modules if 'redis' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_without_redis_py_the_store_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hathora_async.redis import RedisPoolStore

    monkeypatch.setitem(sys.modules, "redis.exceptions", None)
    with pytest.raises(ImportError, match=r"hathora-async\[redis\]"):
        RedisPoolStore(object(), name="p")  # type: ignore[arg-type]


async def test_restore_adds_only_and_marks_the_recovery(store: PoolStore) -> None:
    assert await store.acquire()
    fence = store.fence
    assert fence is not None
    kept = record("p1", ProcessStatus.STOPPED)
    await store.commit(Commit(put_records=(kept,)), fence=fence)
    before = await store.load()
    mine = CreateIntent("i1", TOKYO, 1.0, fence, None, window=5.0)
    await store.restore(
        (record("p1"), record("p2")), (mine,), seen=before.epoch or "other", hold=0.5
    )
    after = await store.load()
    assert after.records["p1"] == kept  # never overwritten
    assert after.records["p2"] == record("p2")
    assert after.intents == {"i1": mine}  # the window survives the round trip


async def test_a_lost_or_rolled_back_store_shows_in_its_epoch(
    server: RedisServer, make_store: MakeStore
) -> None:
    import redis.asyncio as aioredis

    a, b = make_store(), make_store()
    assert await a.acquire()
    fence = a.fence
    assert fence is not None
    await a.commit(Commit(put_records=(record("p1"),)), fence=fence)
    first = await b.load()
    assert first.epoch is not None and first.seq == 1 and not first.recovering
    async with aioredis.Redis.from_url(server.url) as r:
        await r.flushall()
    lost = await b.load()
    assert lost.epoch is None and lost.records == {}
    # The old leader's fence no longer writes; a restore starts a new epoch.
    with pytest.raises(FencedOutError):
        await a.commit(Commit(), fence=fence)
    await b.restore([record("p1")], [], seen=first.epoch, hold=5)
    back = await b.load()
    assert back.epoch not in (None, first.epoch)
    assert back.recovering and set(back.records) == {"p1"}
    # A replica that saw the same epoch but more commits (a rollback) rotates it too.
    await b.restore([], [], seen=back.epoch, hold=5)
    assert (await b.load()).epoch != back.epoch
    # A new lease's fence is larger than any before, whatever was lost.
    assert await b.acquire()
    assert b.fence is not None and b.fence > fence


# -- the pool's targets: global, in the store --------------------------------------

ATLANTIS = Region("Atlantis")  # an open-enum region this version does not know


async def test_the_first_targets_stored_win(store: PoolStore) -> None:
    first = Targets({TOKYO: 2, ATLANTIS: 1}, {TOKYO: 3, ATLANTIS: 1})
    assert (await store.load()).targets is None
    assert await store.claim_targets(first) == first
    # Another replica's differ: it is answered the stored ones, which stay.
    assert await store.claim_targets(Targets({LONDON: 5}, {LONDON: 5})) == first
    assert (await store.load()).targets == first
    assert isinstance(next(iter(first.targets)), Region)


async def test_set_targets_replaces_them(store: PoolStore) -> None:
    await store.claim_targets(Targets({TOKYO: 2}, {TOKYO: 2}))
    wanted = Targets({LONDON: 1, ATLANTIS: 0}, {LONDON: 4, ATLANTIS: 0})
    await store.set_targets(wanted)  # unfenced: no lease needed
    assert (await store.load()).targets == wanted
    assert await store.claim_targets(Targets({TOKYO: 9}, {TOKYO: 9})) == wanted
    # Kept through commits, which bring no targets.
    assert await store.acquire()
    fence = store.fence
    assert fence is not None
    await store.commit(Commit(put_records=(record("p1"),)), fence=fence)
    assert (await store.load()).targets == wanted


async def test_stored_targets_expire_and_each_commit_refreshes_them(
    server: RedisServer, make_store: MakeStore
) -> None:
    import redis.asyncio as aioredis

    a = make_store(state_ttl=100)
    await a.set_targets(Targets({TOKYO: 1}, {TOKYO: 1}))
    async with aioredis.Redis.from_url(server.url) as r:
        key = a.keys["targets"]
        assert 90_000 < await r.pttl(key) <= 100_000
        await r.pexpire(key, 5_000)
        assert await a.acquire()
        fence = a.fence
        assert fence is not None
        await a.commit(Commit(), fence=fence)  # a leader's commit, even an empty one
        assert 90_000 < await r.pttl(key) <= 100_000
        await r.pexpire(key, 5_000)
        await a.claim_targets(Targets({TOKYO: 1}, {TOKYO: 1}))  # NX: leaves them as they are
        assert await r.pttl(key) <= 5_000


@pytest.mark.parametrize(
    "value",
    ['{"t": {"Tokyo": 2}, "m": {"Tokyo": 1}}', '{"t": {"Tokyo": -1}, "m": {"Tokyo": 0}}', "[1"],
)
async def test_unreadable_targets_are_a_store_error(
    server: RedisServer, make_store: MakeStore, value: str
) -> None:
    import redis.asyncio as aioredis

    a = make_store()
    async with aioredis.Redis.from_url(server.url) as r:
        await r.set(a.keys["targets"], value)
    with pytest.raises(StoreError, match="unreadable targets"):
        await a.load()
