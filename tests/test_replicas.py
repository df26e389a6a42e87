"""Many replicas of one WarmPool, coordinated through a real redis-server.

Each replica is a separate process (tests/pool_replica.py) so it can be
SIGKILLed, SIGSTOPped and SIGCONTed; all talk to one fake Hathora served by
this test process (so the fake's process list and request counts can be read
directly) and to one redis-server (tests/redis_server.py: skipped with the
reason when missing, failed when CI=true). Leases are 1 s to keep this short.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pooltools import statuses
from redis_server import RedisServer, redis_server

from hathora_async import Region
from hathora_async._store import PoolState
from hathora_async.testing import FakeHathora, Fault

ROOT = Path(__file__).resolve().parents[1]
LEASE = 1.0
NAME = "replicas"
FRANKFURT = Region.FRANKFURT


class Replica:
    """A replica process and the events it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self.id: str | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            if event["e"] == "up":
                self.id = event["id"]
            self.events.append(event)

    def samples(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["e"] == "s"]

    def last(self) -> dict[str, Any]:
        samples = self.samples()
        return samples[-1] if samples else {"lead": False, "ready": False, "t": 0.0}

    def acts(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Creates and stops (POSTs) it started after ``since`` (epoch seconds)."""
        return [e for e in self.events if e["e"] == "req" and e["m"] == "POST" and e["t"] > since]

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def leave(self) -> None:
        """SIGTERM: the pool exits as a replica would on shutdown."""
        self.signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), 30)
        await self._reader
        assert self.events[-1]["e"] == "bye"

    async def kill(self) -> None:
        if self.alive:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
        await self.process.wait()
        await self._reader


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "still not true"
        await asyncio.sleep(0.02)


def leader_runs(replicas: list[Replica]) -> list[tuple[float, float, int]]:
    """Each run of samples in which one replica said it leads: (first, last, which)."""
    runs = []
    for n, replica in enumerate(replicas):
        start = end = None
        for sample in replica.samples():
            if sample["lead"]:
                start = sample["t"] if start is None else start
                end = sample["t"]
            elif start is not None and end is not None:
                runs.append((start, end, n))
                start = end = None
        if start is not None and end is not None:
            runs.append((start, end, n))
    return sorted(runs)


def assert_one_leader_at_a_time(replicas: list[Replica]) -> None:
    runs = leader_runs(replicas)
    assert runs, "no replica ever led"
    for (_, end, a), (start, _, b) in itertools.pairwise(runs):
        assert a == b or start > end, f"replicas {a} and {b} both led at {start:.3f}"


class Cluster:
    def __init__(self, redis: RedisServer, fake: FakeHathora) -> None:
        self.redis = redis
        self.fake = fake
        self.replicas: list[Replica] = []

    async def start(self, n: int, target: int, *options: str) -> list[Replica]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = [
            *("--redis", self.redis.url, "--url", self.fake.url, "--token", self.fake.token),
            *("--app-id", self.fake.app_id, "--name", NAME, "--lease-ttl", str(LEASE)),
            *("--target", f"{FRANKFURT.value}={target}", *options),
        ]
        started = []
        for _ in range(n):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "tests" / "pool_replica.py"),
                *args,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
                env=env,
            )
            started.append(Replica(process))
        self.replicas += started
        await until(lambda: all(r.id is not None for r in started), timeout=30)
        return started

    def leader(self) -> Replica:
        leading = [r for r in self.replicas if r.alive and r.last()["lead"]]
        assert len(leading) == 1, leading
        return leading[0]

    def running(self) -> set[str]:
        return {pid for pid, s in statuses(self.fake).items() if s in ("starting", "running")}

    async def state(self) -> PoolState:
        import redis.asyncio as aioredis

        from hathora_async.redis import RedisPoolStore

        redis = aioredis.Redis.from_url(self.redis.url)
        try:
            return await RedisPoolStore(redis, name=NAME).load()
        finally:
            await redis.aclose()

    async def records(self) -> set[str]:
        return set((await self.state()).records)

    async def settled(self, timeout: float = 20.0) -> None:
        """Until every running process is one the pool records (none leaks)."""
        deadline = time.monotonic() + timeout
        while self.running() != await self.records():
            assert time.monotonic() < deadline, (self.running(), await self.records())
            await asyncio.sleep(0.05)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def lag() -> float:
    """The fake's read_after_create_lag (tests override it)."""
    return 0.0


@pytest.fixture
async def cluster(redis: RedisServer, lag: float) -> AsyncIterator[Cluster]:
    async with FakeHathora(boot_delay=0.05, idle_timeout=None, read_after_create_lag=lag) as fake:
        cluster = Cluster(redis, fake)
        try:
            yield cluster
        finally:
            await asyncio.gather(*(r.kill() for r in cluster.replicas))


def ready(replicas: list[Replica]) -> Callable[[], bool]:
    return lambda: all(r.last()["ready"] for r in replicas if r.alive)


async def test_three_replicas_keep_the_targets_once(cluster: Cluster) -> None:
    replicas = await cluster.start(3, 3)
    await until(ready(replicas))
    await asyncio.sleep(5 * 0.1)  # a few more passes of every replica
    assert cluster.fake.processes_created == 3
    assert len(cluster.running()) == 3
    assert await cluster.records() == cluster.running()
    cluster.leader()  # exactly one now
    assert sum(bool(r.acts()) for r in replicas) == 1  # only the leader ever acted
    # All leave at once: exactly one of them is the last, and it stops everything.
    await asyncio.gather(*(r.leave() for r in replicas))
    assert_one_leader_at_a_time(replicas)
    assert set(statuses(cluster.fake).values()) == {"stopped"}


async def test_sigkill_of_the_leader_mid_create_leaks_nothing(cluster: Cluster) -> None:
    fake = cluster.fake
    # The first create makes its process but its answer is lost; the second
    # hangs on the wire; the third is written down but not sent when the leader dies.
    fake.faults.add("create_process", Fault(drop="after"))
    fake.faults.add("create_process", Fault(latency=5.0))
    # A short read grace: the intents that made nothing are given up in 2 s, not 15.
    replicas = await cluster.start(3, 3, "--concurrency", "1", "--grace", "2")
    await until(lambda: len([e for r in replicas for e in r.acts()]) >= 2)
    assert fake.processes_created == 1
    (leader,) = [r for r in replicas if r.acts()]
    await leader.kill()
    killed = time.monotonic()
    survivors = [r for r in replicas if r is not leader]
    await until(ready(survivors))
    # The dead leader's process was adopted, not left running unknown; nothing extra made.
    await until(lambda: fake.processes_created == 3 and len(cluster.running()) == 3)
    await asyncio.sleep(0.5)
    assert fake.processes_created == 3
    assert cluster.running() <= await cluster.records()
    assert_one_leader_at_a_time(replicas)
    # Once the dead replica no longer counts, the last to leave stops everything.
    await asyncio.sleep(max(0.0, killed + 2 * LEASE + 0.3 - time.monotonic()))
    for replica in survivors:
        await replica.leave()
    assert set(statuses(fake).values()) == {"stopped"}


async def test_a_leader_paused_past_its_lease_does_not_act_after_resuming(
    cluster: Cluster,
) -> None:
    fake = cluster.fake
    # The leader's first create is on the wire when it is paused; three more wait behind it.
    fake.faults.add("create_process", Fault(latency=0.5))
    replicas = await cluster.start(3, 4, "--concurrency", "1")
    await until(lambda: any(r.acts() for r in replicas))
    (paused,) = [r for r in replicas if r.acts()]
    paused.signal(signal.SIGSTOP)
    stopped_at = time.time()
    others = [r for r in replicas if r is not paused]
    await until(ready(others))
    await asyncio.sleep(max(0.0, stopped_at + 2.5 * LEASE - time.time()))
    # Settled: the paused leader's first create adopted (or, if listings missed it at
    # first, adopted later and trimmed as surplus); nothing running outside the records.
    for _ in range(400):
        if cluster.running() == await cluster.records():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the pool never matched the fake's running processes")
    made = fake.processes_created
    paused.signal(signal.SIGCONT)
    resumed_at = time.time()
    await until(lambda: any(s["t"] > resumed_at for s in paused.samples()))
    await asyncio.sleep(1.0)
    # It resumed believing nothing: no create or stop left it, and no process was added.
    assert paused.acts(since=resumed_at) == []
    assert fake.processes_created == made
    assert made <= 5  # its three waiting creates were never sent (else 7 or more)
    assert cluster.running() == await cluster.records()
    assert_one_leader_at_a_time(replicas)
    assert not paused.last()["lead"]


async def test_redis_paused_for_twice_the_lease_one_leader_after(cluster: Cluster) -> None:
    replicas = await cluster.start(3, 2)
    await until(ready(replicas))
    made = cluster.fake.processes_created
    cluster.redis.pause()
    paused_at = time.time()
    try:
        await asyncio.sleep(2 * LEASE)
    finally:
        cluster.redis.resume()
    resumed_at = time.time()
    # Nobody leads once the lease could have lapsed, until Redis answers again.
    lapsed = paused_at + LEASE
    assert not any(s["lead"] for r in replicas for s in r.samples() if lapsed < s["t"] < resumed_at)
    await until(lambda: sum(r.last()["lead"] for r in replicas) == 1)
    await until(ready(replicas))
    await asyncio.sleep(0.5)
    assert cluster.fake.processes_created == made == 2
    assert not [a for r in replicas for a in r.acts(since=paused_at)]
    assert_one_leader_at_a_time(replicas)


async def test_replicas_leave_one_by_one_and_the_last_stops_all(cluster: Cluster) -> None:
    replicas = await cluster.start(3, 2)
    await until(ready(replicas))
    kept = cluster.running()
    assert len(kept) == 2
    for _ in range(2):
        leaving = cluster.leader()  # the leader first: it hands over
        await leaving.leave()
        remaining = [r for r in replicas if r.alive]
        await until(lambda: any(r.last()["lead"] for r in replicas if r.alive))
        await asyncio.sleep(0.3)
        assert cluster.running() == kept
        assert all(r.last()["ready"] for r in remaining)
    (last,) = [r for r in replicas if r.alive]
    await last.leave()
    assert set(statuses(cluster.fake).values()) == {"stopped"}
    assert cluster.fake.processes_created == 2
    assert_one_leader_at_a_time(replicas)


async def test_store_errors_back_off_no_longer_than_a_lease(redis: RedisServer) -> None:
    # A replica must not sleep through a lease it may take once Redis is back.
    import redis.asyncio as aioredis

    from hathora_async import HathoraClient, WarmPool
    from hathora_async.redis import RedisPoolStore

    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    lease = 0.5
    connection = aioredis.Redis.from_url(redis.url)
    store = RedisPoolStore(connection, name=NAME, lease_ttl=lease)
    async with (
        FakeHathora() as fake,
        HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client,
        WarmPool(client, {FRANKFURT: 1}, store=store, poll_interval=0.05, sleep=sleep) as pool,
    ):
        await pool.wait_ready(timeout=10)
        redis.pause()
        try:
            await until(lambda: pool.errors >= 5, timeout=10)
        finally:
            redis.resume()
        await pool.wait_ready(timeout=10)
    await connection.aclose()
    assert max(delays) <= lease
    assert any(d > 0.05 for d in delays)  # errors did stretch the wait


# -- what the attack on issue 10 found ------------------------------------------


@pytest.mark.parametrize("loss", ["flushall", "restart"])
async def test_redis_losing_its_data_leaks_nothing(cluster: Cluster, loss: str) -> None:
    # Every replica remembers the store's epoch: the one that leads next finds
    # the store empty, the replicas put back what they knew, and nobody creates
    # (or stops) on the empty store's say-so.
    replicas = await cluster.start(3, 3)
    await until(ready(replicas))
    kept = cluster.running()
    assert len(kept) == 3
    lost_at = time.time()
    if loss == "flushall":
        import redis.asyncio as aioredis

        async with aioredis.Redis.from_url(cluster.redis.url) as r:
            await r.flushall()
    else:
        cluster.redis.restart()
    await until(lambda: any(s["lead"] and s["t"] > lost_at for r in replicas for s in r.samples()))
    await until(lambda: asyncio.get_event_loop() is not None)  # a tick
    deadline = time.monotonic() + 20
    while await cluster.records() != kept:
        assert time.monotonic() < deadline, await cluster.records()
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5 * LEASE)  # past the recovery hold: the leader acts again
    assert cluster.fake.processes_created == 3
    assert not [a for r in replicas for a in r.acts(since=lost_at)]  # no create, no stop
    assert cluster.running() == kept == await cluster.records()
    await asyncio.gather(*(r.leave() for r in replicas))
    assert set(statuses(cluster.fake).values()) == {"stopped"}


