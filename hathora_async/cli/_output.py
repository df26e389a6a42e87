"""How results are shown: a readable table, or ``--json`` in the API's own wire shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from .. import _constants as C
from .._convert import unstructure
from ..models import (
    ConnectionInfoV2,
    ExposedPort,
    ProcessV2,
    Room,
    RoomConnectionData,
    RoomWithoutAllocations,
)

__all__ = ["table", "show", "print_json", "process_rows"]


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    footer: Sequence[Sequence[str]] = (),
    numeric: Sequence[bool] | None = None,
) -> str:
    """A ``| a | b |`` table; ``numeric`` columns are right-aligned, ``footer`` set apart."""
    everything = [header, *rows, *footer]
    widths = [max(len(r[i]) for r in everything) for i in range(len(header))]
    right = list(numeric) if numeric is not None else [False] * len(header)

    def fmt(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    lines = [fmt(header), rule, *(fmt(r) for r in rows)]
    if footer:
        lines += [rule, *(fmt(r) for r in footer)]
    return "\n".join(lines)


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _address(port: ExposedPort | None) -> str:
    if port is None:
        return "-"
    return f"{port.transport_type.value}://{port.host}:{port.port}"


def _cut(text: str | None) -> str:
    if text is None:
        return "-"
    text = text.replace("\n", " ")
    if len(text) > C.TABLE_MAX_CELL:
        return text[: C.TABLE_MAX_CELL - 3] + "..."
    return text


def _allocated_to(room: Room | RoomWithoutAllocations) -> str:
    return room.current_allocation.process_id if room.current_allocation else "-"


# Per model: the table's columns, as (heading, cell) pairs.
_Column = tuple[str, Callable[[Any], str]]
_COLUMNS: dict[type[Any], tuple[_Column, ...]] = {
    ProcessV2: (
        ("process id", lambda p: p.process_id),
        ("region", lambda p: p.region.value),
        ("status", lambda p: p.status.value),
        ("rooms", lambda p: f"{p.rooms_allocated}/{p.rooms_per_process}"),
        ("created", lambda p: _when(p.created_at)),
        ("address", lambda p: _address(p.exposed_port)),
    ),
    Room: (
        ("room id", lambda r: r.room_id),
        ("status", lambda r: r.status.value),
        ("process id", _allocated_to),
        ("allocations", lambda r: str(len(r.allocations))),
        ("config", lambda r: _cut(r.room_config)),
    ),
    RoomWithoutAllocations: (
        ("room id", lambda r: r.room_id),
        ("status", lambda r: r.status.value),
        ("process id", _allocated_to),
        ("config", lambda r: _cut(r.room_config)),
    ),
    ConnectionInfoV2: (
        ("room id", lambda c: c.room_id),
        ("status", lambda c: c.status.value),
        ("address", lambda c: _address(c.exposed_port)),
    ),
    RoomConnectionData: (
        ("room id", lambda c: c.room_id),
        ("process id", lambda c: c.process_id),
        ("status", lambda c: c.status.value),
        ("address", lambda c: _address(c.exposed_port)),
    ),
}


def _rows(columns: Sequence[_Column], items: Sequence[Any]) -> list[list[str]]:
    return [[cell(item) for _, cell in columns] for item in items]


def process_rows(processes: Sequence[ProcessV2]) -> str:
    """Processes as a table, one row each."""
    columns = _COLUMNS[ProcessV2]
    return table([h for h, _ in columns], _rows(columns, processes))


def print_json(data: Any, out: TextIO) -> None:
    """JSON-ready data on ``out``, indented for people, one document for ``jq``."""
    print(json.dumps(data, indent=2), file=out)


def show(result: Any, out: TextIO, *, as_json: bool, model: type[Any]) -> None:
    """Print a model or a list of models: the wire's JSON, or a table.

    A list is a table with one row per item (a header alone when empty); a
    single model is a two-column table of its fields.
    """
    if as_json:
        print_json(unstructure(result), out)
        return
    columns = _COLUMNS[model]
    if isinstance(result, list):
        print(table([h for h, _ in columns], _rows(columns, result)), file=out)
        return
    print(table(("field", "value"), [[h, cell(result)] for h, cell in columns]), file=out)
