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
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

import attrs
from yarl import URL

from .. import _constants as C
from ..client import HathoraClient
from ..errors import HathoraError
from ..models import Region, RoomConnectionData
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
    live: bool | None = None  # None: redraw in place only when the output is a terminal
    fake_boot_delay: tuple[float, float] = FAKE_BOOT_DELAY
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
        print(f"\nDone in {took:.2f}s. Time to running is from create sent.\n", file=out)
        print(summary_table(progress.rows), file=out)
        for failure in result.failed:
            print(f"  {failure.region.value}: {failure.error}", file=out)
        ids = result.created + [p.process_id for p in result.strays]
        for process_id in ids:
            ledger.add(process_id)
        room_regions = [r for r in plan if result.ready.get(r)][: settings.room_regions]
        try:
            warm = await _time_rooms(client, room_regions, set(ids), poll[0], out)
        finally:
            # Billed processes: stopped even when interrupted while rooms are timed.
            stopped = await _stop_all(client, ids, settings.concurrency, ledger)
            print(f"\nStopped {stopped} of {len(ids)} processes created.", file=out)
        if room_regions:
            # With every pre-allocated process gone, a room must wait for a new process.
            cold = await _time_rooms(client, room_regions, set(), poll[0], out)
            print(_rooms_table(room_regions, warm, cold), file=out)
        if fake is not None:
            alive = sum(p["status"] in ("starting", "running") for p in fake.processes())
            print(f"Processes still alive on the fake: {alive}", file=out)
        return 0 if stopped == len(ids) else 1
