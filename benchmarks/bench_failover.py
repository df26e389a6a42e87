"""Replicated warm pool: failover time, and Redis round trips per reconcile pass.

    python benchmarks/bench_failover.py [--kills 10] [--replicas 3] [--lease-ttl 1.0]
        [--poll 0.25] [--passes 200] [--redis URL]

Needs redis-py and a Redis (``--redis URL``, else a ``redis-server`` from PATH is
started). The fake Hathora is embedded, with no latency.

Failover: ``replicas`` WarmPools share one Redis; the leader is "killed" (its
background tasks are cancelled: it neither renews nor releases its lease, as
after a SIGKILL) and the time until another replica holds the lease, and until
that replica has finished its first pass as leader (its snapshot is in Redis),
is measured. ``kills`` times, a fresh replica replacing each killed one.

Round trips: ``INFO commandstats`` before and after ``passes`` calls of
``refresh()`` on a steady leader (nothing to create or stop), on a follower, and
on a leader whose every pass replaces one process (a match lands each time).
The lease upkeep (renew and heartbeat, every third of the lease) is counted
apart. Every store call is one round trip (a Lua script).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import redis.asyncio as aioredis

from hathora_async import HathoraClient, Region, WarmPool
from hathora_async._replicas_demo import _local_redis
from hathora_async.redis import RedisPoolStore
from hathora_async.testing import FakeHathora

REGION = Region.FRANKFURT


async def commands(redis: aioredis.Redis) -> tuple[int, int]:
    """Round trips (script calls: every store call is one) and all commands Redis ran.

    ``commandstats`` also counts the commands scripts run, so round trips are
    the EVALSHA/EVAL/SCRIPT calls; INFO calls (the counting itself) are left out.
    """
    stats = await redis.info("commandstats")
    trips = sum(
        stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval", "script")
    )
    return trips, sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


class Replicas:
    def __init__(
        self, stack: AsyncExitStack, fake: FakeHathora, url: str, args: argparse.Namespace
    ):
        self.stack, self.fake, self.url, self.args = stack, fake, url, args
        self.name = f"bench-{uuid.uuid4().hex[:6]}"

    async def start(self, *, poll: float | None = None, lease_ttl: float | None = None) -> WarmPool:
        redis = aioredis.Redis.from_url(self.url)
        self.stack.push_async_callback(redis.aclose)
        client = await self.stack.enter_async_context(
            HathoraClient(self.fake.token, self.fake.app_id, base_url=self.fake.url)
        )
        store = RedisPoolStore(redis, name=self.name, lease_ttl=lease_ttl or self.args.lease_ttl)
        pool = WarmPool(client, {REGION: 2}, store=store, poll_interval=poll or self.args.poll)
        return await self.stack.enter_async_context(pool)


def crash(pool: WarmPool) -> None:
    """As after SIGKILL, for Redis: no renewal, no release, no exit."""
    for task in (pool._task, pool._lease):
        assert task is not None
        task.cancel()


async def until(predicate: object, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise TimeoutError("failover took over 30 s")
        await asyncio.sleep(0.002)
    return time.monotonic()


async def failover(
    stack: AsyncExitStack, fake: FakeHathora, url: str, args: argparse.Namespace
) -> None:
    replicas = Replicas(stack, fake, url, args)
    pools = [await replicas.start() for _ in range(args.replicas)]
    observer = aioredis.Redis.from_url(url)
    stack.push_async_callback(observer.aclose)
    watch = RedisPoolStore(observer, name=replicas.name)
    await until(lambda: any(p.is_leader for p in pools) and all(p.ready for p in pools))
    lease_times, pass_times = [], []
    for _ in range(args.kills):
        # At a random point of the renewal cycle: the lease has 2/3 to 1 of its time left.
        await asyncio.sleep(random.uniform(0, args.lease_ttl))
        (leader,) = [p for p in pools if p.is_leader]
        crash(leader)
        killed = time.monotonic()
        pools.remove(leader)
        taken = await until(lambda: any(p.is_leader for p in pools))
        (successor,) = [p for p in pools if p.is_leader]
        fence = successor.store.fence
        while True:
            snap = (await watch.load()).snapshot
            if snap is not None and snap.fence == fence:
                break
            await asyncio.sleep(0.002)
        lease_times.append(taken - killed)
        pass_times.append(time.monotonic() - killed)
        pools.append(await replicas.start())
        await asyncio.sleep(args.lease_ttl)  # the new replica settles in
    print(
        f"failover over {args.kills} leader kills, {args.replicas} replicas, "
        f"lease_ttl {args.lease_ttl:g} s, poll_interval {args.poll:g} s"
    )
    print()
    print("| | median | max |")
    print("|---|---:|---:|")
    for label, values in (
        ("lease taken by a follower", lease_times),
        ("first leader pass written", pass_times),
    ):
        print(f"| {label} | {statistics.median(values):.2f} s | {max(values):.2f} s |")


async def round_trips(
    stack: AsyncExitStack, fake: FakeHathora, url: str, args: argparse.Namespace
) -> None:
    replicas = Replicas(stack, fake, url, args)
    quiet = 3600.0  # only refresh() runs passes; the lease ticks every lease_ttl / 3
    leader = await replicas.start(poll=quiet, lease_ttl=30.0)
    follower = await replicas.start(poll=quiet, lease_ttl=30.0)
    await leader.refresh()
    await until(lambda: leader.ready)
    counter = aioredis.Redis.from_url(url)
    stack.push_async_callback(counter.aclose)

    async def per_pass(pool: WarmPool, churn: bool = False) -> str:
        trips, ran = await commands(counter)
        for _ in range(args.passes):
            if churn:  # a match lands on one idle process: one create this pass
                ids = set(pool.process_ids())
                idle = [
                    p["processId"]
                    for p in fake.processes()
                    if p["processId"] in ids
                    and p["status"] == "running"
                    and not p["roomsAllocated"]
                ]
                fake.set_rooms_allocated(idle[0], 1)
            await pool.refresh()
        trips_after, ran_after = await commands(counter)
        n = args.passes
        return f"{(trips_after - trips) / n:.2f} | {(ran_after - ran) / n:.1f}"

    steady = await per_pass(leader)
    follow = await per_pass(follower)
    churn = await per_pass(leader, churn=True)
    print()
    print(f"Redis round trips per pass ({args.passes} passes each, INFO commandstats deltas)")
    print()
    print("| pass | round trips | commands run in Redis |")
    print("|---|---:|---:|")
    print(f"| leader, steady | {steady} |")
    print(f"| leader, one create per pass | {churn} |")
    print(f"| follower | {follow} |")


@asynccontextmanager
async def redis_url(given: str | None) -> AsyncIterator[str]:
    if given is not None:
        yield given
    else:
        async with _local_redis() as url:
            yield url


async def main(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(redis_url(args.redis))
        fake = await stack.enter_async_context(FakeHathora(boot_delay=0.0, idle_timeout=None))
        await failover(stack, fake, url, args)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(redis_url(args.redis))
        fake = await stack.enter_async_context(FakeHathora(boot_delay=0.0, idle_timeout=None))
        await round_trips(stack, fake, url, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--lease-ttl", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.25)
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--redis", default=None, help="Redis URL (default: start redis-server)")
    asyncio.run(main(parser.parse_args()))
