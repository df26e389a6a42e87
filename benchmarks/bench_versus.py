"""Client CPU per call of this tree against an earlier commit, in one process.

One command::

    python3 benchmarks/bench_versus.py                 # against 0a8da91 (issue 12's base)
    python3 benchmarks/bench_versus.py --base v0.1.0 --only info,create --rounds 16

``bench_calls.py`` compares each tree with raw aiohttp in a fresh process per
case; comparing two trees that way mixes in what differs between processes
(the raw baseline itself moved by 20 % between runs of the same day). Here one
process holds three clients on one canned server: raw aiohttp, the package as
it was at ``--base`` (exported with ``git archive`` and imported beside this
one as ``hathora_async_base``), and this tree's. They take turns in blocks of
calls, the order rotating from round to round, and the process reads its own
CPU time around each block. The median of the per-round quotients is what to
compare; "middle half" says how noisy the rounds were.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_calls  # noqa: E402
import canned_server as canned  # noqa: E402

BASE_NAME = "hathora_async_base"


def export_base(ref: str, into: Path) -> None:
    """The package as it was at ``ref``, importable as ``hathora_async_base``."""
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", "--format=tar", ref, "hathora_async"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "hathora_async").rename(into / BASE_NAME)
    sys.path.insert(0, str(into))


async def _client(stack: AsyncExitStack, package: str, url: str, **options: Any) -> Any:
    module = importlib.import_module(package)
    settings = bench_calls.session_settings()
    client = module.HathoraClient(
        canned.TOKEN,
        canned.APP_ID,
        base_url=url,
        max_connections=settings["max_connections"],
        **options,
    )
    return await stack.enter_async_context(client)


async def measure(args: argparse.Namespace, url: str, case: str) -> dict[str, list[float]]:
    """CPU µs per call of each client, one figure per round."""
    async with AsyncExitStack() as stack:
        settings = bench_calls.session_settings()
        raw = await stack.enter_async_context(
            bench_calls._raw_session(settings, settings["max_connections"])
        )
        ops = {
            "raw": bench_calls._raw_op(raw, url, case),
            "base": bench_calls._hathora_op(await _client(stack, BASE_NAME, url), case),
            "tree": bench_calls._hathora_op(
                await _client(stack, "hathora_async", url, **args.tree_options), case
            ),
        }
        for op in ops.values():
            bench_calls._check(case, await op())
            await bench_calls._drive(op, args.warmup, args.concurrency)
        names = list(ops)
        per_call: dict[str, list[float]] = {name: [] for name in names}
        with bench_calls._frozen_heap():
            for round_ in range(args.rounds):
                shift = round_ % len(names)  # who goes first rotates: drift hits all alike
                for name in names[shift:] + names[:shift]:
                    before = resource.getrusage(resource.RUSAGE_SELF)
                    await bench_calls._drive(ops[name], args.calls, args.concurrency)
                    after = resource.getrusage(resource.RUSAGE_SELF)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    per_call[name].append(cpu / args.calls * 1e6)
        return per_call


def _quotients(top: list[float], bottom: list[float]) -> tuple[float, float, float]:
    ratios = sorted(t / b for t, b in zip(top, bottom, strict=True))
    quarters = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), quarters[0], quarters[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="0a8da91", help="git ref to compare with")
    parser.add_argument("--only", default="info,latest,create,stop")
    parser.add_argument("--rounds", type=int, default=32)
    parser.add_argument("--calls", type=int, default=1000, help="calls per block")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--no-budget",
        action="store_true",
        help="this tree's client with rate_limit=None: the send budget's own share",
    )
    args = parser.parse_args()
    args.tree_options = {"rate_limit": None} if args.no_budget else {}
    cases = args.only.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_base(args.base, Path(tmp))
        with bench_calls.Server(latency=0.0, kind="protocol") as server:
            for case in cases:
                per_call = asyncio.run(measure(args, server.url, case))
                tree, low, high = _quotients(per_call["tree"], per_call["base"])
                base_raw = _quotients(per_call["base"], per_call["raw"])[0]
                tree_raw = _quotients(per_call["tree"], per_call["raw"])[0]
                rows.append(
                    f"| {bench_calls.CASES[case]} | {statistics.median(per_call['raw']):.1f} "
                    f"| {base_raw:.3f}x | {tree_raw:.3f}x | {tree:.3f} | {low:.3f}-{high:.3f} |"
                )
    print(
        f"Client CPU per call, {args.rounds} rounds of {args.calls} calls per client at "
        f"concurrency {args.concurrency}, one process; base = {args.base}"
        f"{'; this tree with rate_limit=None' if args.no_budget else ''}.\n"
    )
    print("| case | raw aiohttp µs | base / raw | tree / raw | tree / base | middle half |")
    print("|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