@pytest.mark.parametrize("victim", ["leader", "follower"])
async def test_a_crash_then_the_last_clean_exit_stops_everything(
    cluster: Cluster, victim: str
) -> None:
    # The survivor leaves while the crashed replica's heartbeat is still fresh:
    # it asks again a lease later, finds it silent, and stops the pool as the last.
    replicas = await cluster.start(2, 2)
    await until(ready(replicas))
    leader = cluster.leader()
    (follower,) = [r for r in replicas if r is not leader]
    crashed, survivor = (leader, follower) if victim == "leader" else (follower, leader)
    await crashed.kill()
    await asyncio.sleep(0.2 * LEASE)
    await survivor.leave()
    assert set(statuses(cluster.fake).values()) == {"stopped"}


async def test_a_create_the_server_acts_on_late_is_adopted_after_the_leader_dies(
    cluster: Cluster,
) -> None:
    # The leader dies while its create is on the wire; the server makes the
    # process 3.5 s later (read grace 1 s). The successor keeps looking until
    # the create's deadline (the client's 5 s timeout) plus the grace.
    replicas = await cluster.start(2, 1, "--grace", "1")
    await until(ready(replicas))
    leader = cluster.leader()
    (survivor,) = [r for r in replicas if r is not leader]
    fake = cluster.fake
    fake.faults.add("create_process", Fault(latency=3.5))
    (first,) = cluster.running()
    failed_at = time.time()
    fake.fail_process(first)
    await until(lambda: bool(leader.acts(since=failed_at)))
    await leader.kill()
    await until(lambda: fake.processes_created == 2, timeout=10)  # the late one
    await cluster.settled()
    await until(lambda: survivor.last()["ready"])
    await survivor.leave()
    assert set(statuses(fake).values()) <= {"stopped", "failed"}


