"""The demo behind ``hathora-async demo``: pre-allocate across regions, live.

Runs against an embedded ``FakeHathora`` unless ``HATHORA_TOKEN`` is set, in
which case it uses the API at ``HATHORA_BASE_URL`` (Hathora's by default;
``HATHORA_APP_ID`` is then required) and real, billed processes: at most
``DEMO_REAL_API_MAX_PER_REGION`` per region unless confirmed, all stopped
before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence, Set
from datetime import datetime
from typing import TextIO

import attrs
from yarl import URL

from .. import _constants as C
from ..client import HathoraClient
from ..errors import HathoraError, RoomDestroyedError
from ..models import ProcessStatus, ProcessV2, Region, RoomConnectionData
from ..prealloc import PreallocationResult
from ..testing import FakeHathora
from ._config import ConfigError, describe_target, is_local
from ._context import check_access
from ._interrupt import Ledger
from ._live import wants_live
from ._output import table
from ._progress import PreallocProgress, summary_table

__all__ = ["DemoSettings", "run_demo", "billed_per_region"]

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
    rate_limit: float | None = None  # the embedded fake's gateway limit (issue 12)
    live: bool | None = None  # None: redraw in place only when the output is a terminal
    fake_boot_delay: tuple[float, float] = FAKE_BOOT_DELAY
    fake_boot_failure_rate: float = FAKE_BOOT_FAILURE_RATE
    room_regions: int = 3  # regions where a room is timed, warm and cold
    confirmed: bool = False  # --yes: more than the cap per region on a billed API


def billed_per_region(settings: DemoSettings, base_url: str | URL) -> tuple[int, str | None]:
    """Processes per region against ``base_url``, and why it is fewer than asked, if it is.

    A loopback URL is a fake (nothing billed): no cap. Elsewhere, more than
    ``DEMO_REAL_API_MAX_PER_REGION`` per region needs ``confirmed``.
    """
    asked, cap = settings.per_region, C.DEMO_REAL_API_MAX_PER_REGION
    if is_local(base_url) or settings.confirmed or asked <= cap:
        return asked, None
    return cap, (
        f"Creating {cap} per region, not {asked}: these processes are billed. "
        f"Pass --yes to create {asked} per region."
    )


@contextlib.asynccontextmanager
async def _connect(
    out: TextIO, settings: DemoSettings
) -> AsyncIterator[tuple[HathoraClient, FakeHathora | None]]:
    if os.environ.get(C.ENV_TOKEN):
        if not os.environ.get(C.ENV_APP_ID):
            raise ConfigError(f"{C.ENV_TOKEN} is set but {C.ENV_APP_ID} is not")
        try:
            client = HathoraClient.from_env()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        async with client:
            print(f"Using {describe_target(client.base_url)}.", file=out)
            # A wrong token, app id or URL ends the demo here, with one message.
            await check_access(client)
            yield client, None
        return
    low, high = settings.fake_boot_delay
    fake = FakeHathora(
        boot_delay=(low, high),
        latency=FAKE_LATENCY,
        boot_failure_rate=settings.fake_boot_failure_rate,
        seed=settings.seed,
        rate_limit=settings.rate_limit,
    )
    async with fake:
        print(
            f"Using an embedded fake Hathora at {fake.url} (boot {low:g}-{high:g}s, "
            f"{settings.fake_boot_failure_rate:.0%} boot failures; "
            f"set {C.ENV_TOKEN} and {C.ENV_APP_ID} for the real API).",
            file=out,
        )
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
            yield client, fake


def _budget_line(client: HathoraClient, server_limit: float | None = None) -> str:
    """How the client's send budget adapted (issue 12), in one line.

    The pace is what the client sends at now, not the server's limit: while
    calls succeed it probes above the last limit it met, so it may read higher.
    ``server_limit``: the embedded fake's limit, when there is one, for comparison.
    """
    state = client.rate_limit_state
    if not state.throttled:
        return "Send budget: never answered 429, not pacing.\n"
    if state.rate is None:
        pace = "is not pacing now"
    else:
        pace = f"is probing at {state.rate:.1f} requests/s now (its pace, not the limit"
        pace += f": the fake's is {server_limit:g}/s)" if server_limit is not None else ")"
    return f"Send budget: {state.throttled} answers were 429; the client adapted and {pace}.\n"


async def _stop_all(
    client: HathoraClient, ids: Sequence[str], concurrency: int, ledger: Ledger
) -> int:
    limit = asyncio.Semaphore(concurrency)

    async def stop(process_id: str) -> bool:
        try:
            async with limit:
                await client.processes.stop_process(process_id)
        except HathoraError as exc:
            print(f"could not stop {process_id}: {exc}", file=sys.stderr)
            return False
        ledger.discard(process_id)
        return True

    return sum(await asyncio.gather(*(stop(pid) for pid in ids)))


# Where a timed room landed, as the table says it.
WARM = "pre-allocated"
COLD = "new process"
FOREIGN = "landed on an existing process not made by the demo"
_LIVE = (ProcessStatus.STARTING, ProcessStatus.RUNNING)


@attrs.frozen
class _Before:
    """The region's live processes just before a room was created."""

    ids: frozenset[str]
    newest: datetime | None


