"""``python -m hathora_async``: the command line (``demo``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import _constants as C
from ._version import __version__
from .models import Region, coerce_region


def _regions(text: str) -> tuple[Region, ...]:
    try:
        regions = tuple(dict.fromkeys(coerce_region(name.strip()) for name in text.split(",")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    unknown = [r.value for r in regions if not r.is_known]
    if unknown:
        known = ", ".join(r.value for r in Region)
        raise argparse.ArgumentTypeError(f"unknown region(s) {', '.join(unknown)}; known: {known}")
    return regions


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: ``demo`` and its flags."""
    parser = argparse.ArgumentParser(
        prog="python -m hathora_async",
        description="hathora-async: an async client for Hathora Cloud.",
    )
    parser.add_argument("--version", action="version", version=f"hathora-async {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="pre-allocate processes across all regions, live, then stop them",
        description=(
            "Pre-allocate processes across regions with live progress, print a summary "
            "table, then stop every process created. Uses an embedded fake Hathora unless "
            f"{C.ENV_TOKEN} and {C.ENV_APP_ID} are set (then real, billed processes)."
        ),
    )
    demo.add_argument(
        "--per-region", type=_positive_int, default=3, help="processes per region (default 3)"
    )
    demo.add_argument(
        "--regions",
        type=_regions,
        default=tuple(Region),
        help="comma-separated regions (default: all 14)",
    )
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=C.DEFAULT_PREALLOC_CONCURRENCY,
        help=f"requests in flight (default {C.DEFAULT_PREALLOC_CONCURRENCY})",
    )
    demo.add_argument(
        "--timeout",
        type=_positive_float,
        default=C.DEFAULT_WAIT_TIMEOUT,
        help=f"seconds each process may take to run (default {C.DEFAULT_WAIT_TIMEOUT:g})",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the embedded fake")
    demo.add_argument("--plain", action="store_true", help="one line per event, even on a terminal")
    demo.add_argument(
        "--replicas",
        type=_positive_int,
        default=None,
        help="instead: run N warm-pool replicas sharing one Redis and show which one leads",
    )
    demo.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="Redis for --replicas (default: start redis-server from PATH)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 2
    if args.replicas is not None:
        from ._replicas_demo import run_replicas_demo

        return asyncio.run(run_replicas_demo(args.replicas, args.redis))
    from ._demo import DemoSettings, run_demo

    settings = DemoSettings(
        per_region=args.per_region,
        regions=args.regions,
        concurrency=args.concurrency,
        timeout=args.timeout,
        seed=args.seed,
        live=False if args.plain else None,
    )
    try:
        return asyncio.run(run_demo(settings))
    except KeyboardInterrupt:
        # preallocate() stops what it created when cancelled.
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