async def test_a_failure_is_counted_though_the_leader_dies_mid_pass(cluster: Cluster) -> None:
    # The dead process's record is dropped in the commit that writes the
    # replacement's intent: its failure is counted in that same commit.
    replicas = await cluster.start(2, 1)
    await until(ready(replicas))
    leader = cluster.leader()
    fake = cluster.fake
    fake.faults.add("create_process", Fault(latency=3.0))
    (first,) = cluster.running()
    failed_at = time.time()
    fake.fail_process(first)
    await until(lambda: bool(leader.acts(since=failed_at)))
    await leader.kill()
    (survivor,) = [r for r in replicas if r is not leader]
    await until(lambda: survivor.last()["lead"] and survivor.last()["ready"])
    snap = (await cluster.state()).snapshot
    assert snap is not None
    assert snap.counts[FRANKFURT].failed == 1


async def test_the_last_replicas_long_exit_keeps_its_lease(cluster: Cluster) -> None:
    # Stops take 0.6 s each, one at a time: the exit outlasts several leases.
    # Each stop is sent only under a lease the store confirms, so the exit
    # must keep renewing it to stop everything.
    (replica,) = await cluster.start(1, 4, "--concurrency", "1")
    await until(ready([replica]))
    cluster.fake.faults.add("stop_process", Fault(latency=0.6), times=4)
    started = time.monotonic()
    await replica.leave()
    assert time.monotonic() - started > 2 * LEASE
    assert set(statuses(cluster.fake).values()) == {"stopped"}


