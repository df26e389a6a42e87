"""One matchmaker replica for the replica tests: a WarmPool on a RedisPoolStore.

Run as a separate process (``python tests/pool_replica.py --help``) so tests can
SIGKILL, SIGSTOP and SIGCONT it. It prints one JSON object per line:

- ``{"e": "up", "id": replica id}`` once the pool is entered;
- ``{"e": "s", "t": epoch s, "lead": bool, "ready": bool, "snap": {region: [starting,
  idle, busy, failed]}}`` every ``--sample`` s;
- ``{"e": "wr", "t": epoch s}`` when ``pool.wait_ready()`` returns;
- ``{"e": "retargeted", "t": epoch s}`` after ``pool.set_targets(--retarget ...)``, which
  SIGUSR1 starts;
- ``{"e": "req", "t": epoch s, "m": method, "p": path, "lead": bool}`` as each
  request to Hathora starts;
- ``{"e": "bye", "t": epoch s}`` after the pool's exit, on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import Any

import aiohttp
import attrs
import redis.asyncio as aioredis

from hathora_async import HathoraClient, Region, RetryPolicy, WarmPool
from hathora_async import _constants as C
from hathora_async.redis import RedisPoolStore

# Events carry the true time, whatever --skew does to time.time.
now = time.time


def say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    if args.grace is not None:  # as tests' short_grace fixture does in-process
        C.READ_AFTER_CREATE_GRACE = args.grace
    if args.skew:  # this replica's wall clock is off by that much (the pool reads time.time)
        real = time.time
        time.time = lambda: real() + args.skew
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool: WarmPool | None = None
    trace = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        lead = pool is not None and pool.is_leader
        say(e="req", t=now(), m=params.method, p=params.url.path, lead=lead)

    trace.on_request_start.append(on_start)
    redis = aioredis.Redis.from_url(args.redis)
    store = RedisPoolStore(redis, name=args.name, lease_ttl=args.lease_ttl)
    targets = plan(args.target)
    client = HathoraClient(
        args.token,
        args.app_id,
        base_url=args.url,
        trace_configs=[trace],
        retry=RetryPolicy.none(),
        timeout=5.0,
    )
    async with client:
        pool = WarmPool(
            client, targets, store=store, poll_interval=args.poll, concurrency=args.concurrency
        )
        async with pool:
            say(e="up", id=store.replica_id)
            tasks = {asyncio.create_task(announce_ready(pool))}

            async def retarget() -> None:
                assert pool is not None
                await pool.set_targets(plan(args.retarget))
                say(e="retargeted", t=now())

            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, lambda: tasks.add(loop.create_task(retarget())))
            while not stop.is_set():
                snap = {r.value: list(attrs.astuple(c)) for r, c in pool.snapshot().items()}
                say(e="s", t=now(), lead=pool.is_leader, ready=pool.ready, snap=snap)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.sample)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await redis.aclose()
    say(e="bye", t=now())


def plan(items: list[str]) -> dict[Region, int]:
    return {Region(region): int(n) for region, n in (t.split("=") for t in items)}


async def announce_ready(pool: WarmPool) -> None:
    await pool.wait_ready()
    say(e="wr", t=now())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--name", default="replicas")
    parser.add_argument("--target", action="append", default=[], help="REGION=N")
    parser.add_argument("--retarget", action="append", default=[], help="REGION=N, on SIGUSR1")
    parser.add_argument("--lease-ttl", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample", type=float, default=0.02)
    parser.add_argument("--grace", type=float, default=None, help="READ_AFTER_CREATE_GRACE")
    parser.add_argument("--skew", type=float, default=0.0, help="wall clock offset, seconds")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
