"""The demo's ``--replicas N``: N warm pools sharing one Redis, and who leads.

Runs N ``WarmPool`` replicas in one process against an embedded fake Hathora
and one Redis (``--redis URL``, or a throwaway ``redis-server`` started from
PATH). It prints, every half second, which replica leads and the shared
counts; then the replicas leave one by one, the leader first (it hands over),
and the last one stops the pool's processes. Needs the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TextIO

from .client import HathoraClient
from .models import Region
from .pool import WarmPool
from .testing import FakeHathora

__all__ = ["run_replicas_demo"]

DEMO_TARGETS = {Region.FRANKFURT: 2, Region.LONDON: 1}
DEMO_LEASE_TTL = 1.0
DEMO_POLL_INTERVAL = 0.25


@contextlib.asynccontextmanager
async def _local_redis() -> AsyncIterator[str]:
    """A redis-server from PATH on a free loopback port, no persistence; its URL."""
    import redis.asyncio as aioredis

    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not on PATH: pass --redis URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="hathora-demo-redis-") as tmp:
        server = await asyncio.create_subprocess_exec(
            *(path, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            probe = aioredis.Redis.from_url(url)
            try:
                for _ in range(100):
                    with contextlib.suppress(OSError, aioredis.ConnectionError):
                        if await probe.ping():
                            break
                    await asyncio.sleep(0.05)
            finally:
                await probe.aclose()
            yield url
        finally:
            server.terminate()
            await server.wait()


def _line(t: float, pools: list[WarmPool | None], targets: Mapping[Region, int]) -> str:
    leaders = [f"replica-{n + 1}" for n, p in enumerate(pools) if p is not None and p.is_leader]
    live = next((p for p in pools if p is not None), None)
    counts = live.snapshot() if live is not None else {}
    shown = ", ".join(
        f"{r.value} {c.idle}/{targets[r]} idle, {c.starting} starting" for r, c in counts.items()
    )
    alive = sum(p is not None for p in pools)
    return f"{t:5.1f}s  {alive} replica(s)  leader: {', '.join(leaders) or '(none)'}  {shown}"


async def run_replicas_demo(
    replicas: int, redis_url: str | None = None, *, out: TextIO | None = None, hold: float = 3.0
) -> int:
    """Run the demo, printing to ``out`` (stdout); the exit status (1: no Redis or redis-py)."""
    out = sys.stdout if out is None else out
    try:
        import redis.asyncio as aioredis

        from .redis import RedisPoolStore
    except ImportError:
        print("--replicas needs redis-py: pip install 'hathora-async[redis]'", file=out)
        return 1
    async with contextlib.AsyncExitStack() as stack:
        if redis_url is None:
            try:
                redis_url = await stack.enter_async_context(_local_redis())
            except RuntimeError as exc:
                print(str(exc), file=out)
                return 1
            print(f"started redis-server at {redis_url}", file=out)
        fake = await stack.enter_async_context(FakeHathora(boot_delay=(0.3, 1.0), seed=7))
        name = f"demo-{uuid.uuid4().hex[:6]}"
        pools: list[WarmPool | None] = []
        for n in range(replicas):
            connection = aioredis.Redis.from_url(redis_url)
            stack.push_async_callback(connection.aclose)
            client = await stack.enter_async_context(
                HathoraClient(fake.token, fake.app_id, base_url=fake.url)
            )
            store = RedisPoolStore(
                connection, name=name, lease_ttl=DEMO_LEASE_TTL, replica_id=f"replica-{n + 1}"
            )
            pool = WarmPool(client, DEMO_TARGETS, store=store, poll_interval=DEMO_POLL_INTERVAL)
            await stack.enter_async_context(pool)
            pools.append(pool)
        targets = ", ".join(f"{r.value}: {n}" for r, n in DEMO_TARGETS.items())
        print(
            f"{replicas} replica(s) of pool {name!r} share one Redis; "
            f"lease {DEMO_LEASE_TTL:g} s; targets {targets}",
            file=out,
        )
        started = time.monotonic()

        async def watch(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                print(_line(time.monotonic() - started, pools, DEMO_TARGETS), file=out)
                await asyncio.sleep(0.5)

        await watch(hold)
        while any(p is not None for p in pools):
            live = [(n, p) for n, p in enumerate(pools) if p is not None]
            # The leader first: it hands over, and a follower takes the lease.
            leaving, pool = next(((n, p) for n, p in live if p.is_leader), live[0])
            last = len(live) == 1
            print(
                f"replica-{leaving + 1} leaves"
                + (" (the last: it stops the pool's processes)" if last else ""),
                file=out,
            )
            pools[leaving] = None
            await pool.aclose()
            if not last:
                await watch(2 * DEMO_LEASE_TTL)
        running = sum(p["status"] in ("starting", "running") for p in fake.processes())
        print(
            f"done: {fake.processes_created} process(es) created in all, {running} left running",
            file=out,
        )
    return 0