@pytest.mark.parametrize("lag", [3.0])
@pytest.mark.parametrize("skew", [60.0, -60.0])
async def test_a_successor_with_a_skewed_clock_still_adopts(cluster: Cluster, skew: float) -> None:
    # The leader's create made a process but its answer was lost; listings show
    # the process 3 s late (read grace 4 s). The successor's wall clock is a minute off: it
    # counts the intent's age from when it first saw it, on its own clock.
    (leader,) = await cluster.start(1, 1, "--grace", "4")
    await until(ready([leader]))
    (survivor,) = await cluster.start(1, 1, "--grace", "4", "--skew", str(skew))
    await until(lambda: bool(survivor.samples()))
    fake = cluster.fake
    fake.faults.add("create_process", Fault(drop="after"))
    (first,) = cluster.running()
    failed_at = time.time()
    fake.fail_process(first)
    await until(lambda: bool(leader.acts(since=failed_at)))
    await leader.kill()
    await until(lambda: fake.processes_created >= 2, timeout=10)
    await cluster.settled()
    await until(lambda: survivor.last()["ready"])
    await survivor.leave()
    assert set(statuses(fake).values()) <= {"stopped", "failed"}


# -- targets are global: stored once, followed by every replica --------------------

LONDON = Region.LONDON


def regions(fake: FakeHathora) -> list[str]:
    """The regions of the fake's starting and running processes, sorted."""
    live = ("starting", "running")
    return sorted(p["region"] for p in fake.processes() if p["status"] in live)


