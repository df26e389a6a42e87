"""Client CPU per call: hathora_async against raw aiohttp + ``json.loads``.

One command::

    python3 benchmarks/bench_calls.py            # full run (a few minutes)
    python3 benchmarks/bench_calls.py --quick    # smoke run (seconds)

The canned server (``canned_server.py``) runs in its own process. Each case
runs in a fresh client process holding both clients: a raw aiohttp session and
a ``HathoraClient``, with the same connection limits, timeouts and headers. They
take turns in blocks of calls at a fixed concurrency, the first turn
alternating from pair to pair, and the process measures its own CPU time
(user + sys, ``getrusage``) around each block. Adjacent blocks see the same
machine, so the median of the per-pair ratios stays steady on a shared, noisy
machine where absolute figures do not. The output is a markdown section ready
to paste into ``BENCHMARKS.md``.

Decoding alone and the peak RSS with many calls in flight are measured in
fresh processes too. ``--profile CASE`` profiles one client on one case with
cProfile instead.
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
from contextlib import AsyncExitStack, contextmanager
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
    "latest": "get_latest_processes (10 processes)",
    "create": "create_process",
    "stop": "stop_process",
}
TARGETS = {"info": 1.10, "latest": 1.35, "create": 1.10, "stop": 1.10}
DECODE_TARGET_US = 5.0
IMPLS = ("raw", "hathora")
NAMES = {"raw": "raw aiohttp + json.loads", "hathora": "hathora_async"}

Op = Callable[[], Awaitable[Any]]


# -- the two clients -----------------------------------------------------------


def session_settings() -> dict[str, Any]:
    """The client's session defaults, handed to workers on their command line.

    A raw RSS worker must not import hathora_async itself: that would charge
    the library's imports to the baseline's memory.
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

    # The session hathora_async creates, with its headers as session defaults.
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


async def _open(stack: AsyncExitStack, impl: str, args: argparse.Namespace, case: str) -> Op:
    """Open client ``impl`` (closed with ``stack``) and return its ``case`` operation."""
    settings = json.loads(args.settings)
    connections = args.max_connections or settings["max_connections"]
    if impl == "raw":
        session = await stack.enter_async_context(_raw_session(settings, connections))
        return _raw_op(session, args.url, case)
    from hathora_async import HathoraClient

    # --no-budget: the send budget off, to measure its own share of the cost.
    budget = {"rate_limit": None} if settings.get("no_budget") else {}
    client = HathoraClient(
        canned.TOKEN, canned.APP_ID, base_url=args.url, max_connections=connections, **budget
    )
    await stack.enter_async_context(client)
    return _hathora_op(client, case)


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


# -- workers (each runs in a fresh process and prints one JSON line) ----------


async def _drive(op: Op, calls: int, concurrency: int) -> None:
    """``calls`` calls of ``op``, ``concurrency`` at a time."""
    share, extra = divmod(calls, concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            await op()

    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))


@contextmanager
def _frozen_heap() -> Iterator[None]:
    # Objects that exist before timing (modules, sessions) are not the calls' garbage.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _json_parsers() -> dict[str, Callable[[bytes], Any]]:
    """hathora_async's parser per variant: the standard library, and orjson if installed."""
    from hathora_async import _convert

    parsers: dict[str, Callable[[bytes], Any]] = {"hathora": _convert._loads_json}
    with_orjson = _convert._orjson_loads()
    if with_orjson is not None:
        parsers["orjson"] = with_orjson
    return parsers


