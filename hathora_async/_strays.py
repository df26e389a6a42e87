"""Finding the process a create whose answer was lost may have made (a "stray").

Without trusting the client's wall clock: the create's send time is a reading
of the client's monotonic clock, and the listing's own ``Date`` header places
it on the server's clock. With ``age`` the seconds between the send and the
listing's answer (client clock), every process the create made has
``createdAt >= Date - age`` on the server's clock, whatever the skew between
client and server (the header's truncation to whole seconds only widens the
window). ``STRAY_SERVER_CLOCK_MARGIN`` allows for spread between Hathora's
hosts. Without a ``Date`` header the client's wall clock is the fallback,
with ``STRAY_CLOCK_SKEW`` of allowance.

GetLatestProcesses answers only the 10 newest processes (of the statuses and
regions asked for). A region's listing full of processes newer than the send
is asked again once per status a stray can show (starting, running, failed),
each reaching back 10 processes of its own: a stray is in sight unless 10 or
more processes of its region *and status* are newer than it
(``StrayLook.truncated`` says when that may have happened). ``preallocate``
keeps its own creates below that bound (``Sight``, shared with ``WarmPool``),
counting the other processes listings showed newer than a lost create too.

ProcessV2 carries no client tag: another client's process created in the same
region within the window looks the same as a stray. So a look is conclusive
only when it shows no more candidates than the creates it looks for and the
listing reaches back to the window's start (``StrayLook.conclusive``);
otherwise the candidates are reported as ambiguous, never picked by age.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import attrs

from . import _constants as C
from .models import ProcessStatus, ProcessV2, Region
from .waiting import TERMINAL_STATUSES

if TYPE_CHECKING:
    from ._api import ApiClient

__all__ = ["StrayLook", "list_strays", "send_on_server_clock", "server_date"]


@attrs.frozen
class StrayLook:
    """One look for strays in a region.

    ``found``: processes not known to the caller, created no earlier than the
    send (on the server's clock), not draining, stopping or stopped (a failed
    one is kept: it was still made); those dated after the estimated send
    first (likelier the create's than those within the allowance), then oldest
    first. ``truncated``: the listing
    was full and all of it is that recent, so older strays may be out of sight.
    ``listed``: the ids of every process the listing showed. ``others``: how
    many processes the listings showed in the window that are neither known
    nor in ``found`` (other clients', e.g. stopped ones): they take places
    among the 10 a listing shows. ``wanted``: how many strays were looked for.
    """

    found: list[ProcessV2]
    truncated: bool
    listed: frozenset[str]
    others: int = 0
    wanted: int = 1

    @property
    def conclusive(self) -> bool:
        """Whether ``found`` can be taken as the strays: every candidate in the
        window is in sight and there are no more of them than were looked for.
        Otherwise some of ``found`` may be other clients' (and, truncated,
        a stray may be out of sight): the match is ambiguous."""
        return not self.truncated and len(self.found) <= self.wanted


def server_date(headers: Mapping[str, str]) -> datetime | None:
    """The answer's ``Date`` header as an aware datetime, or None (absent, unreadable)."""
    value = headers.get("Date")
    if not value:
        return None
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return date if date.tzinfo is not None else date.replace(tzinfo=timezone.utc)


def send_on_server_clock(headers: Mapping[str, str], age: float) -> tuple[datetime, datetime]:
    """When a create sent ``age`` s ago left, on the server's clock: (estimate, cutoff).

    ``headers`` are those of the answer from which ``age`` is measured. A
    process the create made has ``createdAt >= cutoff``; ``estimate`` is a
    little later (the allowance for clock spread, or skew without a ``Date``).
    """
    date = server_date(headers)
    if date is None:
        estimate = datetime.now(timezone.utc) - timedelta(seconds=age)
        return estimate, estimate - timedelta(seconds=C.STRAY_CLOCK_SKEW)
    estimate = date - timedelta(seconds=age)
    return estimate, estimate - timedelta(seconds=C.STRAY_SERVER_CLOCK_MARGIN)


# The statuses a stray can show (a failed one was still made), each listed on
# its own when the region's listing is full of processes newer than the send.
STRAY_STATUSES = (ProcessStatus.STARTING, ProcessStatus.RUNNING, ProcessStatus.FAILED)


async def _latest(
    client: ApiClient, region: Region, status: ProcessStatus | None, app_id: str | None
) -> tuple[list[ProcessV2], Mapping[str, str]]:
    response = await client.processes.get_latest_processes_with_http_info(
        region=[region], status=None if status is None else [status], app_id=app_id
    )
    return response.data, response.headers


def _full(
    latest: list[ProcessV2],
    cutoff: datetime,
    before: Container[str],
    room: tuple[Container[str], int] | None,
) -> bool:
    if len(latest) < C.LATEST_PROCESSES_LIMIT or any(
        # Reaching back past the send: a process older than the window, or one
        # known to predate the send (its create answered before it left).
        p.created_at < cutoff or p.process_id in before
        for p in latest
    ):
        return False
    if room is None:
        return True
    # A stray hidden behind 10 newer processes needs more than ``most`` of
    # them not the caller's.
    mine, most = room
    return sum(p.process_id not in mine for p in latest) > C.LATEST_PROCESSES_LIMIT - most - 1


async def list_strays(
    client: ApiClient,
    region: Region,
    *,
    sent: float,
    known: Container[str],
    app_id: str | None,
    wanted: int = 1,
    before: Container[str] = frozenset(),
    room: tuple[Container[str], int] | None = None,
) -> StrayLook:
    """Look in ``region`` for processes a create sent at ``sent`` (or later) may have made.

    ``sent`` is a reading of the client's clock; ``known`` are ids the caller
    already accounts for; ``wanted`` how many strays are looked for;
    ``before``: ids of processes made before the send (their creates
    answered before it), which a listing reaching back to is not
    truncated; ``room``: (ids of the caller's processes, at most how many of
    them are newer than a process the create made), as ``Sight`` bounds it,
    or None if unbounded. When the
    region's listing is full of processes newer than the send, each of
    ``STRAY_STATUSES`` is listed too (three more requests): a full listing may
    hide candidates, other clients' or ours. Raises the listings' ``HathoraError``.
    """
    latest, headers = await _latest(client, region, None, app_id)
    estimate, cutoff = send_on_server_clock(headers, client._options.clock() - sent)
    truncated = _full(latest, cutoff, before, room)
    seen = {p.process_id: p for p in latest}

    def strays() -> list[ProcessV2]:
        return sorted(
            (
                process
                for process in seen.values()
                if process.process_id not in known
                and process.created_at >= cutoff
                and (
                    process.status not in TERMINAL_STATUSES
                    or process.status == ProcessStatus.FAILED
                )
            ),
            key=lambda p: (p.created_at < estimate, p.created_at),
        )

    found = strays()
    if truncated:
        # Each status's 10 newest reach further back than the region's 10.
        parts = await asyncio.gather(
            *(_latest(client, region, status, app_id) for status in STRAY_STATUSES)
        )
        truncated = any(_full(part, cutoff, before, room) for part, _ in parts)
        for part, _ in parts:
            seen.update((p.process_id, p) for p in part)
        found = strays()
    taken = {p.process_id for p in found}
    others = sum(
        p.process_id not in known and p.process_id not in taken and p.created_at >= cutoff
        for p in seen.values()
    )
    return StrayLook(found, truncated, frozenset(seen), others, wanted)


@attrs.define(eq=False)
class UnknownCreate:
    """A create whose process, if any, is not known yet (see ``Sight``).

    The run is a ``preallocate`` call or a warm pool. ``newer``: the run's
    creates in its region that may have made a process newer than its own
    (in flight with it, or sent after it).
    ``sent``: when its call began (client clock). ``lost``: it ended with an
    unknown outcome and its region's search looks for its process.
    ``foreign``: processes not the run's that a look showed in its window
    (other clients'): they take places in listings as the run's do.
    """

    sent: float
    newer: int
    lost: bool = False
    foreign: int = 0


def _at_sight_limit(create: UnknownCreate) -> bool:
    return create.newer + create.foreign >= C.STRAY_SIGHT


@attrs.define(eq=False)
class Sight:
    """One region's creates that may have made a process not known yet.

    A create is admitted only while every such create has fewer than
    ``STRAY_SIGHT`` newer ones, and never while ``held`` (the search waits to
    list the region). So a lost create's process, until its search finds it,
    has at most ``STRAY_SIGHT`` processes of this run newer than it in its
    region, counting the others' processes its looks showed newer than it:
    within the 10 a listing shows unless others create in a burst between
    two looks (then the look says ``truncated``).
    """

    open: list[UnknownCreate] = attrs.Factory(list)
    held: bool = False
    searching: bool = False

    def admits(self) -> bool:
        return not self.held and not any(_at_sight_limit(c) for c in self.open)

    def stuck(self) -> bool:
        """A lost create already has ``STRAY_SIGHT`` newer: no create fits until
        it is found or given up (waiting for creates in flight will not help)."""
        return any(c.lost and _at_sight_limit(c) for c in self.open)

    def enter(self, now: float) -> UnknownCreate:
        for other in self.open:
            other.newer += 1
        create = UnknownCreate(now, len(self.open))
        self.open.append(create)
        return create

    def lost(self) -> list[UnknownCreate]:
        return [c for c in self.open if c.lost]

    def in_flight(self) -> bool:
        return any(not c.lost for c in self.open)


class Changes:
    """Wakes everyone waiting (``wait()``) at the next ``notify()``: the
    creates and searches of a run waiting for its regions' creates to change.
    """

    def __init__(self) -> None:
        self._next: asyncio.Future[None] | None = None

    def notify(self) -> None:
        if self._next is not None:
            self._next.set_result(None)
            self._next = None

    async def wait(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        # Shielded: a waiter cancelled must not cancel the future the others await.
        await asyncio.shield(self._next)
