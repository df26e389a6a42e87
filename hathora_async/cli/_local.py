"""``fake`` and ``demo``: the commands that need no settings (the demo reads them itself)."""

from __future__ import annotations

import argparse
import sys

from ._interrupt import PROG, Ledger

__all__ = ["run_demo_command", "run_fake_command"]


async def run_fake_command(args: argparse.Namespace, ledger: Ledger) -> int:
    from ..testing.__main__ import serve

    return await serve(args, prog=f"{PROG} fake")


async def run_demo_command(args: argparse.Namespace, ledger: Ledger) -> int:
    if args.replicas is not None:
        from .._replicas_demo import run_replicas_demo

        return await run_replicas_demo(args.replicas, args.redis)
    from ._demo import DemoSettings, run_demo

    settings = DemoSettings(
        per_region=args.per_region,
        regions=args.regions,
        concurrency=args.concurrency,
        timeout=args.timeout,
        seed=args.seed,
        live=False if args.plain else None,
        confirmed=args.yes,
    )
    return await run_demo(settings, sys.stdout, ledger)