async def test_replicas_given_other_targets_follow_the_stored_ones(cluster: Cluster) -> None:
    # The first replica stores its targets; the second, given others, follows
    # them: the same snapshot on both, both ready, and a failover keeps them.
    (first,) = await cluster.start(1, 3)
    await until(lambda: bool(first.samples()))
    await until(lambda: first.last()["lead"])
    stored = (await cluster.state()).targets
    assert stored is not None
    assert stored.targets == {FRANKFURT: 3}
    (second,) = await cluster.start(1, 1, "--target", f"{LONDON.value}=2")
    both = [first, second]
    want = {FRANKFURT.value: [0, 3, 0, 0]}
    await until(lambda: all(r.last().get("snap") == want for r in both))
    await until(lambda: all(any(e["e"] == "wr" for e in r.events) for r in both))
    assert all(r.last()["ready"] for r in both)
    assert regions(cluster.fake) == [FRANKFURT.value] * 3
    # Failover: the follower leads with the stored targets, not the ones it was given.
    killed_at = time.time()
    await first.kill()
    await until(lambda: second.last()["lead"])
    await asyncio.sleep(1.0)  # several passes of the new leader
    assert not second.acts(since=killed_at)  # nothing trimmed, nothing made
    assert regions(cluster.fake) == [FRANKFURT.value] * 3
    assert cluster.fake.processes_created == 3
    assert second.last()["snap"] == want and second.last()["ready"]
    assert (await cluster.state()).targets == stored


