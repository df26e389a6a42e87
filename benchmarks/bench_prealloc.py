"""Pre-allocation throughput against the plain-aiohttp floor.

    python benchmarks/bench_prealloc.py [--rounds 5] [--count 1000] [--concurrency 100]
    python benchmarks/bench_prealloc.py --no-budget   # HathoraClient(rate_limit=None)

Starts the fake Hathora in its own process with 50 ms latency on every request
and no boot delay, then, alternating, times:

- ``client.preallocate`` of ``count`` processes over the 14 regions at
  ``concurrency`` with ``wait=False``;
- the floor: a plain aiohttp loop sending the same create requests at the
  same concurrency, only reading the bodies;

and once, for scale, a plain sequential loop of ``client.processes.create_process``
(fewer requests, extrapolated). Prints medians as a markdown table. Each run
uses a fresh session, so connection set-up is in both figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from hathora_async import HathoraClient, RateLimit, Region

LATENCY = 0.05
# The client's send budget (issue 12): the default, or off with --no-budget.
BUDGET: list[RateLimit | None] = [RateLimit()]


@contextmanager
def standalone_fake(*flags: str) -> Iterator[tuple[str, str, str]]:
    """``python -m hathora_async.testing`` with ``flags`` in a child process: (url, token, app)."""
    command = [sys.executable, "-m", "hathora_async.testing", "--port", "0", *flags]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        values = {}
        for _ in range(3):
            key, _, value = child.stdout.readline().strip().partition("=")
            values[key] = value
        yield values["HATHORA_BASE_URL"], values["HATHORA_TOKEN"], values["HATHORA_APP_ID"]
    finally:
        child.terminate()
        child.wait(timeout=10)


def fake_server() -> contextlib.AbstractContextManager[tuple[str, str, str]]:
    """The fake with this benchmark's latency, booting at once."""
    return standalone_fake("--latency", str(LATENCY), "--boot-delay", "0", "--seed", "1")


def plan_for(count: int) -> dict[Region, int]:
    regions = list(Region)
    base, extra = divmod(count, len(regions))
    return {region: base + (i < extra) for i, region in enumerate(regions)}


def interleaved(plan: dict[Region, int]) -> list[str]:
    left = {r.value: n for r, n in plan.items()}
    order: list[str] = []
    while any(left.values()):
        for name in left:
            if left[name]:
                order.append(name)
                left[name] -= 1
    return order


async def run_preallocate(
    base: str, token: str, app: str, plan: dict[Region, int], concurrency: int
) -> float:
    async with HathoraClient(
        token, app, base_url=base, max_connections=concurrency, rate_limit=BUDGET[0]
    ) as client:
        started = time.perf_counter()
        result = await client.preallocate(plan, concurrency=concurrency, wait=False)
        took = time.perf_counter() - started
    assert len(result.created) == sum(plan.values()) and not result.failed, result.failed[:3]
    return took


async def run_plain(
    base: str, token: str, app: str, plan: dict[Region, int], concurrency: int
) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    urls = iter([f"{base}/processes/v2/{app}/create/{name}" for name in interleaved(plan)])

    async def worker(session: aiohttp.ClientSession) -> None:
        for url in urls:
            async with session.post(url) as response:
                await response.read()
                assert response.status == 201, response.status

    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started


async def run_sequential(base: str, token: str, app: str, count: int) -> float:
    regions = list(Region)
    async with HathoraClient(token, app, base_url=base) as client:
        started = time.perf_counter()
        for i in range(count):
            await client.processes.create_process(regions[i % len(regions)])
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--sequential", type=int, default=40, help="requests of the slow loop")
    parser.add_argument(
        "--no-budget", action="store_true", help="HathoraClient(rate_limit=None) for preallocate"
    )
    args = parser.parse_args()
    if args.no_budget:
        BUDGET[0] = None
    plan = plan_for(args.count)
    ideal = math.ceil(args.count / args.concurrency) * LATENCY
    with fake_server() as (base, token, app):
        # One untimed round each, so imports and the server's first requests are warm.
        asyncio.run(run_preallocate(base, token, app, plan, args.concurrency))
        asyncio.run(run_plain(base, token, app, plan, args.concurrency))
        ours: list[float] = []
        floor: list[float] = []
        for _ in range(args.rounds):
            ours.append(asyncio.run(run_preallocate(base, token, app, plan, args.concurrency)))
            floor.append(asyncio.run(run_plain(base, token, app, plan, args.concurrency)))
        sequential = asyncio.run(run_sequential(base, token, app, args.sequential))
    ours_median = statistics.median(ours)
    floor_median = statistics.median(floor)
    sequential_total = sequential / args.sequential * args.count
    print(
        f"{args.count} creates over {len(plan)} regions, concurrency {args.concurrency}, "
        f"{LATENCY * 1000:.0f} ms latency per request, fake in its own process; "
        f"median of {args.rounds} alternating rounds on {os.cpu_count()} CPUs; "
        f"ideal bound ceil({args.count}/{args.concurrency}) x {LATENCY * 1000:.0f} ms "
        f"= {ideal * 1000:.0f} ms\n"
    )
    print("| run | wall time | vs plain aiohttp | vs ideal bound |")
    print("|---|---|---|---|")
    print(
        f"| `client.preallocate(..., wait=False)` | {ours_median * 1000:.0f} ms "
        f"| {ours_median / floor_median:.3f}x | {ours_median / ideal:.2f}x |"
    )
    print(
        f"| plain aiohttp loop (floor) | {floor_median * 1000:.0f} ms | 1.000x "
        f"| {floor_median / ideal:.2f}x |"
    )
    print(
        f"| sequential `create_process` loop ({args.sequential} requests, "
        f"extrapolated to {args.count}) | {sequential_total:.1f} s "
        f"| {sequential_total / floor_median:.0f}x | {sequential_total / ideal:.0f}x |"
    )
    print(
        "\nsamples (ms): preallocate "
        + ", ".join(f"{t * 1000:.0f}" for t in ours)
        + "; plain "
        + ", ".join(f"{t * 1000:.0f}" for t in floor)
    )


if __name__ == "__main__":
    main()
