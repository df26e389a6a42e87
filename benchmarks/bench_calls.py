"""Client CPU per call: hathora_async against raw aiohttp + ``json.loads``.

One command::

    python3 benchmarks/bench_calls.py            # full run (a few minutes)
    python3 benchmarks/bench_calls.py --quick    # smoke run (seconds)

The canned server (``canned_server.py``) runs in its own process; every
measurement runs in a fresh client process, which reports its own CPU time
(user + sys) over the timed calls. The two clients alternate, pair after pair,
and the table gives medians and the median of the per-pair ratios. The output
is a markdown section ready to paste into ``BENCHMARKS.md``.

``--profile CASE`` instead profiles hathora_async on one case with cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # Run as a script from anywhere: the canned bodies live beside this file.
    sys.path.insert(0, str(HERE))

import canned_server as canned  # noqa: E402

CASES = {
    "info": "get_process_info",
    "latest": "get_latest_processes (10)",
    "create": "create_process",
    "stop": "stop_process",
}
TARGETS = {"info": 1.10, "latest": 1.35, "create": 1.10, "stop": 1.10}
DECODE_TARGET_US = 5.0

Op = Callable[[], Awaitable[Any]]
# The client's session settings as JSON, set by the orchestrator for its workers.
SETTINGS = "{}"


# -- client workers (each runs in a fresh process) ---------------------------


async def _drive(op: Op, calls: int, concurrency: int) -> None:
    """``calls`` calls of ``op``, at most ``concurrency`` at a time."""
    share, extra = divmod(calls, concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            await op()

    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))


async def _timed(op: Op, calls: int, concurrency: int, warmup: int) -> dict[str, float]:
    # Warm up first: connections open, caches filled, code paths specialised.
    await _drive(op, warmup, concurrency)
    gc.collect()
    before, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await _drive(op, calls, concurrency)
    after, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "cpu_s": user + system,
        "user_s": user,
        "sys_s": system,
        "wall_s": wall1 - wall0,
        "calls": calls,
    }


def _check(case: str, result: Any) -> None:
    # A benchmark of calls that fail would measure the wrong thing.
    if case == "latest":
        ok = isinstance(result, list) and len(result) == 10
    elif case == "stop":
        ok = result is None
    else:
        ok = result is not None and not isinstance(result, list)
    if not ok:
        raise SystemExit(f"unexpected result for {case}: {result!r}")


def session_settings() -> dict[str, Any]:
    """The client's session defaults, handed to raw workers on their command line.

    A raw worker must not import hathora_async itself: that would charge the
    library's imports to the baseline's memory.
    """
    from hathora_async import _constants as C

    return {
        "max_connections": C.DEFAULT_MAX_CONNECTIONS,
        "keepalive_timeout": C.DEFAULT_KEEPALIVE_TIMEOUT,
        "total": C.DEFAULT_TOTAL_TIMEOUT,
        "connect": C.DEFAULT_CONNECT_TIMEOUT,
        "sock_read": C.DEFAULT_READ_TIMEOUT,
        "user_agent": C.USER_AGENT,
    }


def _raw_session(settings: dict[str, Any], max_connections: int) -> Any:
    import aiohttp

    # The same session settings the client uses, with its headers as defaults.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections,
            limit_per_host=max_connections,
            keepalive_timeout=settings["keepalive_timeout"],
        ),
        timeout=aiohttp.ClientTimeout(
            total=settings["total"],
            connect=settings["connect"],
            sock_read=settings["sock_read"],
        ),
        headers={
            "Accept": "application/json",
            "User-Agent": settings["user_agent"],
            "Authorization": f"Bearer {canned.TOKEN}",
        },
    )


def _raw_op(session: Any, base: str, case: str) -> Op:
    """What a hand-written aiohttp caller does: build the URL, check, json.loads."""
    app, pid, region = canned.APP_ID, canned.PROCESS_ID, canned.REGION
    loads = json.loads

    async def info() -> Any:
        async with session.get(f"{base}/processes/v2/{app}/info/{pid}") as r:
            if r.status != 200:
                raise RuntimeError(r.status)
            return loads(await r.read())

    async def latest() -> Any:
        async with session.get(f"{base}/processes/v2/{app}/list/latest") as r:
            if r.status != 200:
                raise RuntimeError(r.status)
            return loads(await r.read())

    async def create() -> Any:
        async with session.post(f"{base}/processes/v2/{app}/create/{region}") as r:
            if r.status != 201:
                raise RuntimeError(r.status)
            return loads(await r.read())

    async def stop() -> None:
        async with session.post(f"{base}/processes/v2/{app}/stop/{pid}") as r:
            if r.status != 204:
                raise RuntimeError(r.status)

    ops: dict[str, Op] = {"info": info, "latest": latest, "create": create, "stop": stop}
    return ops[case]


def _hathora_op(client: Any, case: str) -> Op:
    api = client.processes
    pid, region = canned.PROCESS_ID, canned.REGION

    async def info() -> Any:
        return await api.get_process_info(pid)

    async def latest() -> Any:
        return await api.get_latest_processes()

    async def create() -> Any:
        return await api.create_process(region)

    async def stop() -> None:
        await api.stop_process(pid)

    ops: dict[str, Op] = {"info": info, "latest": latest, "create": create, "stop": stop}
    return ops[case]


@contextmanager
def _quiet_gc_freeze() -> Iterator[None]:
    # Objects that exist before timing (modules, sessions) are not the calls' garbage.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _with_op(
    args: argparse.Namespace,
    case: str,
    max_connections: int | None,
    body: Callable[[Op], Awaitable[Any]],
) -> Any:
    """Run ``body`` with the operation ``case`` of the client ``args.impl``."""
    settings = json.loads(args.settings)
    connections = max_connections or settings["max_connections"]
    url = args.url
    if args.impl == "raw":
        async with _raw_session(settings, connections) as session:
            return await body(_raw_op(session, url, case))
    from hathora_async import HathoraClient

    client = HathoraClient(canned.TOKEN, canned.APP_ID, base_url=url, max_connections=connections)
    async with client:
        return await body(_hathora_op(client, case))


async def worker_call(args: argparse.Namespace) -> dict[str, Any]:
    async def body(op: Op) -> dict[str, float]:
        _check(args.case, await op())
        with _quiet_gc_freeze():
            return await _timed(op, args.calls, args.concurrency, args.warmup)

    result: dict[str, Any] = await _with_op(args, args.case, None, body)
    return result


async def worker_rss(args: argparse.Namespace) -> dict[str, Any]:
    async def body(op: Op) -> dict[str, float]:
        _check("info", await op())
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        await asyncio.gather(*(op() for _ in range(args.inflight)))
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"before_kib": before, "peak_kib": peak, "wall_s": wall}

    # A connection per call, so that every call really is on the wire at once.
    result: dict[str, Any] = await _with_op(args, "info", args.inflight, body)
    return result


def worker_decode(args: argparse.Namespace) -> dict[str, Any]:
    from hathora_async import _convert
    from hathora_async.models import ProcessV2
    from hathora_async.processes import GET_LATEST_PROCESSES, GET_PROCESS_INFO

    one, many = canned.PROCESS_BODY, canned.LATEST_BODY
    one_dict, many_dict = json.loads(one), json.loads(many)
    decode_one, decode_many = GET_PROCESS_INFO.decode, GET_LATEST_PROCESSES.decode
    assert decode_one is not None and decode_many is not None
    _check("info", decode_one(one))
    _check("latest", decode_many(many))
    # dict -> model: the structure hooks the decoders run after json.loads.
    many_type = list[ProcessV2]
    hook_one = _convert._fast.get_structure_hook(ProcessV2)
    hook_many = _convert._fast.get_structure_hook(many_type)
    n = args.iterations
    subjects: dict[str, Callable[[], Any]] = {
        "loads_one": lambda: json.loads(one),
        "decode_one": lambda: decode_one(one),
        "structure_one": lambda: hook_one(one_dict, ProcessV2),
        "loads_many": lambda: json.loads(many),
        "decode_many": lambda: decode_many(many),
        "structure_many": lambda: hook_many(many_dict, many_type),
    }
    runs: dict[str, list[float]] = {name: [] for name in subjects}
    with _quiet_gc_freeze():
        for _ in range(args.pairs):
            for name, fn in subjects.items():
                start = time.process_time()
                for _ in range(n):
                    fn()
                runs[name].append((time.process_time() - start) / n * 1e6)
    return {name: statistics.median(values) for name, values in runs.items()}


def run_worker(args: argparse.Namespace) -> None:
    if args.worker == "decode":
        result = worker_decode(args)
    elif args.worker == "rss":
        result = asyncio.run(worker_rss(args))
    else:
        result = asyncio.run(worker_call(args))
    print(json.dumps(result), flush=True)


# -- the orchestrator ---------------------------------------------------------


class Server:
    """The canned server in its own process."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "canned_server.py"), "--latency", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            self.close()
            raise SystemExit(f"canned server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{line[1]}"

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn(*argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv, "--settings", SETTINGS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"worker {argv} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_calls(args: argparse.Namespace, cases: list[str]) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, list[float]]] = {c: {"raw": [], "hathora": []} for c in cases}
    user: dict[str, dict[str, list[float]]] = {c: {"raw": [], "hathora": []} for c in cases}
    with Server(latency=0.0) as server:
        for pair in range(args.pairs):
            # Alternate who goes first, so drift on the machine hits both alike.
            order = ("raw", "hathora") if pair % 2 == 0 else ("hathora", "raw")
            for case in cases:
                for impl in order:
                    result = spawn(
                        "--worker", "call", "--impl", impl, "--case", case,
                        "--url", server.url, "--calls", str(args.calls),
                        "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
                    )  # fmt: skip
                    runs[case][impl].append(result["cpu_s"] / result["calls"] * 1e6)
                    user[case][impl].append(result["user_s"] / result["calls"] * 1e6)
                print(
                    f"  pair {pair + 1}/{args.pairs} {case:<7} "
                    f"raw {runs[case]['raw'][-1]:6.1f} us (user {user[case]['raw'][-1]:6.1f})  "
                    f"hathora {runs[case]['hathora'][-1]:6.1f} us "
                    f"(user {user[case]['hathora'][-1]:6.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    summary: dict[str, dict[str, Any]] = {}
    for case, by_impl in runs.items():
        ratios = [h / r for h, r in zip(by_impl["hathora"], by_impl["raw"], strict=True)]
        summary[case] = {
            "raw_us": statistics.median(by_impl["raw"]),
            "hathora_us": statistics.median(by_impl["hathora"]),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
            "raw_user_us": statistics.median(user[case]["raw"]),
            "hathora_user_us": statistics.median(user[case]["hathora"]),
            "target": TARGETS[case],
        }
    return summary


def measure_rss(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    result = {}
    with Server(latency=args.rss_latency) as server:
        for impl in ("raw", "hathora"):
            result[impl] = spawn(
                "--worker", "rss", "--impl", impl, "--url", server.url,
                "--inflight", str(args.inflight),
            )  # fmt: skip
    return result


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {
        name: metadata.version(name) for name in ("aiohttp", "attrs", "cattrs", "yarl", "multidict")
    }
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        **versions,
    }


def render(
    args: argparse.Namespace,
    calls: dict[str, dict[str, Any]],
    decode: dict[str, float] | None,
    rss: dict[str, dict[str, Any]] | None,
) -> str:
    info = machine()
    lines = [
        "## Per-call cost",
        "",
        f"Client CPU (user + sys) per call, µs: {args.calls} calls at concurrency "
        f"{args.concurrency} per run, median of {args.pairs} alternating pairs; "
        "ratio = median of the per-pair ratios.",
        "",
    ]
    if calls:
        lines += [
            "| case | raw aiohttp + json.loads | hathora_async | ratio | target |",
            "|---|---:|---:|---:|---:|",
        ]
        for case, row in calls.items():
            verdict = "ok" if row["ratio"] <= row["target"] else "MISSED"
            lines.append(
                f"| {CASES[case]} | {row['raw_us']:.1f} | {row['hathora_us']:.1f} | "
                f"{row['ratio']:.3f}x | ≤ {row['target']:.2f}x {verdict} |"
            )
        lines.append("")
    if decode:
        ok = "ok" if decode["structure_one"] <= DECODE_TARGET_US else "MISSED"
        lines += [
            f"Decoding alone, µs per body (median of {args.pairs} runs of "
            f"{args.iterations}):",
            "",
            "| body | json.loads | hathora_async bytes -> model | of which dict -> model |",
            "|---|---:|---:|---:|",
            f"| one ProcessV2 | {decode['loads_one']:.2f} | {decode['decode_one']:.2f} | "
            f"{decode['structure_one']:.2f} (target ≤ {DECODE_TARGET_US:.0f} {ok}) |",
            f"| list of 10 ProcessV2 | {decode['loads_many']:.2f} | "
            f"{decode['decode_many']:.2f} | {decode['structure_many']:.2f} |",
            "",
        ]
    if rss:
        lines += [
            f"Peak RSS of a fresh client process with {args.inflight} get_process_info calls "
            f"in flight (server answers after {args.rss_latency:g} s; one connection each):",
            "",
            "| client | RSS before the burst | peak RSS | per call in flight |",
            "|---|---:|---:|---:|",
        ]
        for impl, row in rss.items():
            name = "raw aiohttp + json.loads" if impl == "raw" else "hathora_async"
            per_call = (row["peak_kib"] - row["before_kib"]) / args.inflight
            lines.append(
                f"| {name} | {row['before_kib'] / 1024:.1f} MiB | "
                f"{row['peak_kib'] / 1024:.1f} MiB | {per_call:.1f} KiB |"
            )
        lines.append("")
    lines.append(
        f"Machine: {info['cpus']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"aiohttp {info['aiohttp']}, yarl {info['yarl']}, multidict {info['multidict']}, "
        f"attrs {info['attrs']}, cattrs {info['cattrs']}."
    )
    return "\n".join(lines) + "\n"


def profile(args: argparse.Namespace) -> None:
    import cProfile
    import pstats

    with Server(latency=0.0) as server:
        args.url = server.url

        async def body(op: Op) -> None:
            await _drive(op, args.warmup, args.concurrency)
            profiler = cProfile.Profile()
            profiler.enable()
            await _drive(op, args.calls, args.concurrency)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats(args.sort).print_stats(args.top)

        asyncio.run(_with_op(args, args.profile, None, body))


def main() -> None:
    parser = argparse.ArgumentParser(description="hathora_async per-call cost vs raw aiohttp")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--calls", type=int, help="calls per run (default 20000; quick 2000)")
    parser.add_argument("--pairs", type=int, help="alternating pairs (default 5; quick 2)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, help="untimed calls first (default calls/10)")
    parser.add_argument("--iterations", type=int, help="decodes per decoding run")
    parser.add_argument("--inflight", type=int, help="calls in flight for RSS (default 1000)")
    parser.add_argument("--rss-latency", type=float, help="server delay in the RSS run")
    parser.add_argument(
        "--only",
        default="info,latest,create,stop,decode,rss",
        help="comma-separated subset of: info,latest,create,stop,decode,rss",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--profile", choices=list(CASES), help="cProfile one case instead")
    parser.add_argument("--sort", default="tottime", help="profile sort key")
    parser.add_argument("--top", type=int, default=30, help="profile rows")
    # Internal: one measurement in this (fresh) process.
    parser.add_argument("--worker", choices=["call", "decode", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=["raw", "hathora"], default="hathora")
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()

    quick = args.quick
    args.calls = args.calls or (2000 if quick else 20000)
    args.pairs = args.pairs or (2 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else max(args.calls // 10, 64)
    args.iterations = args.iterations or (2000 if quick else 50000)
    args.inflight = args.inflight or (200 if quick else 1000)
    args.rss_latency = args.rss_latency or (0.5 if quick else 1.0)

    if args.worker:
        run_worker(args)
        return
    global SETTINGS
    SETTINGS = args.settings = json.dumps(session_settings())
    if args.profile:
        profile(args)
        return
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(wanted) - {*CASES, "decode", "rss"}
    if unknown:
        parser.error(f"unknown --only entries: {sorted(unknown)}")
    call_cases = [c for c in CASES if c in wanted]
    calls = measure_calls(args, call_cases) if call_cases else {}
    decode = None
    if "decode" in wanted:
        decode = spawn(
            "--worker", "decode", "--pairs", str(args.pairs),
            "--iterations", str(args.iterations),
        )  # fmt: skip
    rss = measure_rss(args) if "rss" in wanted else None
    print(render(args, calls, decode, rss))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"calls": calls, "decode": decode, "rss": rss, "machine": machine(),
                 "settings": {k: getattr(args, k) for k in (
                     "calls", "pairs", "concurrency", "warmup", "iterations", "inflight",
                     "rss_latency")}},
                indent=2,
            )  # fmt: skip
        )


if __name__ == "__main__":
    main()
