"""``WarmPool``: keep idle running processes ready in each region."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from . import _constants as C
from ._strays import list_strays
from .errors import ClientClosedError, HathoraError, NotFoundError, RateLimitedError
from .models import ProcessStatus, ProcessV2, Region, coerce_region
from .prealloc import Plan, _check_limit, check_plan
from .waiting import _positive_number

if TYPE_CHECKING:
    from .client import HathoraClient

__all__ = ["RegionCounts", "WarmPool"]

logger = logging.getLogger(C.LOGGER_NAME)

# A tracked process in one of these is gone for good. Draining is not: it still
# hosts rooms, so it counts as busy until it stops.
_GONE = frozenset({ProcessStatus.FAILED, ProcessStatus.STOPPING, ProcessStatus.STOPPED})
# The only statuses in which a process is spare capacity, and so the pool's to stop.
_LIVE = frozenset({ProcessStatus.STARTING, ProcessStatus.RUNNING})


@attrs.frozen
class RegionCounts:
    """A pool's processes in one region, for metrics.

    ``starting``, ``idle`` (running, no rooms) and ``busy`` (hosting rooms, or
    draining) count processes the pool tracks now. ``failed`` counts, since
    the pool started, its processes that ended without the pool stopping them:
    failed to boot, crashed, reaped when idle, or stopped elsewhere.
    """

    starting: int = 0
    idle: int = 0
    busy: int = 0
    failed: int = 0


@attrs.define
class PoolRecord:
    """What a pool knows about one process it made (or adopted).

    ``created_at`` and ``last_seen`` are readings of the client's monotonic
    clock: when its create answered (or it was adopted), and when a read last
    found it (None: never). ``process`` is the last state seen: the create's
    answer at first, None when the process is known by id only (a create
    whose answer could not be read whole but named it).
    """

    process_id: str
    region: Region
    created_at: float
    process: ProcessV2 | None = None
    last_seen: float | None = None

    @property
    def state(self) -> str:
        """``starting``, ``idle`` or ``busy``: how the pool counts it."""
        if self.process is None:
            return "starting"  # not seen yet: may boot, is no spare capacity
        status = self.process.status
        # A room can be placed on a process still booting: that one is not capacity.
        if status not in _LIVE or self.process.rooms_allocated:
            # Hosting rooms, draining, or a status newer than this client: not gone.
            return "busy"
        return "starting" if status == ProcessStatus.STARTING else "idle"


class WarmPool:
    """Keeps at least ``targets[region]`` idle running processes in each region.

    ::

        async with WarmPool(client, {Region.SEATTLE: 2, Region.LONDON: 1}) as pool:
            await pool.wait_ready()
            ...  # rooms created in these regions land on warm processes

    A background task checks the pool's processes every ``poll_interval``
    seconds. A process that gets rooms stops being idle, so a replacement is
    created; one that fails, stops or is reaped is dropped and replaced. Idle
    processes above ``max_per_region`` (an int, a mapping per region, or None
    for "the target") are stopped, oldest first. API errors (429s included)
    never end the task: they stretch the wait before the next pass, doubling
    up to ``max_backoff`` and honouring a 429's ``Retry-After``. A closed
    client does: the task ends, ``last_error`` is the ``ClientClosedError``
    and ``wait_ready()`` raises it.

    The pool never forgets a process it made until it has seen it stopped
    (or failed) or has stopped it itself. Hathora's reads can lag behind its
    creates, so a 404 for a process less than ``READ_AFTER_CREATE_GRACE``
    (15 s, on the client's clock) after its create answered means "not
    visible yet": the process is kept (counted as starting) and polled again.
    A process still not found after that, or found missing by a stop, is one
    the pool has lost track of: it logs its id at WARNING, tries to stop it
    anyway, and lists it in ``lost_process_ids()``.

    A create whose outcome is unknown (the answer was lost after sending) may
    still have made a process. Later passes (and the exit) list that region's
    latest processes and adopt, up to one per such create, those the pool does
    not know that are starting or running and were created after the create
    was sent, placed on the server's clock with the listing's ``Date`` header
    (client/server clock skew does not matter). The region is listed again
    for ``READ_AFTER_CREATE_GRACE`` after the create, since the new process
    may be missing from listings for that long. A create error that names
    its process (``error.process_id``) is adopted at once. Another client's
    process made in the same region after the create (or up to about two
    seconds before it) looks the same and may be adopted instead; if more than
    10 processes are made in the region after the create, its process may be
    out of the listing's sight and is left to Hathora's idle reaper (logged at
    WARNING).

    ``concurrency`` bounds the pool's requests in flight. ``sleep`` is the
    pool's own wait between passes (default ``asyncio.sleep``, not the
    client's, so a test clock on the client does not spin the pool).

    On exit the pool lets a pass in progress finish, then, with
    ``stop_on_exit``, stops its starting and idle processes, including those
    reads do not show yet (a stop answered 404 within the grace window is
    tried again until it ends, so an exit can take up to that long). Busy processes
    host matches, so they are left running unless ``stop_busy_on_exit``;
    Hathora stops them once idle. Since a match may have landed after the
    last pass, each process is read again right before it is stopped (on exit
    and when trimming) and spared if it now has rooms or is no longer starting
    or running; a match landing in the few milliseconds between that read and
    the stop cannot be seen. Processes the exit could not stop (API errors, a
    closed client) are logged at WARNING by id and stay in ``process_ids()``.
    """

    def __init__(
        self,
        client: HathoraClient,
        targets: Plan,
        *,
        max_per_region: int | Plan | None = None,
        poll_interval: float = C.DEFAULT_POOL_POLL_INTERVAL,
        concurrency: int = C.DEFAULT_POOL_CONCURRENCY,
        max_backoff: float = C.DEFAULT_POOL_MAX_BACKOFF,
        stop_on_exit: bool = True,
        stop_busy_on_exit: bool = False,
        app_id: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._targets = check_plan(targets)
        self._max = self._check_max(max_per_region)
        self._poll_interval = _positive_number(poll_interval, "poll_interval")
        self._max_backoff = max(_positive_number(max_backoff, "max_backoff"), self._poll_interval)
        _check_limit(concurrency, "concurrency")
        client._app_segment(app_id)
        self._client = client
        self._app_id = app_id
        self._concurrency = concurrency
        self._stop_on_exit = stop_on_exit
        self._stop_busy_on_exit = stop_busy_on_exit
        self._sleep = sleep
        self._tracked: dict[str, PoolRecord] = {}
        # Processes the pool lost track of, and whether a stop of each was confirmed.
        self._lost: dict[str, bool] = {}
        self._failed: Counter[Region] = Counter()
        self._delay = self._poll_interval
        self._retry_after: float | None = None
        # When (client clock) each create with an unknown outcome was sent, per
        # region, until its stray is found or the grace window ends.
        self._unknown: dict[Region, list[float]] = {}
        # Per region, ids listings showed that the pool did not adopt: others'.
        self._seen: dict[Region, set[str]] = {}
        # Set when the client was closed: the background task has ended.
        self._ended: ClientClosedError | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._changed: asyncio.Condition | None = None
        self._limit: asyncio.Semaphore | None = None
        self._sleeping = False
        self._closing = False
        self._closed = False
        self.errors = 0
        """API errors met since the pool started."""
        self.last_error: HathoraError | None = None
        """The most recent API error, or None."""

    def _check_max(self, max_per_region: int | Plan | None) -> dict[Region, int]:
        if max_per_region is None:
            return dict(self._targets)
        if isinstance(max_per_region, Mapping):
            given = check_plan(max_per_region)
            unknown = set(given) - set(self._targets)
            if unknown:
                names = ", ".join(sorted(r.value for r in unknown))
                raise ValueError(f"max_per_region names regions without a target: {names}")
            limits = {r: given.get(r, t) for r, t in self._targets.items()}
        else:
            if isinstance(max_per_region, bool) or not isinstance(max_per_region, int):
                raise ValueError(f"max_per_region must be an int, got {max_per_region!r}")
            limits = dict.fromkeys(self._targets, max_per_region)
        for region, limit in limits.items():
            if limit < self._targets[region]:
                raise ValueError(
                    f"max_per_region for {region.value} ({limit}) is below its target "
                    f"({self._targets[region]})"
                )
        return limits

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> WarmPool:
        if self._task is not None or self._closed:
            raise RuntimeError("a WarmPool can be entered only once")
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._limit = asyncio.Semaphore(self._concurrency)
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the background task, then stop processes as configured. Safe to call twice."""
        if self._closed:
            return
        self._closing = True
        task = self._task
        try:
            if task is not None:
                if self._sleeping:
                    task.cancel()
                # Otherwise a pass is under way: let its creates land so none is lost.
                await asyncio.gather(task, return_exceptions=True)
        except asyncio.CancelledError:
            if task is not None:
                task.cancel()
            raise
        finally:
            self._closed = True
            if self._changed is not None:
                async with self._changed:
                    self._changed.notify_all()  # wake wait_ready() callers
        if not self._stop_on_exit:
            return
        await self._reconcile_on_exit()
        doomed = [
            pid
            for pid, entry in self._tracked.items()
            if self._stop_busy_on_exit or entry.state != "busy"
        ]
        check = not self._stop_busy_on_exit
        stopped = await asyncio.gather(*(self._stop_at_exit(pid, check) for pid in doomed))
        unstopped = [pid for pid, ok in self._lost.items() if not ok]
        again = await asyncio.gather(*(self._stop_now(pid) for pid in unstopped))
        for pid, outcome in zip(unstopped, again, strict=True):
            self._lost[pid] = outcome == "stopped"
        left = [pid for pid, ok in zip(doomed, stopped, strict=True) if not ok]
        left += [pid for pid, ok in self._lost.items() if not ok]
        # Never abandon billed processes silently: say which ones still run.
        if left:
            logger.warning(
                "warm pool: could not stop %d process(es), they may still run: %s (%s)",
                len(left),
                ", ".join(left),
                self.last_error,
            )
        for region, sent in self._unknown.items():
            logger.warning(
                "warm pool: could not look for processes that %d create(s) with unknown "
                "outcome may have made in %s; Hathora's idle reaper stops them",
                len(sent),
                region.value,
            )

    async def _reconcile_on_exit(self) -> None:
        """Look for strays until found, or until every lost create's grace has ended."""
        clock = self._client._options.clock
        while self._unknown:
            await self._reconcile()
            latest = max((max(sent) for sent in self._unknown.values()), default=None)
            if latest is None or clock() >= latest + C.READ_AFTER_CREATE_GRACE:
                return
            await self._client._options.sleep(C.LAG_RETRY_INTERVAL)

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self.refresh()
            except ClientClosedError as exc:
                # No call can succeed again: end rather than spin; aclose() reports what is left.
                self.last_error = exc
                self._ended = exc
                logger.warning("warm pool: the client was closed; the pool no longer runs")
                assert self._changed is not None
                async with self._changed:
                    self._changed.notify_all()  # wake wait_ready() callers
                return
            except HathoraError as exc:
                self._note(exc)
            except Exception:
                # A bug here must not end the pool: log it and try again later.
                logger.exception("warm pool pass failed")
                self._delay = min(self._max_backoff, self._delay * 2)
            if self._closing:
                return
            self._sleeping = True
            try:
                await self._sleep(self._delay)
            finally:
                self._sleeping = False

    # -- the pass ----------------------------------------------------------

    async def refresh(self) -> dict[Region, RegionCounts]:
        """Run one pass now (poll, replace, trim) and return the new ``snapshot()``.

        The background task runs the same pass; calls never overlap. Raises
        ``ClientClosedError`` when the client is (or gets) closed.
        """
        if self._lock is None or self._changed is None:
            raise RuntimeError("the WarmPool is not running: use it with 'async with'")
        if self._closed:
            raise RuntimeError("the WarmPool is closed")
        if self._client.closed:
            raise ClientClosedError("the HathoraClient is closed: the WarmPool cannot run")
        async with self._lock:
            errors_before = self.errors
            self._retry_after = None
            await asyncio.gather(*(self._poll(pid) for pid in list(self._tracked)))
            await self._reconcile()
            await self._top_up()
            await self._trim()
            if self.errors == errors_before:
                self._delay = self._poll_interval
            else:
                backoff = min(self._max_backoff, max(self._poll_interval, self._delay * 2))
                if self._retry_after is not None:
                    backoff = max(backoff, min(self._retry_after, self._max_backoff))
                self._delay = backoff
        async with self._changed:
            self._changed.notify_all()
        if self._client.closed:
            raise ClientClosedError("the HathoraClient was closed: the WarmPool cannot run")
        return self.snapshot()

    def _note(self, error: HathoraError) -> None:
        self.errors += 1
        self.last_error = error
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            self._retry_after = max(self._retry_after or 0.0, error.retry_after)
        if not isinstance(error, ClientClosedError):  # said once, by the loop or the exit
            logger.warning("warm pool: %s", error)

    def _now(self) -> float:
        return self._client._options.clock()

    async def _read(self, process_id: str) -> ProcessV2:
        """The process as the API sees it now; raises ``NotFoundError`` and the like."""
        assert self._limit is not None
        async with self._limit:
            return await self._client.processes.get_process_info(process_id, app_id=self._app_id)

    def _saw(self, record: PoolRecord, process: ProcessV2) -> None:
        """A read found the process: record it, and forget it once it has ended."""
        record.process = process
        record.last_seen = self._now()
        if process.status in _GONE and self._tracked.pop(record.process_id, None) is not None:
            self._failed[record.region] += 1

    def _lag(self, record: PoolRecord) -> bool:
        """Whether a 404 for the process may still be read lag (its create is recent)."""
        return self._now() < record.created_at + C.READ_AFTER_CREATE_GRACE

    async def _not_found(self, record: PoolRecord) -> None:
        """A read answered 404: lag while the create is recent, else the pool lost it."""
        if self._lag(record):
            logger.debug("warm pool: process %s not visible yet", record.process_id)
            return
        self._tracked.pop(record.process_id, None)
        self._lose(record, "not found", await self._stop_now(record.process_id) == "stopped")

    def _lose(self, record: PoolRecord, why: str, stopped: bool) -> None:
        self._lost[record.process_id] = stopped
        logger.warning(
            "warm pool: lost track of process %s in %s (%s %.0f s after its create); %s",
            record.process_id,
            record.region.value,
            why,
            self._now() - record.created_at,
            "stopped it" if stopped else "could not stop it: it may still run, billed",
        )

    async def _poll(self, process_id: str) -> None:
        record = self._tracked[process_id]
        try:
            process = await self._read(process_id)
        except NotFoundError:
            await self._not_found(record)
        except HathoraError as exc:
            self._note(exc)
        else:
            self._saw(record, process)

    async def _reconcile(self) -> None:
        """Adopt the processes that creates with an unknown outcome may have made."""
        pending, self._unknown = self._unknown, {}
        await asyncio.gather(*(self._adopt(region, sent) for region, sent in pending.items()))

    async def _adopt(self, region: Region, sent: list[float]) -> None:
        assert self._limit is not None
        seen = self._seen.setdefault(region, set())
        known = {*self._tracked, *self._lost, *seen}
        try:
            async with self._limit:
                look = await list_strays(
                    self._client, region, sent=min(sent), known=known, app_id=self._app_id
                )
        except HathoraError as exc:
            self._unknown.setdefault(region, []).extend(sent)  # look again next time
            self._note(exc)
            return
        # A create makes one process at most.
        adopted = look.found[: len(sent)]
        now = self._now()
        for process in adopted:
            pid = process.process_id
            self._tracked[pid] = PoolRecord(pid, region, now, process, now)
            logger.info(
                "warm pool: adopted process %s in %s, probably made by a create whose "
                "answer was lost",
                pid,
                region.value,
            )
        # Newer than the sends, yet not taken: others' processes, never to adopt later.
        seen.update(p.process_id for p in look.found[len(sent) :])
        # The latest sends are the likeliest to have a process listings do not show yet.
        rest = sorted(sent)[len(adopted) :]
        waiting = [t for t in rest if now < t + C.READ_AFTER_CREATE_GRACE]
        if waiting:
            self._unknown.setdefault(region, []).extend(waiting)
        elif rest and look.truncated:
            logger.warning(
                "warm pool: over %d processes were created in %s since a create with an "
                "unknown outcome: a process it made may be out of sight",
                C.LATEST_PROCESSES_LIMIT,
                region.value,
            )

    async def _top_up(self) -> None:
        creates = []
        for region, target in self._targets.items():
            counts = self._counts(region)
            creates.extend([region] * max(0, target - counts.idle - counts.starting))
        await asyncio.gather(*(self._create(region) for region in creates))

    async def _create(self, region: Region) -> None:
        assert self._limit is not None
        async with self._limit:
            sent = self._now()
            try:
                process = await self._client.processes.create_process(region, app_id=self._app_id)
            except HathoraError as exc:
                if exc.process_id is not None:
                    # The answer could not be read whole, yet it named the process: it exists.
                    pid = exc.process_id
                    self._tracked[pid] = PoolRecord(pid, region, self._now())
                elif exc.outcome_unknown:
                    self._unknown.setdefault(region, []).append(sent)
                self._note(exc)
                return
        now = self._now()
        pid = process.process_id
        self._tracked[pid] = PoolRecord(pid, region, now, process, now)

    async def _trim(self) -> None:
        doomed: list[str] = []
        for region, limit in self._max.items():
            # Oldest first (creation order breaks ties): the closest to being reaped.
            idle = [
                (entry.process.created_at, order, pid)
                for order, (pid, entry) in enumerate(self._tracked.items())
                if entry.region == region and entry.state == "idle" and entry.process is not None
            ]
            if len(idle) > limit:
                idle.sort()
                doomed.extend(pid for _, _, pid in idle[: len(idle) - limit])
        await asyncio.gather(*(self._trim_one(pid) for pid in doomed))

    async def _trim_one(self, process_id: str) -> None:
        """Stop a surplus idle process, if it still is one.

        It is read again first: the pass's poll may be old enough for a match
        to have landed on it since, and stopping it would end that match.
        """
        record = self._tracked[process_id]
        try:
            process = await self._read(process_id)
        except NotFoundError:
            await self._not_found(record)
            return
        except HathoraError as exc:
            self._note(exc)
            return
        self._saw(record, process)
        if process_id not in self._tracked or record.state != "idle":
            return  # ended on its own, or hosts rooms now: not the pool's to stop
        outcome = await self._stop_now(process_id)
        if outcome == "stopped":
            self._tracked.pop(process_id, None)
        elif outcome == "missing":
            await self._not_found(record)

    async def _stop_at_exit(self, process_id: str, check: bool) -> bool:
        """Stop a tracked process on exit; False when an error left it running.

        With ``check``, read it again first and spare it if it now hosts rooms
        or has ended. One that reads do not show is stopped anyway; a stop
        answered 404 is tried again while the create is recent (lag).
        """
        record = self._tracked[process_id]
        if check:
            try:
                process = await self._read(process_id)
            except NotFoundError:
                pass  # not visible (yet): made by the pool, so stopped all the same
            except HathoraError as exc:
                self._note(exc)
                return False
            else:
                self._saw(record, process)
                if process_id not in self._tracked or record.state == "busy":
                    return True
        while True:
            outcome = await self._stop_now(process_id)
            if outcome == "stopped":
                self._tracked.pop(process_id, None)
                return True
            if outcome == "error":
                return False
            if not self._lag(record):
                self._tracked.pop(process_id, None)
                self._lose(record, "not found by a stop", False)
                return True  # named by the warning, listed in lost_process_ids()
            await self._client._options.sleep(C.LAG_RETRY_INTERVAL)

    async def _stop_now(self, process_id: str) -> str:
        """Send a stop: ``"stopped"``, ``"missing"`` (404) or ``"error"`` (noted)."""
        assert self._limit is not None
        try:
            async with self._limit:
                await self._client.processes.stop_process(process_id, app_id=self._app_id)
        except NotFoundError:
            return "missing"
        except HathoraError as exc:
            self._note(exc)
            return "error"
        return "stopped"

    # -- looking at it -----------------------------------------------------

    @property
    def targets(self) -> dict[Region, int]:
        """The idle processes wanted per region."""
        return dict(self._targets)

    def _counts(self, region: Region) -> RegionCounts:
        states = Counter(e.state for e in self._tracked.values() if e.region == region)
        return RegionCounts(
            starting=states["starting"],
            idle=states["idle"],
            busy=states["busy"],
            failed=self._failed[region],
        )

    def snapshot(self) -> dict[Region, RegionCounts]:
        """Counts per region as of the last pass (cheap; no I/O)."""
        return {region: self._counts(region) for region in self._targets}

    def lost_process_ids(self) -> list[str]:
        """Ids of processes the pool lost track of (each logged at WARNING), oldest first.

        A process the pool made that reads still did not find after the grace
        window, or that a stop did not find: the pool tried to stop it and no
        longer counts it. It may still run if that stop failed.
        """
        return list(self._lost)

    def process_ids(self, region: Region | str | None = None) -> list[str]:
        """The ids of the processes the pool tracks (in ``region``, if given)."""
        if region is None:
            return list(self._tracked)
        wanted = coerce_region(region)
        return [pid for pid, e in self._tracked.items() if e.region == wanted]

    @property
    def ready(self) -> bool:
        """True when every region has at least its target of idle processes."""
        return all(self._counts(r).idle >= t for r, t in self._targets.items())

    async def wait_ready(self, *, timeout: float | None = None) -> None:
        """Wait until ``ready``; ``asyncio.TimeoutError`` after ``timeout`` seconds if given.

        Raises ``RuntimeError`` if the pool is closed first, and
        ``ClientClosedError`` (also a ``RuntimeError``) if its client is.
        """
        if self._changed is None or self._closed:
            raise RuntimeError("the WarmPool is not running: use it with 'async with'")
        changed = self._changed

        async def ready() -> None:
            async with changed:
                await changed.wait_for(
                    lambda: self.ready or self._closed or self._ended is not None
                )
            if self._closed:
                raise RuntimeError("the WarmPool was closed before it was ready")
            if not self.ready:
                raise ClientClosedError(
                    "the HathoraClient was closed before the WarmPool was ready"
                )

        if timeout is None:
            await ready()
        else:
            await asyncio.wait_for(ready(), timeout)

    def __repr__(self) -> str:
        targets = ", ".join(f"{r.value}: {t}" for r, t in self._targets.items())
        return f"WarmPool(targets={{{targets}}}, closed={self._closed})"