async def test_set_targets_resizes_the_pool_for_every_replica(cluster: Cluster) -> None:
    # A follower grows the pool; every replica follows, the leader makes them.
    grow = f"{FRANKFURT.value}=3"
    (a,) = await cluster.start(1, 1, "--retarget", grow)
    await until(lambda: a.last()["lead"])
    (b,) = await cluster.start(1, 1, "--retarget", grow)
    both = [a, b]
    await until(ready(both))
    b.signal(signal.SIGUSR1)  # the follower: every replica must follow its change
    await until(lambda: any(e["e"] == "retargeted" for e in b.events))
    grown = {FRANKFURT.value: [0, 3, 0, 0]}
    await until(lambda: all(r.last()["snap"] == grown and r.last()["ready"] for r in both))
    assert regions(cluster.fake) == [FRANKFURT.value] * 3
    assert not b.acts()  # the leader made them
    # Now the leader changes them again, from a replica started with a third set.
    (c,) = await cluster.start(
        1, 1, "--retarget", f"{FRANKFURT.value}=1", "--retarget", f"{LONDON.value}=1"
    )
    await until(lambda: c.last().get("snap") == grown)  # it follows the stored ones first
    c.signal(signal.SIGUSR1)
    moved = {FRANKFURT.value: [0, 1, 0, 0], LONDON.value: [0, 1, 0, 0]}
    everyone = [a, b, c]
    await until(lambda: all(r.last()["snap"] == moved and r.last()["ready"] for r in everyone))
    await until(lambda: regions(cluster.fake) == [FRANKFURT.value, LONDON.value])
    assert cluster.fake.processes_created == 4
    await cluster.settled()


async def test_a_mismatch_is_logged_once_and_set_targets_checks_before_any_io(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    from hathora_async import HathoraClient, WarmPool
    from hathora_async.redis import RedisPoolStore

    connection = aioredis.Redis.from_url(redis.url)
    stores = [
        RedisPoolStore(connection, name=NAME, replica_id=n, lease_ttl=0.5) for n in ("a", "b")
    ]
    async with (
        FakeHathora(boot_delay=0.0) as fake,
        HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client,
        WarmPool(client, {FRANKFURT: 2}, store=stores[0], poll_interval=0.02) as a,
    ):
        await a.wait_ready(timeout=10)
        given = {FRANKFURT: 1, LONDON: 2}
        async with WarmPool(client, given, store=stores[1], poll_interval=0.02) as b:
            await b.wait_ready(timeout=10)
            await asyncio.sleep(0.2)  # more passes: still said once
            assert b.targets == a.targets == {FRANKFURT: 2}
            assert b.snapshot() == a.snapshot()
            said = [r.getMessage() for r in caplog.records if "stored targets" in r.message]
            assert len(said) == 1, said
            assert "{Frankfurt: 2}" in said[0] and "{Frankfurt: 1, London: 2}" in said[0]
            # Bad targets are refused before anything is written.
            for bad, kw in [
                ({FRANKFURT: -1}, {}),
                ({FRANKFURT: 2}, {"max_per_region": 1}),
                ({FRANKFURT: 2}, {"max_per_region": {LONDON: 3}}),
                ([FRANKFURT], {}),
            ]:
                with pytest.raises((ValueError, TypeError)):
                    await b.set_targets(bad, **kw)  # type: ignore[arg-type]
            assert (await stores[0].load()).targets.targets == {FRANKFURT: 2}  # type: ignore[union-attr]
            await b.set_targets({"London": 1}, max_per_region=2)
            assert b.targets == {LONDON: 1}
            await until(lambda: a.targets == {LONDON: 1} and a.ready, timeout=10)
            await b.wait_ready(timeout=10)
    await connection.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await a.set_targets({LONDON: 1})


async def test_a_single_pools_set_targets_resizes_it() -> None:
    from hathora_async import HathoraClient, WarmPool

    async with (
        FakeHathora(boot_delay=0.0) as fake,
        HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client,
        WarmPool(client, {FRANKFURT: 1}, poll_interval=0.02) as pool,
    ):
        await pool.wait_ready(timeout=10)
        await pool.set_targets({FRANKFURT: 3})
        assert not pool.ready  # in force at once: the snapshot now falls short
        await pool.wait_ready(timeout=10)
        await pool.set_targets({FRANKFURT: 0, LONDON: 1})
        await pool.wait_ready(timeout=10)
        await until(lambda: regions(fake) == [LONDON.value], timeout=10)
        assert pool.snapshot()[FRANKFURT].idle == 0
