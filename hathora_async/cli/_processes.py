"""``hathora-async processes ...``: the ProcessesV2 operations."""

from __future__ import annotations

import asyncio

from ..models import ProcessV2
from ._context import Context
from ._interrupt import PROG

__all__ = ["list_processes", "process_info", "create_process", "stop_process", "wait_process"]


async def list_processes(ctx: Context) -> int:
    args = ctx.args
    processes = await ctx.client.processes.get_latest_processes(
        status=args.status or None, region=args.region or None
    )
    ctx.show(processes, ProcessV2)
    return 0


async def process_info(ctx: Context) -> int:
    ctx.show(await ctx.client.processes.get_process_info(ctx.args.process_id), ProcessV2)
    return 0


async def _wait(ctx: Context, process_id: str) -> ProcessV2:
    return await ctx.client.processes.wait_for_process(
        process_id, timeout=ctx.args.timeout, poll_interval=ctx.args.poll_interval
    )


async def create_process(ctx: Context) -> int:
    # Interrupted or failed after the create, the process is left as it is: the
    # interrupt message (or the error) names it.
    try:
        process = await ctx.client.processes.create_process(ctx.args.region)
    except asyncio.CancelledError:
        # The request may have reached Hathora: say how to find what it made.
        region = ctx.args.region.value
        print(
            f"{PROG}: the create was in flight: a process may exist in {region} "
            f"(outcome unknown); look with: {PROG} processes list --region {region}",
            file=ctx.err,
        )
        raise
    ctx.ledger.add(process.process_id)
    if ctx.args.wait:
        process = await _wait(ctx, process.process_id)
    ctx.show(process, ProcessV2)
    return 0


async def wait_process(ctx: Context) -> int:
    ctx.show(await _wait(ctx, ctx.args.process_id), ProcessV2)
    return 0


async def stop_process(ctx: Context) -> int:
    await ctx.client.processes.stop_process(ctx.args.process_id)
    ctx.done(f"stopping process {ctx.args.process_id}")
    return 0