async def _before(client: HathoraClient, region: Region) -> _Before:
    listed = await client.processes.get_latest_processes(status=_LIVE, region=[region])
    newest = max((p.created_at for p in listed), default=None)
    return _Before(frozenset(p.process_id for p in listed), newest)


async def _started_for(
    client: HathoraClient, room: RoomConnectionData, before: _Before
) -> ProcessV2 | None:
    """The room's process, only when it provably exists for this room alone; else None.

    It was not among the region's live processes listed before the room was
    created, it is newer than each of them (the list holds only the latest
    few), and it hosts no room but this one. Anything else may be someone
    else's process, hosting their matches: the demo must never stop it.
    """
    if room.process_id in before.ids:
        return None
    try:
        process = await client.processes.get_process_info(room.process_id)
        rooms = await client.rooms.get_active_rooms_for_process(room.process_id)
    except HathoraError:
        return None  # not provable
    if before.newest is not None and not process.created_at > before.newest:
        return None
    return process if {r.room_id for r in rooms} <= {room.room_id} else None


def _never_booted(process: ProcessV2 | None) -> bool:
    """The process ended (failed, or stopped) without ever running."""
    return process is not None and process.started_at is None and process.status not in _LIVE


@attrs.frozen
class _Timed:
    took: float
    room: RoomConnectionData
    placement: str  # WARM, COLD or FOREIGN
    # The process the first room landed on, which failed to boot (the room was retried).
    failed_boot: str | None = None


class _BootFailed(Exception):
    """A cold room's new process ended without booting: the room was destroyed."""

    def __init__(self, process_id: str, cause: HathoraError) -> None:
        super().__init__(f"process {process_id} failed to boot: {cause}")
        self.process_id = process_id
        self.cause = cause


async def _time_room_once(
    client: HathoraClient,
    region: Region,
    preallocated: Set[str],
    poll_interval: float,
    ledger: Ledger,
) -> _Timed:
    """Create a room, time it to active, destroy it; stop its process only if the
    room provably started it (the demo's billed cold start).

    Raises ``_BootFailed`` when the room's process was started for it and
    ended without booting, taking the room with it.
    """
    before = await _before(client, region)
    started = time.monotonic()
    room = await client.rooms.create_room(region)
    placement: str | None = None  # None: the wait did not end well
    failure: HathoraError | None = None
    own: ProcessV2 | None = None
    try:
        await client.rooms.wait_for_room(room.room_id, poll_interval=poll_interval)
        took = time.monotonic() - started
        if room.process_id in preallocated:
            placement = WARM  # stopped with the other pre-allocated processes
        else:
            own = await _started_for(client, room, before)
            placement = COLD if own is not None else FOREIGN
        return _Timed(took, room, placement)
    except RoomDestroyedError as exc:
        failure = exc
        raise
    finally:
        # Also when the wait failed or was interrupted: the room is the demo's.
        with contextlib.suppress(HathoraError):
            await client.rooms.destroy_room(room.room_id)
        if placement is None and room.process_id not in preallocated:
            own = await _started_for(client, room, before)
            placement = COLD if own is not None else FOREIGN
        if placement == COLD:
            ledger.add(room.process_id)
            with contextlib.suppress(HathoraError):
                await client.processes.stop_process(room.process_id)
                ledger.discard(room.process_id)
        if failure is not None and placement == COLD and _never_booted(own):
            raise _BootFailed(room.process_id, failure) from failure


