"""``preallocate`` and ``pool``: many processes at once, with live progress on stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from .. import _constants as C
from .._convert import unstructure
from ..errors import ApiError, NotFoundError
from ..models import ProcessStatus, Region
from ..pool import RegionCounts, WarmPool
from ..prealloc import PreallocationFailure, PreallocationResult
from ._config import ConfigError, base_url, is_local
from ._context import Context, check_access
from ._exit import Exit, is_create
from ._live import Display, wants_live
from ._output import print_json, process_rows
from ._progress import PreallocProgress, summary_table

__all__ = ["preallocate", "pool", "plan_of", "confirm_billed"]


def plan_of(items: Iterable[tuple[Region, int]]) -> dict[Region, int]:
    """``REGION=N`` arguments as a plan; a region given twice is a usage error."""
    plan: dict[Region, int] = {}
    for region, count in items:
        if region in plan:
            raise ConfigError(f"region {region.value} given twice: give each region once")
        plan[region] = count
    return plan


def confirm_billed(args: argparse.Namespace) -> None:
    """Refuse, before any I/O, more than ``PREALLOCATE_REAL_API_MAX_TOTAL`` processes
    against a non-loopback (billed) API without ``--yes``; a loopback one is a fake."""
    total = sum(plan_of(args.plan).values())
    cap = C.PREALLOCATE_REAL_API_MAX_TOTAL
    if total <= cap or args.yes or is_local(base_url(args)):
        return
    raise ConfigError(
        f"refusing to create {total} processes, more than {cap}: these processes are "
        f"billed. Pass --yes to create {total}."
    )


def _failure_json(failure: PreallocationFailure) -> dict[str, Any]:
    """A failed slot: ``httpStatus`` when the API answered an error (else null: a boot
    failure, a timeout, a network error); ``processStatus`` the process's last known
    status (null when no process was made or it was never read)."""
    error, process = failure.error, failure.process
    return {
        "region": failure.region.value,
        "processId": failure.process_id,
        "outcomeUnknown": failure.outcome_unknown,
        "httpStatus": error.status if isinstance(error, ApiError) else None,
        "processStatus": process.status.value if process is not None else None,
        "error": str(error),
    }


def _result_json(result: PreallocationResult) -> dict[str, Any]:
    return {
        "created": list(result.created),
        "ready": unstructure([p for ps in result.ready.values() for p in ps]),
        "starting": unstructure([p for ps in result.starting.values() for p in ps]),
        "failed": [_failure_json(f) for f in result.failed],
        "strays": unstructure(result.strays),
        "ambiguous": unstructure(result.ambiguous),
    }


def _report_failures(result: PreallocationResult, err: TextIO) -> None:
    # Failures without a process are often one error many times (a wrong region): said once.
    said: dict[str, int] = {}
    for failure in result.failed:
        where = f" process {failure.process_id}" if failure.process_id else ""
        line = f"failed: {failure.region.value}{where}: {failure.error}"
        said[line] = said.get(line, 0) + 1
    for line, times in said.items():
        print(line if times == 1 else f"{line} (repeated {times} times)", file=err)
    live = (ProcessStatus.STARTING, ProcessStatus.RUNNING)
    # Created, not ready, perhaps still booting (a wait that timed out): billed all the same.
    booting = [
        f.process_id
        for f in result.failed
        if f.process_id and (f.process is None or f.process.status in live)
    ]
    if booting:
        print(f"not ready but may still run: {' '.join(booting)}", file=err)
    if result.strays:
        ids = " ".join(p.process_id for p in result.strays)
        print(f"probably made by creates whose answer was lost: {ids}", file=err)
    if result.ambiguous:
        ids = " ".join(p.process_id for p in result.ambiguous)
        print(f"made by creates whose answer was lost, or by another client: {ids}", file=err)


def _status(result: PreallocationResult) -> Exit:
    """0: all went well; 1: nothing was made and the API refused every create (a
    wrong region, say); 4: anything else that failed (some slots did, some did not)."""
    if not result.failed:
        return Exit.OK
    refused = all(isinstance(f.error, ApiError) and f.process_id is None for f in result.failed)
    if refused and not result.created and not result.strays and not result.ambiguous:
        return Exit.API_ERROR
    return Exit.PARTIAL


async def preallocate(ctx: Context) -> int:
    args = ctx.args
    plan = plan_of(args.plan)
    await check_access(ctx.client)
    ctx.ledger.cleans_up = True  # preallocate stops what it created when cancelled
    progress = PreallocProgress(
        plan, ctx.err, live=wants_live(ctx.err, args.plain), wait=args.wait, ledger=ctx.ledger
    )
    with progress:
        result = await ctx.client.preallocate(
            plan,
            concurrency=args.concurrency,
            wait=args.wait,
            timeout=args.timeout,
            poll_interval=args.poll_interval,
            on_event=progress.on_event,
        )
    if args.json:
        print_json(_result_json(result), ctx.out)
    else:
        print(summary_table(progress.rows, wait=args.wait), file=ctx.out)
        made = [p for ps in (*result.ready.values(), *result.starting.values()) for p in ps]
        if made:
            print("", file=ctx.out)
            print(process_rows(made), file=ctx.out)
    _report_failures(result, ctx.err)
    return _status(result)


class _PoolView(Display):
    """A pool's snapshot: live lines on a terminal, else a line per region that changed.

    With ``--json``, each new snapshot is also one JSON line on ``out``.
    """

    def __init__(self, targets: Mapping[Region, int], err: TextIO, *, live: bool) -> None:
        super().__init__(err, live)
        self.targets = targets
        self.width = max(len(r.value) for r in targets)
        self.started = time.monotonic()
        self.last: dict[Region, RegionCounts] = {}
        self.errors = 0

    def line(self, region: Region, counts: RegionCounts) -> str:
        return (
            f"{region.value.ljust(self.width)}  idle {counts.idle}/{self.targets[region]}"
            f"  starting {counts.starting}  busy {counts.busy}  failed {counts.failed}"
        )

    def refresh(self, pool: WarmPool, out: TextIO | None) -> None:
        snapshot = pool.snapshot()
        if snapshot == self.last and pool.errors == self.errors:
            return
        elapsed = time.monotonic() - self.started
        changed = [r for r, c in snapshot.items() if self.last.get(r) != c]
        self.last, self.errors = snapshot, pool.errors
        if out is not None:
            counts = {r.value: _counts(c, self.targets[r]) for r, c in snapshot.items()}
            data = {"elapsed": round(elapsed, 3), "regions": counts, "errors": pool.errors}
            print(json.dumps(data), file=out, flush=True)
        ready = "ready" if pool.ready else "filling"
        header = f"warm pool ({ready}), {pool.errors} API errors; Ctrl-C stops it"
        if self.live:
            self.update([header, *(self.line(r, c) for r, c in snapshot.items())])
        if not self.live:
            for region in changed:
                self.message(f"{elapsed:7.2f}s  {self.line(region, snapshot[region])}")


def _give_up_on_a_missing_region(warm: WarmPool) -> None:
    """Raise the pool's error when a create was answered 404.

    The app was found (``check_access`` read it), so a 404 to a create means
    the region does not exist for it: every later pass would fail the same way.
    """
    error = warm.last_error
    if isinstance(error, NotFoundError) and is_create(error):
        raise error


def _counts(counts: RegionCounts, target: int) -> dict[str, int]:
    return {
        "target": target,
        "idle": counts.idle,
        "starting": counts.starting,
        "busy": counts.busy,
        "failed": counts.failed,
    }


async def pool(ctx: Context) -> int:
    args = ctx.args
    targets = plan_of(args.plan)
    await check_access(ctx.client)
    ctx.ledger.cleans_up = not args.keep
    view = _PoolView(targets, ctx.err, live=wants_live(ctx.err, args.plain))
    warm = WarmPool(
        ctx.client,
        targets,
        poll_interval=args.poll_interval,
        concurrency=args.concurrency,
        stop_on_exit=not args.keep,
    )
    try:
        with view:
            async with warm:
                while True:  # until interrupted: the exit stops what the pool made
                    _give_up_on_a_missing_region(warm)
                    view.refresh(warm, ctx.out if args.json else None)
                    ctx.ledger.replace(warm.process_ids(), hosting=warm.busy_process_ids())
                    await asyncio.sleep(C.POOL_DISPLAY_INTERVAL)
    finally:
        # What the exit did not stop is what is left: busy processes (on purpose:
        # they host matches), and with --keep or after a failed stop, idle ones.
        ctx.ledger.replace(warm.process_ids(), hosting=warm.busy_process_ids())