async def worker_call(args: argparse.Namespace) -> dict[str, Any]:
    """The clients, taking turns in blocks of calls; CPU µs per call of each block.

    ``hathora`` is the default install (the standard library's json); ``orjson``
    is the same client with the optional extra, when it is installed.
    """
    from hathora_async import _convert

    async with AsyncExitStack() as stack:
        ops = {impl: await _open(stack, impl, args, args.case) for impl in IMPLS}
        parsers = _json_parsers()
        if "orjson" in parsers:
            ops["orjson"] = ops["hathora"]
        for op in ops.values():
            _check(args.case, await op())
            await _drive(op, args.warmup, args.concurrency)
        block = max(args.calls // args.pairs, 1)
        variants = list(ops)
        result: dict[str, list[float]] = {
            f"{name}_{kind}": [] for name in variants for kind in ("cpu", "user")
        }
        with _frozen_heap():
            for pair in range(args.pairs):
                # Alternate who goes first, so drift on the machine hits all alike.
                for name in variants if pair % 2 == 0 else variants[::-1]:
                    if name in parsers:
                        _convert.loads = parsers[name]
                    before = resource.getrusage(resource.RUSAGE_SELF)
                    await _drive(ops[name], block, args.concurrency)
                    after = resource.getrusage(resource.RUSAGE_SELF)
                    user = after.ru_utime - before.ru_utime
                    system = after.ru_stime - before.ru_stime
                    result[f"{name}_cpu"].append((user + system) / block * 1e6)
                    result[f"{name}_user"].append(user / block * 1e6)
    return result


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in KiB; 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def worker_rss(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of one client (``args.impl``) with ``args.inflight`` calls at once."""
    async with AsyncExitStack() as stack:
        op = await _open(stack, args.impl, args, "info")
        _check("info", await op())
        gc.collect()
        before = _status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        results = await asyncio.gather(*(op() for _ in range(args.inflight)))
        wall = time.perf_counter() - start
        # ru_maxrss (Linux: KiB); the kernel's counters may lag a few pages behind.
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _status_kib("VmHWM"))
        del results
    return {"before_kib": before, "peak_kib": peak, "wall_s": wall}


def worker_decode(args: argparse.Namespace) -> dict[str, Any]:
    """Decoding alone, CPU µs per body, against ``json.loads`` alone."""
    from hathora_async import _convert
    from hathora_async.models import ProcessV2
    from hathora_async.processes import GET_LATEST_PROCESSES, GET_PROCESS_INFO

    one, many = canned.PROCESS_BODY, canned.LATEST_BODY
    one_dict, many_dict = json.loads(one), json.loads(many)
    decode_one, decode_many = GET_PROCESS_INFO.decode, GET_LATEST_PROCESSES.decode
    assert decode_one is not None and decode_many is not None
    _check("info", decode_one(one))
    _check("latest", decode_many(many))
    # dict -> model: the structure hooks the endpoint decoders run after json.loads.
    many_type = list[ProcessV2]
    hook_one = _convert._fast.get_structure_hook(ProcessV2)
    hook_many = _convert._fast.get_structure_hook(many_type)
    subjects: dict[str, Callable[[], Any]] = {
        "loads_one": lambda: json.loads(one),
        "decode_one": lambda: decode_one(one),
        "structure_one": lambda: hook_one(one_dict, ProcessV2),
        "loads_many": lambda: json.loads(many),
        "decode_many": lambda: decode_many(many),
        "structure_many": lambda: hook_many(many_dict, many_type),
    }
    parsers = _json_parsers()
    if "orjson" in parsers:
        subjects["orjson_one"] = lambda: decode_one(one)
        subjects["orjson_many"] = lambda: decode_many(many)
    runs: dict[str, list[float]] = {name: [] for name in subjects}
    n = args.iterations
    with _frozen_heap():
        for _ in range(args.runs):
            for name, fn in subjects.items():
                _convert.loads = parsers["orjson" if name.startswith("orjson") else "hathora"]
                start = time.process_time()
                for _ in range(n):
                    fn()
                runs[name].append((time.process_time() - start) / n * 1e6)
    # The best run, as timeit reports: the cost of the code itself, the least
    # disturbed by whatever else the machine was doing.
    return {name: min(values) for name, values in runs.items()}


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

    def __init__(self, latency: float, kind: str) -> None:
        command = [sys.executable, str(HERE / "canned_server.py"), "--latency", str(latency)]
        self.proc = subprocess.Popen(
            [*command, "--kind", kind],
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
            self.proc.stdin.close()  # the server exits when its stdin closes
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


def spawn(args: argparse.Namespace, *argv: str) -> dict[str, Any]:
    """Run one worker in a fresh process and return what it measured."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv, "--settings", args.settings],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"worker {argv} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_calls(args: argparse.Namespace, cases: list[str]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    with Server(latency=0.0, kind=args.server) as server:
        for case in cases:
            runs = spawn(
                args, "--worker", "call", "--case", case, "--url", server.url,
                "--calls", str(args.calls), "--pairs", str(args.pairs),
                "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
            )  # fmt: skip
            row: dict[str, Any] = {"target": TARGETS[case]}
            for name in ("raw", "hathora", "orjson"):
                if f"{name}_cpu" not in runs:
                    continue
                row[f"{name}_us"] = statistics.median(runs[f"{name}_cpu"])
                row[f"{name}_user_us"] = statistics.median(runs[f"{name}_user"])
                ratios = [
                    mine / raw
                    for mine, raw in zip(runs[f"{name}_cpu"], runs["raw_cpu"], strict=True)
                ]
                row[f"{name}_ratios"] = ratios
                row[f"{name}_ratio"] = statistics.median(ratios)
            summary[case] = row
            print(
                f"  {case:<7} raw {row['raw_us']:6.1f} us  hathora {row['hathora_us']:6.1f} us  "
                f"ratio {row['hathora_ratio']:.3f} "
                f"(pairs: {' '.join(f'{r:.2f}' for r in row['hathora_ratios'])})",
                file=sys.stderr,
                flush=True,
            )
    return summary


def measure_rss(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    result = {}
    with Server(latency=args.rss_latency, kind=args.server) as server:
        for impl in IMPLS:
            result[impl] = spawn(
                args, "--worker", "rss", "--impl", impl, "--url", server.url,
                "--inflight", str(args.inflight), "--max-connections", str(args.inflight),
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
    packages = ("aiohttp", "yarl", "multidict", "attrs", "cattrs")
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        **{name: metadata.version(name) for name in packages},
    }


def render(
    args: argparse.Namespace,
    calls: dict[str, dict[str, Any]],
    decode: dict[str, float] | None,
    rss: dict[str, dict[str, Any]] | None,
) -> str:
    info = machine()
    lines = []
    if calls:
        block = max(args.calls // args.pairs, 1)
        orjson = all("orjson_us" in row for row in calls.values())
        lines += [
            f"Client CPU (user + sys) per call, µs, at concurrency {args.concurrency}: "
            f"{args.pairs} alternating rounds of {block}-call blocks per client; medians, "
            "and the median of the per-round ratios to raw aiohttp (with the middle half of "
            "those ratios, a measure of the noise).",
            "",
            f"| case | {NAMES['raw']} | {NAMES['hathora']} | ratio | middle half | target |"
            + (" with the orjson extra | ratio |" if orjson else ""),
            "|---|---:|---:|---:|---:|---|" + ("---:|---:|" if orjson else ""),
        ]
        for case, row in calls.items():
            verdict = "met" if row["hathora_ratio"] <= row["target"] else "MISSED"
            low, _, high = statistics.quantiles(row["hathora_ratios"], n=4, method="inclusive")
            line = (
                f"| {CASES[case]} | {row['raw_us']:.1f} | {row['hathora_us']:.1f} | "
                f"{row['hathora_ratio']:.3f}x | {low:.2f}-{high:.2f} | "
                f"≤ {row['target']:.2f}x {verdict} |"
            )
            if orjson:
                line += f" {row['orjson_us']:.1f} | {row['orjson_ratio']:.3f}x |"
            lines.append(line)
        lines.append("")
    if decode:
        verdict = "met" if decode["structure_one"] <= DECODE_TARGET_US else "MISSED"
        lines += [
            f"Decoding alone, CPU µs per body (best of {args.runs} interleaved runs of "
            f"{args.iterations}, as timeit reports):",
            "",
            "| body | json.loads | hathora_async, bytes -> model | of which dict -> model |"
            + (" bytes -> model with orjson |" if "orjson_one" in decode else ""),
            "|---|---:|---:|---:|" + ("---:|" if "orjson_one" in decode else ""),
        ]
        for label, key in (("one ProcessV2", "one"), ("list of 10 ProcessV2", "many")):
            target = f" (target ≤ {DECODE_TARGET_US:.0f}: {verdict})" if key == "one" else ""
            line = (
                f"| {label} | {decode[f'loads_{key}']:.2f} | {decode[f'decode_{key}']:.2f} | "
                f"{decode[f'structure_{key}']:.2f}{target} |"
            )
            if f"orjson_{key}" in decode:
                line += f" {decode[f'orjson_{key}']:.2f} |"
            lines.append(line)
        lines.append("")
    if rss:
        lines += [
            f"Peak RSS of a fresh client process with {args.inflight} get_process_info calls "
            f"in flight (one connection each; the server answers after {args.rss_latency:g} s):",
            "",
            "| client | RSS before the burst | peak RSS (ru_maxrss) | growth per call in flight |",
            "|---|---:|---:|---:|",
        ]
        for impl, row in rss.items():
            per_call = max(row["peak_kib"] - row["before_kib"], 0) / args.inflight
            lines.append(
                f"| {NAMES[impl]} | {row['before_kib'] / 1024:.1f} MiB | "
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

    async def run() -> None:
        if args.impl != "raw":
            from hathora_async import _convert

            _convert.loads = _json_parsers()["orjson" if args.impl == "orjson" else "hathora"]
        impl = "raw" if args.impl == "raw" else "hathora"
        async with AsyncExitStack() as stack:
            op = await _open(stack, impl, args, args.profile)
            await _drive(op, args.warmup, args.concurrency)
            profiler = cProfile.Profile()
            profiler.enable()
            await _drive(op, args.calls, args.concurrency)
            profiler.disable()
        stats = pstats.Stats(profiler).sort_stats(args.sort)
        stats.print_stats(*([args.match] if args.match else []), args.top)

    with Server(latency=0.0, kind=args.server) as server:
        args.url = server.url
        asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description="hathora_async's client CPU per call against raw aiohttp + json.loads"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--calls", type=int, help="calls per client per case (default 20000)")
    parser.add_argument("--pairs", type=int, help="alternating rounds per case (default 40)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls at once (32)")
    parser.add_argument("--warmup", type=int, help="untimed calls per client first")
    parser.add_argument("--iterations", type=int, help="decodes per decoding run (20000)")
    parser.add_argument("--runs", type=int, help="decoding runs (default 10)")
    parser.add_argument("--inflight", type=int, help="calls in flight for RSS (1000)")
    parser.add_argument("--rss-latency", type=float, help="server delay in the RSS run (1 s)")
    parser.add_argument(
        "--only",
        default="info,latest,create,stop,decode,rss",
        help="comma-separated subset of: info,latest,create,stop,decode,rss",
    )
    parser.add_argument(
        "--server",
        choices=["protocol", "aiohttp"],
        default="protocol",
        help="canned server: a minimal asyncio one that keeps up with any client "
        "(default), or aiohttp.web",
    )
    parser.add_argument("--cpus", help="pin server and clients to these CPUs, e.g. 1 or 0,1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", choices=list(CASES), help="cProfile one case instead")
    parser.add_argument(
        "--impl",
        choices=[*IMPLS, "orjson"],
        default="hathora",
        help="client to profile: raw, hathora (standard json) or orjson (with the extra)",
    )
    parser.add_argument("--sort", default="tottime", help="profile sort key")
    parser.add_argument("--top", type=int, default=30, help="profile rows")
    parser.add_argument("--match", help="profile: only functions matching this regex")
    # Internal: a worker doing one measurement in this fresh process.
    parser.add_argument("--worker", choices=["call", "decode", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-budget",
        action="store_true",
        help="the client without its send budget (rate_limit=None), to measure the budget's cost",
    )
    parser.add_argument("--max-connections", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    quick = args.quick
    args.calls = args.calls or (2000 if quick else 20000)
    args.pairs = args.pairs or (2 if quick else 40)
    args.runs = args.runs or (2 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else min(args.calls // 5, 2000)
    args.iterations = args.iterations or (2000 if quick else 20000)
    args.inflight = args.inflight or (200 if quick else 1000)
    args.rss_latency = args.rss_latency or (0.5 if quick else 1.0)

    if args.worker:
        run_worker(args)
        return
    if args.cpus:
        # Inherited by the server and every worker.
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    args.settings = json.dumps({**session_settings(), "no_budget": args.no_budget})
    if args.profile:
        profile(args)
        return
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(wanted) - {*CASES, "decode", "rss"}
    if unknown:
        parser.error(f"unknown --only entries: {sorted(unknown)}")
    call_cases = [case for case in CASES if case in wanted]
    calls = measure_calls(args, call_cases) if call_cases else {}
    decode = None
    if "decode" in wanted:
        decode = spawn(
            args, "--worker", "decode", "--runs", str(args.runs),
            "--iterations", str(args.iterations),
        )  # fmt: skip
    rss = measure_rss(args) if "rss" in wanted else None
    print(render(args, calls, decode, rss), end="")
    if args.json:
        settings = ("calls", "pairs", "concurrency", "warmup", "runs", "iterations", "inflight")
        results = {
            "calls": calls,
            "decode": decode,
            "rss": rss,
            "machine": machine(),
            "settings": {name: getattr(args, name) for name in (*settings, "rss_latency")},
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