async def _time_rooms(
    client: HathoraClient,
    regions: Sequence[Region],
    preallocated: Set[str],
    poll_interval: float,
    out: TextIO,
    ledger: Ledger,
) -> dict[Region, str]:
    """Create a room in each region, time it to active, then destroy it.

    Returns a cell per region: the time, and where the room landed: on one of
    ``preallocated`` (warm), on a process started for it (cold, then stopped),
    or on a process the demo did not make (left running: it may host matches).
    """

    async def time_room(region: Region) -> _Timed:
        # Once more on a new process when the process started for the first room
        # failed to boot: a cold start the demo could not time.
        try:
            return await _time_room_once(client, region, preallocated, poll_interval, ledger)
        except _BootFailed as failed:
            timed = await _time_room_once(client, region, preallocated, poll_interval, ledger)
            return attrs.evolve(timed, failed_boot=failed.process_id)

    outcomes = await asyncio.gather(*map(time_room, regions), return_exceptions=True)
    cells: dict[Region, str] = {}
    for region, outcome in zip(regions, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            cause = outcome.cause if isinstance(outcome, _BootFailed) else outcome
            cells[region] = f"failed: {type(cause).__name__}"
            print(f"  room in {region.value} failed: {outcome}", file=out)
            continue
        retried = ", 2nd try" if outcome.failed_boot is not None else ""
        cells[region] = f"{outcome.took * 1000:.0f} ms ({outcome.placement}{retried})"
        if outcome.failed_boot is not None:
            print(
                f"  room in {region.value}: its new process {outcome.failed_boot} failed to "
                "boot; timed a second room, from its own CreateRoom",
                file=out,
            )
    return cells


def _rooms_table(
    regions: Sequence[Region], warm: dict[Region, str], cold: dict[Region, str]
) -> str:
    header = ("region", "room on a pre-allocated process", "room with a cold start")
    body = [(r.value, warm[r], cold[r]) for r in regions]
    return "\nTime from CreateRoom to an active room:\n" + table(header, body)


async def run_demo(
    settings: DemoSettings, out: TextIO = sys.stdout, ledger: Ledger | None = None
) -> int:
    """Run the demo, writing to ``out``; returns the process exit status.

    ``ledger`` hears of every process made and stopped, so an interrupt can
    say what is left. Errors of the API (a wrong token or app id) propagate.
    """
    ledger = ledger if ledger is not None else Ledger()
    ledger.cleans_up = True
    live = settings.live if settings.live is not None else wants_live(out)
    async with _connect(out, settings) as (client, fake):
        per_region, capped = billed_per_region(settings, client.base_url)
        if fake is None and capped:
            print(capped, file=out)
        plan = dict.fromkeys(settings.regions, per_region)
        # Quick polls suit the fake's seconds-long boots; be gentler with the real API.
        poll = (0.1, 0.25) if fake is not None else (C.DEFAULT_POLL_INTERVAL, 3.0)
        total = sum(plan.values())
        print(
            f"Pre-allocating {total} processes ({per_region} in each of "
            f"{len(plan)} regions), {settings.concurrency} requests at a time...\n",
            file=out,
        )
        progress = PreallocProgress(plan, out, live=live, ledger=ledger)
        started = time.monotonic()
        try:
            with progress:
                result: PreallocationResult = await client.preallocate(
                    plan,
                    concurrency=settings.concurrency,
                    timeout=settings.timeout,
                    poll_interval=poll[0],
                    max_poll_interval=poll[1],
                    on_event=progress.on_event,
                )
        except asyncio.CancelledError:
            created = sum(r.created for r in progress.rows.values())
            print(f"\nCancelled: stopped {progress.stopped} of {created} created.", file=out)
            raise
        took = time.monotonic() - started
        print(f"\nDone in {took:.2f}s. Time to running is from create sent.", file=out)
        limit = settings.rate_limit if fake is not None else None
        print(_budget_line(client, limit), file=out)
        print(summary_table(progress.rows), file=out)
        for failure in result.failed:
            print(f"  {failure.region.value}: {failure.error}", file=out)
        ids = list(result.created)
        found = [p.process_id for p in result.strays]
        unsure = [p.process_id for p in result.ambiguous]
        left: list[str] = []
        if fake is not None:
            # The embedded fake has no other client: every stray and candidate is ours.
            ids += found + unsure
        else:
            # Against a real app another client's process can pass for a lost create's
            # (no tag tells them apart; see PreallocationResult): stopping it would end
            # its matches. Named for the operator, not stopped.
            left = found + unsure
            for label, named in (
                ("its own, answer lost (PreallocationResult.strays)", found),
                ("maybe another client's (PreallocationResult.ambiguous)", unsure),
            ):
                if named:
                    print(f"  Left running, {label}: {' '.join(named)}", file=out)
            if left:
                print("  Stop them with: hathora-async processes stop PROCESS_ID", file=out)
        for process_id in ids:
            ledger.add(process_id)
        # Failed to boot (or stopped meanwhile): nothing to stop, and not counted as stopped.
        ended = {
            f.process_id
            for f in result.failed
            if f.process_id is not None and f.process is not None and f.process.status not in _LIVE
        }
        for process_id in ended:
            ledger.discard(process_id)
        to_stop = [pid for pid in ids if pid not in ended]
        room_regions = [r for r in plan if result.ready.get(r)][: settings.room_regions]
        try:
            warm = await _time_rooms(client, room_regions, set(ids), poll[0], out, ledger)
        finally:
            # Billed processes: stopped even when interrupted while rooms are timed.
            stopped = await _stop_all(client, to_stop, settings.concurrency, ledger)
            print(f"\n{_stopped_line(stopped, len(ids), len(ended), len(left))}", file=out)
        if room_regions:
            # With every pre-allocated process gone, a room must wait for a new process.
            cold = await _time_rooms(client, room_regions, set(), poll[0], out, ledger)
            print(_rooms_table(room_regions, warm, cold), file=out)
        if fake is not None:
            alive = sum(p["status"] in ("starting", "running") for p in fake.processes())
            print(f"Processes still alive on the fake: {alive}", file=out)
        return 0 if stopped == len(to_stop) else 1


def _stopped_line(stopped: int, created: int, ended: int, left: int = 0) -> str:
    """``Stopped 40 of the 42 processes created; 2 had already ended.`` (plus,
    against a real app, how many processes of lost answers were left running)."""
    line = f"Stopped {stopped} of the {created} processes created"
    line = f"{line}; {ended} had already ended" if ended else line
    if left:
        line = f"{line}; {left} more of lost answers left running (named above)"
    return f"{line}."
