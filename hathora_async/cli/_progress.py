"""Progress of a pre-allocation per region, live or as plain lines, and its summary table.

Shared by ``preallocate`` and the demo. It also keeps the command's ledger:
every process the moment its create returns, until it is stopped.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

import attrs

from ..models import Region
from ..prealloc import PreallocationEvent
from ._interrupt import Ledger
from ._live import Display
from ._output import table

__all__ = ["Row", "PreallocProgress", "summary_table", "percentile"]


@attrs.define
class Row:
    """One region's slots so far."""

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


class PreallocProgress(Display):
    """Per-region progress of a pre-allocation, fed by its ``on_event``.

    Live on a terminal: one line per region, redrawn in place. Otherwise one
    line per process that runs or fails (or is created, without ``wait``).
    """

    def __init__(
        self,
        plan: Mapping[Region, int],
        out: TextIO,
        *,
        live: bool,
        wait: bool = True,
        ledger: Ledger | None = None,
    ) -> None:
        super().__init__(out, live)
        self.rows = {region: Row(requested=count) for region, count in plan.items()}
        self.wait = wait
        self.ledger = ledger if ledger is not None else Ledger()
        self.started = time.monotonic()
        self.width = max((len(r.value) for r in self.rows), default=0)
        self.total = sum(plan.values())
        self.answered = 0
        self.stopped = 0

    def on_event(self, event: PreallocationEvent) -> None:
        row = self.rows[event.region]
        kind = event.kind
        if kind == "created" and event.process_id is not None:
            self.ledger.add(event.process_id)
            row.created += 1
            self.answered += 1
        elif kind == "running":
            row.running += 1
            if event.elapsed is not None:
                row.times.append(event.elapsed)
        elif kind == "failed":
            row.failed += 1
            if event.process_id is None:
                self.answered += 1
        elif kind == "stopped" and event.process_id is not None:
            self.ledger.discard(event.process_id)
            self.stopped += 1
        elif kind == "stray" and event.process_id is not None:
            self.ledger.add(event.process_id)
        if self.live:
            self.update(self.lines())
        if not self.live:
            self._plain(event, row)

    def _plain(self, event: PreallocationEvent, row: Row) -> None:
        elapsed = time.monotonic() - self.started
        shown = ("running", "failed", "stray") if self.wait else ("created", "failed", "stray")
        if event.kind in shown:
            done = row.running if self.wait else row.created
            detail = f"  {event.error}" if event.error is not None else ""
            self.message(
                f"{elapsed:7.2f}s  {event.region.value.ljust(self.width)}  {event.kind:<8} "
                f"{done}/{row.requested}  {event.process_id or '-'}{detail}"
            )
        if event.kind in ("created", "failed") and self.answered == self.total:
            created = sum(r.created for r in self.rows.values())
            what = "process" if created == 1 else "processes"
            self.message(f"{elapsed:7.2f}s  all creates answered: {created} {what}")
            self.answered += 1  # said once

    def line(self, region: Region, row: Row) -> str:
        starting = row.created - row.running - row.failed
        cells = "#" * row.running + "x" * row.failed + "o" * max(0, starting)
        cells = cells[: row.requested].ljust(row.requested, ".")
        return (
            f"{region.value.ljust(self.width)}  [{cells}]  running {row.running}/{row.requested}"
            f"  starting {max(0, starting)}  failed {row.failed}"
        )

    def lines(self) -> list[str]:
        return [self.line(region, row) for region, row in self.rows.items()]


def _figures(row: Row, wait: bool) -> tuple[str, ...]:
    times = row.times
    median = f"{statistics.median(times):.2f}s" if times else "-"
    p95 = f"{percentile(times, 0.95):.2f}s" if times else "-"
    done = row.running if wait else row.created
    return (str(row.requested), str(done), str(row.failed), median, p95)


def summary_table(rows: Mapping[Region, Row], *, wait: bool = True) -> str:
    """Requested, running (created, without ``wait``), failed, median and p95 time to running."""
    header = ("region", "requested", "running" if wait else "created", "failed", "median", "p95")
    body = [(region.value, *_figures(row, wait)) for region, row in rows.items()]
    total = Row(
        requested=sum(r.requested for r in rows.values()),
        created=sum(r.created for r in rows.values()),
        running=sum(r.running for r in rows.values()),
        failed=sum(r.failed for r in rows.values()),
        times=[t for r in rows.values() for t in r.times],
    )
    numeric = (False, True, True, True, True, True)
    return table(header, body, footer=[("total", *_figures(total, wait))], numeric=numeric)
