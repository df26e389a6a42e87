"""Pre-allocation behind a rate-limiting gateway: the send budget on against off.

    python3 benchmarks/bench_ratelimit.py            # every case, about 2 minutes
    python3 benchmarks/bench_ratelimit.py --only 300-ra,pool

Each run starts the fake Hathora in its own process as a gateway would limit
it (``python -m hathora_async.testing --rate-limit R --rate-burst 10
--retry-after 1|none``), so the client never knows the limit in advance, then
runs one job with a fresh ``HathoraClient``: the default send budget
(``RateLimit()``, "on") or none (``rate_limit=None``, "off": each call retries
on its own, 4 attempts). Both runs of a case happen back to back in the same
invocation. A trace config counts every request the client sends and every
429 it gets. The output is a markdown table ready for ``BENCHMARKS.md``, with
the issue's targets checked for the "on" runs:

- every process created (0 failed);
- at most 15 % of requests answered 429 (20 % with ``wait=True`` and the pool);
- wall time within 1.5x ``n / rate`` plus 1 s for creates, within
  2x ``(n / rate + boot)`` with ``wait=True``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import time
from typing import Any

import aiohttp
import attrs
from bench_prealloc import plan_for, standalone_fake

from hathora_async import HathoraClient, RateLimit, WarmPool

BURST = 10
CONCURRENCY = 100


@attrs.frozen
class Case:
    key: str
    title: str
    count: int
    rate: float
    retry_after: int | None = 1
    boot: float = 0.0
    wait: bool = False
    pool: bool = False

    @property
    def max_429(self) -> float:
        return 0.20 if self.wait or self.pool else 0.15

    @property
    def max_wall(self) -> float | None:
        if self.pool:
            return None
        if self.wait:
            return 2 * (self.count / self.rate + self.boot)
        return 1.5 * self.count / self.rate + 1.0


CASES = [
    Case("300-ra", "300 @ 50 req/s, `Retry-After: 1`", 300, 50.0),
    Case("300-none", "300 @ 50 req/s, no `Retry-After`", 300, 50.0, retry_after=None),
    Case("1000", "1,000 @ 200 req/s, `Retry-After: 1`", 1000, 200.0),
    Case("wait", "`wait=True`, 120 @ 40 req/s, 1 s boot", 120, 40.0, boot=1.0, wait=True),
    Case("pool", "`WarmPool` 14 regions x 6 @ 30 req/s, 1 s boot", 84, 30.0, boot=1.0, pool=True),
]


def fake_server(case: Case) -> contextlib.AbstractContextManager[tuple[str, str, str]]:
    """The fake, rate-limited, in a child process: (base_url, token, app_id)."""
    retry_after = "none" if case.retry_after is None else str(case.retry_after)
    return standalone_fake(
        "--boot-delay", str(case.boot), "--seed", "1", "--rate-limit", str(case.rate),
        "--rate-burst", str(BURST), "--retry-after", retry_after,
    )  # fmt: skip


@attrs.define
class Counts:
    sent: int = 0
    refused: int = 0
    by_name: dict[str, int] = attrs.Factory(dict)


def tracer(counts: Counts) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        counts.sent += 1
        parts = params.url.path.split("/")
        name = parts[4] if len(parts) > 4 else "?"
        counts.by_name[name] = counts.by_name.get(name, 0) + 1

    async def on_end(_: Any, __: Any, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status == 429:
            counts.refused += 1

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    return trace


@attrs.frozen
class Outcome:
    made: int
    failed: int
    counts: Counts
    wall: float
    rate: float | None


async def run(case: Case, budget: bool) -> Outcome:
    counts = Counts()
    with fake_server(case) as (url, token, app_id):
        async with HathoraClient(
            token,
            app_id,
            base_url=url,
            trace_configs=[tracer(counts)],
            rate_limit=RateLimit() if budget else None,
        ) as client:
            started = time.perf_counter()
            if case.pool:
                targets = plan_for(case.count)
                pool = WarmPool(client, targets, stop_on_exit=False)
                async with pool:
                    await pool.wait_ready(timeout=120)
                    wall = time.perf_counter() - started
                    made = len(pool.process_ids())
                    failed = pool.errors
                    snapshot = dict(counts.by_name)
                    totals = (counts.sent, counts.refused)
                counts = Counts(totals[0], totals[1], snapshot)
            else:
                result = await client.preallocate(
                    plan_for(case.count), concurrency=CONCURRENCY, wait=case.wait
                )
                wall = time.perf_counter() - started
                made = len(result.created)
                failed = len(result.failed)
            rate = client.rate_limit_state.rate
    return Outcome(made, failed, counts, wall, rate)


def row(case: Case, budget: bool, out: Outcome) -> str:
    share = out.counts.refused / max(1, out.counts.sent)
    ideal = case.count / case.rate
    per = out.counts.sent / max(1, out.made)
    targets = []
    if budget:
        ok = out.failed == 0 and share <= case.max_429
        limit = case.max_wall
        if limit is not None:
            ok = ok and out.wall <= limit
        targets.append("met" if ok else "**missed**")
    rate = f"{out.rate:.0f}/s" if out.rate is not None else "-"
    wall_target = f"≤ {case.max_wall:.1f} s" if case.max_wall is not None else "-"
    cells = [
        case.title,
        "on" if budget else "off",
        str(out.made),
        str(out.failed),
        f"{out.counts.sent}",
        f"{per:.2f}",
        f"{share:.1%}",
        f"≤ {case.max_429:.0%}",
        f"{out.wall:.1f} s",
        wall_target,
        f"{ideal:.1f} s",
        rate if budget else "-",
        targets[0] if targets else "-",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| case | budget | made | failed | requests | per process | answered 429 | 429 target "
    "| wall | wall target | n/rate | pace at end | targets |\n"
    "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---|"
)


async def main_async(args: argparse.Namespace) -> int:
    chosen = [c for c in CASES if not args.only or c.key in args.only.split(",")]
    if args.scale != 1.0:  # a smoke run: fewer processes, same rates
        chosen = [attrs.evolve(c, count=max(2, round(c.count * args.scale))) for c in chosen]
    lines = [HEADER]
    missed = 0
    for case in chosen:
        for budget in (True, False):
            out = await run(case, budget)
            line = row(case, budget, out)
            missed += "missed" in line
            lines.append(line)
            print(line, file=sys.stderr, flush=True)
            if args.verbose:
                print(f"   requests by kind: {out.counts.by_name}", file=sys.stderr)
    print(
        f"\nGateway: token bucket per token, burst {BURST}; `preallocate(..., "
        f"concurrency={CONCURRENCY})` over the 14 regions; the pool waits until ready.\n"
    )
    print("\n".join(lines))
    print(
        f"\nMachine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}."
    )
    return 1 if missed and args.strict else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="", help="comma-separated case keys: " + ", ".join(c.key for c in CASES)
    )
    parser.add_argument("--verbose", action="store_true", help="requests by endpoint too")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every case's count (smoke runs)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
