"""The demo behind ``python -m hathora_async demo``: pre-allocate across regions, live.

Runs against an embedded ``FakeHathora`` unless ``HATHORA_TOKEN`` is set, in
which case it uses the real API (``HATHORA_APP_ID`` is then required) and
real, billed processes, all stopped before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

import attrs

from . import _constants as C
from .client import HathoraClient
from .errors import HathoraError
from .models import Region, RoomConnectionData
from .prealloc import PreallocationEvent, PreallocationResult
from .testing import FakeHathora

__all__ = ["DemoSettings", "run_demo"]

# The embedded fake: a spread of boot times, a little latency, some boot failures.
FAKE_BOOT_DELAY = (0.5, 3.0)
FAKE_LATENCY = (0.005, 0.02)
FAKE_BOOT_FAILURE_RATE = 0.05


@attrs.frozen
class DemoSettings:
    """What the demo does; the CLI fills this from its flags."""

    per_region: int = 3
    regions: tuple[Region, ...] = tuple(Region)
    concurrency: int = C.DEFAULT_PREALLOC_CONCURRENCY
    timeout: float = C.DEFAULT_WAIT_TIMEOUT
    seed: int = 7
    live: bool | None = None  # None: redraw in place only when the output is a terminal
    fake_boot_delay: tuple[float, float] = FAKE_BOOT_DELAY
    room_regions: int = 3  # regions where a room is timed, warm and cold


@attrs.define
class _Row:
    requested: int
    created: int = 0
    running: int = 0
    failed: int = 0
    times: list[float] = attrs.Factory(list)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class _Progress:
    """Per-region progress, redrawn in place on a terminal, one line per event otherwise."""

    def __init__(self, rows: dict[Region, _Row], out: TextIO, live: bool) -> None:
        self.rows = rows
        self.out = out
        self.live = live
        self.started = time.monotonic()
        self.drawn = False
        self.last_draw = 0.0
        self.width = max(len(r.value) for r in rows)
        self.total = sum(r.requested for r in rows.values())
        self.answered = 0
        self.stopped = 0

    def on_event(self, event: PreallocationEvent) -> None:
        row = self.rows[event.region]
        if event.kind == "created":
            row.created += 1
            self.answered += 1
        elif event.kind == "running":
            row.running += 1
            if event.elapsed is not None:
                row.times.append(event.elapsed)
        elif event.kind == "failed":
            row.failed += 1
            if event.process_id is None:
                self.answered += 1
        elif event.kind == "stopped":
            self.stopped += 1
        if self.live:
            self.draw()
            return
        elapsed = time.monotonic() - self.started
        if event.kind in ("running", "failed"):
            name = event.region.value.ljust(self.width)
            detail = f" ({event.error})" if event.kind == "failed" else ""
            print(
                f"{elapsed:7.2f}s  {name}  {event.kind:<8} "
                f"running {row.running}/{row.requested}{detail}",
                file=self.out,
            )
        if event.kind in ("created", "failed") and self.answered == self.total:
            created = sum(r.created for r in self.rows.values())
            print(f"{elapsed:7.2f}s  all creates answered: {created} processes", file=self.out)
            self.answered += 1  # say it once

    def line(self, region: Region, row: _Row) -> str:
        cells = "".join(
            "#" if i < row.running else "x" if i < row.running + row.failed else "."
            for i in range(row.requested)
        )
        return (
            f"{region.value.ljust(self.width)}  [{cells}]  running {row.running}/{row.requested}"
            f"  starting {row.created - row.running - row.failed}  failed {row.failed}"
        )

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < 0.05:
            return
        self.last_draw = now
        if self.drawn:
            self.out.write(f"\x1b[{len(self.rows)}F")
        for region, row in self.rows.items():
            self.out.write(self.line(region, row) + "\x1b[K\n")
        self.out.flush()
        self.drawn = True


def summary_table(rows: dict[Region, _Row]) -> str:
    """The summary: requested, running, failed, median and p95 time to running."""
    header = ("region", "requested", "running", "failed", "median", "p95")
    body: list[tuple[str, ...]] = []
    everything: list[float] = []
    for region, row in rows.items():
        everything.extend(row.times)
        body.append((region.value, *_figures(row.requested, row.running, row.failed, row.times)))
    total = _figures(
        sum(r.requested for r in rows.values()),
        sum(r.running for r in rows.values()),
        sum(r.failed for r in rows.values()),
        everything,
    )
    body.append(("total", *total))
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "| " + " | ".join([first, *rest]) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    lines = [fmt(header), rule, *(fmt(b) for b in body[:-1]), rule, fmt(body[-1])]
    return "\n".join(lines)


def _figures(requested: int, running: int, failed: int, times: list[float]) -> tuple[str, ...]:
    median = f"{statistics.median(times):.2f}s" if times else "-"
    p95 = f"{percentile(times, 0.95):.2f}s" if times else "-"
    return (str(requested), str(running), str(failed), median, p95)


@contextlib.asynccontextmanager
async def _connect(
    out: TextIO, settings: DemoSettings
) -> AsyncIterator[tuple[HathoraClient, FakeHathora | None]]:
    if os.environ.get(C.ENV_TOKEN):
        print("Using the real Hathora API: these processes are billed.", file=out)
        async with HathoraClient.from_env() as client:
            yield client, None
        return
    low, high = settings.fake_boot_delay
    fake = FakeHathora(
        boot_delay=(low, high),
        latency=FAKE_LATENCY,
        boot_failure_rate=FAKE_BOOT_FAILURE_RATE,
        seed=settings.seed,
    )
    async with fake:
        print(
            f"Using an embedded fake Hathora at {fake.url} (boot {low:g}-{high:g}s, "
            f"{FAKE_BOOT_FAILURE_RATE:.0%} boot failures; "
            f"set {C.ENV_TOKEN} and {C.ENV_APP_ID} for the real API).",
            file=out,
        )
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
            yield client, fake


async def _stop_all(client: HathoraClient, ids: Sequence[str], concurrency: int) -> int:
    limit = asyncio.Semaphore(concurrency)

    async def stop(process_id: str) -> bool:
        try:
            async with limit:
                await client.processes.stop_process(process_id)
        except HathoraError as exc:
            print(f"could not stop {process_id}: {exc}", file=sys.stderr)
            return False
        return True

    return sum(await asyncio.gather(*(stop(pid) for pid in ids)))


async def _time_room(
    client: HathoraClient, region: Region, poll_interval: float
) -> tuple[float, RoomConnectionData]:
    started = time.monotonic()
    room = await client.rooms.create_room(region)
    try:
        await client.rooms.wait_for_room(room.room_id, poll_interval=poll_interval)
        return time.monotonic() - started, room
    except BaseException:
        await _discard_room(client, room, stop_process=True)
        raise


async def _discard_room(
    client: HathoraClient, room: RoomConnectionData, stop_process: bool
) -> None:
    with contextlib.suppress(HathoraError):
        await client.rooms.destroy_room(room.room_id)
    if stop_process:
        # A cold start made this process for the room; it is billed, so stop it.
        with contextlib.suppress(HathoraError):
            await client.processes.stop_process(room.process_id)


async def _time_rooms(
    client: HathoraClient,
    regions: Sequence[Region],
    preallocated: set[str],
    poll_interval: float,
    out: TextIO,
) -> dict[Region, str]:
    """Create a room in each region, time it to active, then destroy it.

    Returns a cell per region: the time, and whether the room landed on one of
    ``preallocated`` (a warm start) or on a process started for it (cold).
    """
    outcomes = await asyncio.gather(
        *(_time_room(client, region, poll_interval) for region in regions),
        return_exceptions=True,
    )
    cells: dict[Region, str] = {}
    for region, outcome in zip(regions, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            cells[region] = f"failed: {type(outcome).__name__}"
            print(f"  room in {region.value} failed: {outcome}", file=out)
            continue
        took, room = outcome
        warm = room.process_id in preallocated
        cells[region] = f"{took * 1000:.0f} ms ({'pre-allocated' if warm else 'new process'})"
        await _discard_room(client, room, stop_process=not warm)
    return cells


def _rooms_table(
    regions: Sequence[Region], warm: dict[Region, str], cold: dict[Region, str]
) -> str:
    header = ("region", "room on a pre-allocated process", "room with a cold start")
    body = [(r.value, warm[r], cold[r]) for r in regions]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
    lines = ["", "Time from CreateRoom to an active room:"]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


async def run_demo(settings: DemoSettings, out: TextIO = sys.stdout) -> int:
    """Run the demo, writing to ``out``; returns the process exit status."""
    plan = dict.fromkeys(settings.regions, settings.per_region)
    rows = {region: _Row(requested=count) for region, count in plan.items()}
    live = settings.live if settings.live is not None else out.isatty()
    if os.environ.get(C.ENV_TOKEN) and not os.environ.get(C.ENV_APP_ID):
        print(f"{C.ENV_TOKEN} is set but {C.ENV_APP_ID} is not", file=sys.stderr)
        return 2
    async with _connect(out, settings) as (client, fake):
        # Quick polls suit the fake's seconds-long boots; be gentler with the real API.
        poll = (0.1, 0.25) if fake is not None else (C.DEFAULT_POLL_INTERVAL, 3.0)
        total = sum(plan.values())
        print(
            f"Pre-allocating {total} processes ({settings.per_region} in each of "
            f"{len(plan)} regions), {settings.concurrency} requests at a time...\n",
            file=out,
        )
        progress = _Progress(rows, out, live)
        started = time.monotonic()
        try:
            result: PreallocationResult = await client.preallocate(
                plan,
                concurrency=settings.concurrency,
                timeout=settings.timeout,
                poll_interval=poll[0],
                max_poll_interval=poll[1],
                on_event=progress.on_event,
            )
        except asyncio.CancelledError:
            created = sum(r.created for r in rows.values())
            print(f"\nCancelled: stopped {progress.stopped} of {created} created.", file=out)
            raise
        if live:
            progress.draw(force=True)
        took = time.monotonic() - started
        print(f"\nDone in {took:.2f}s. Time to running is from create sent.\n", file=out)
        print(summary_table(rows), file=out)
        for failure in result.failed:
            print(f"  {failure.region.value}: {failure.error}", file=out)
        ids = result.created + [p.process_id for p in result.strays]
        room_regions = [r for r in plan if result.ready.get(r)][: settings.room_regions]
        try:
            warm = await _time_rooms(client, room_regions, set(ids), poll[0], out)
        finally:
            # Billed processes: stopped even when interrupted while rooms are timed.
            stopped = await _stop_all(client, ids, settings.concurrency)
            print(f"\nStopped {stopped} of {len(ids)} processes created.", file=out)
        if room_regions:
            # With every pre-allocated process gone, a room must wait for a new process.
            cold = await _time_rooms(client, room_regions, set(), poll[0], out)
            print(_rooms_table(room_regions, warm, cold), file=out)
        if fake is not None:
            alive = sum(p["status"] in ("starting", "running") for p in fake.processes())
            print(f"Processes still alive on the fake: {alive}", file=out)
        return 0 if stopped == len(ids) else 1
