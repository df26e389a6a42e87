"""``WarmPool``: keep idle running processes ready in each region.

The pool is three parts: the reconciler (``_reconcile``: a pure function from
observed state and targets to actions), the store (``_store``: where the
records, create intents, counts and the lease live; in memory, or in Redis
for many replicas) and this driver, the only part doing I/O. A single pool
and the leader of many replicas run the same code against different stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from . import _constants as C
from ._reconcile import (
    CreateIntent,
    ProcessRecord,
    RegionCounts,
    Rules,
    exit_stops,
    match_listing,
    new_intent,
    reconcile,
    record_of,
    regions_to_list,
    tally,
)
from ._store import (
    Commit,
    FencedOutError,
    MemoryPoolStore,
    PoolState,
    PoolStore,
    Snapshot,
    StoreError,
    Targets,
    keep_lease,
)
from ._strays import Changes, Sight, UnknownCreate, send_on_server_clock, server_date
from .errors import ClientClosedError, HathoraError, NotFoundError, RateLimitedError
from .models import ProcessStatus, Region, coerce_region
from .prealloc import Plan, _check_limit, check_plan
from .waiting import _positive_number, read_shared, watch_regions

if TYPE_CHECKING:
    from ._api import ApiClient

__all__ = ["RegionCounts", "WarmPool"]

logger = logging.getLogger(C.LOGGER_NAME)


@attrs.define
class _Ledger:
    """What part of a pass changed, to write to the store in one commit.

    Changes apply at once to ``records``, the pool's working view (what
    ``process_ids()`` shows while the pass runs).
    """

    records: dict[str, ProcessRecord]
    put: dict[str, ProcessRecord] = attrs.field(factory=dict)
    drop: set[str] = attrs.field(factory=set)
    drop_intents: set[str] = attrs.field(factory=set)
    failed: Counter[Region] = attrs.field(factory=Counter)

    def keep(self, record: ProcessRecord) -> None:
        self.put[record.process_id] = record
        self.records[record.process_id] = record

    def forget(self, record: ProcessRecord, *, failed: bool = False) -> None:
        self.put.pop(record.process_id, None)
        self.drop.add(record.process_id)
        self.records.pop(record.process_id, None)
        if failed:
            self.failed[record.region] += 1


def _missing(record: ProcessRecord) -> ProcessRecord:
    """A 404 for ``record``: a run of 404s began when it was last seen (or made)."""
    if record.missing_since is not None:
        return record
    return attrs.evolve(record, missing_since=record.seen_at)


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

    **Many replicas.** With ``store=`` a ``hathora_async.redis.RedisPoolStore``,
    replicas of one matchmaker share one pool: the replica holding the lease
    (``is_leader``) reconciles, the others read the leader's counts
    (``snapshot()``, ``ready``, ``process_ids()`` are the same everywhere) and
    take over within about two leases when it dies. Every create is written
    down as an intent before it is sent, so a successor adopts what a dead
    leader made. Store errors are backed off like API errors. Without
    ``store=`` the pool keeps its state in memory (``MemoryPoolStore``).
    Targets are global: the first replica to find none in the store stores
    its own; every replica then follows the stored ones (a replica given
    others logs a WARNING once). ``set_targets()`` changes them for all.

    The pool never forgets a process it made until it has seen it stopped
    (or failed) or has stopped it itself. Hathora's reads can lag behind its
    creates, so a 404 for a process less than ``READ_AFTER_CREATE_GRACE``
    (15 s) after it was last seen (or its create answered) means "not
    visible yet": the process is kept with its last known state (it is not
    trimmed meanwhile) and polled again. A process still not found after that,
    or found missing by a stop, is one the pool has lost track of: it logs its
    id at WARNING, tries to stop it anyway, and lists it in
    ``lost_process_ids()``.

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
    seconds before it) looks the same: when a listing shows more such
    unknown processes than the region's lost creates, the pool adopts none
    of them (it would stop another client's on exit), gives those creates up
    and lists the candidates in ``ambiguous_process_ids()`` (WARNING).

    A listing shows a region's 10 newest processes only, so the pool keeps a
    lost create's process among them until it is found: a create is sent
    only while every create of its region whose process is not known yet (in
    flight, or lost and looked for) has fewer than 6 of the pool's creates
    newer than it, across passes (3 of a listing's places are left for other
    clients'). A lost create's region is listed at once,
    after the region's creates in flight have answered and with its new
    creates held; a create its region cannot take in this pass is not sent
    (a later pass makes it). So a process a lost create made is adopted (and
    stopped on exit) unless listings lag past the grace window or other
    clients make more than 3 processes in its region after it. The cost: at
    most 7 creates per region are in flight (targets up to 7 fill as
    before); and a lost create that made nothing holds its region at 6
    newer creates until it is given up, the client's deadline plus 15 s
    after it was sent. A new leader counts a predecessor's lost creates
    from the store (the processes and intents of the region that may be
    newer).

    Endpoints: ``GET /processes/v2/{appId}/list/latest`` and ``GET
    /processes/v2/{appId}/info/{processId}`` to watch,
    ``POST /processes/v2/{appId}/create/{region}`` to fill and
    ``POST /processes/v2/{appId}/stop/{processId}`` to trim and on exit. Times
    are in seconds (defaults: ``poll_interval`` 5, ``max_backoff`` 60;
    ``concurrency`` 8). The pool raises no API error: each is counted in
    ``errors``, kept as ``last_error`` (an ``HathoraError``) and logged at
    WARNING. A create answered 404 (a region the app cannot use) is retried
    like any error: check ``last_error`` to give up. The constructor raises
    ``ValueError`` for bad targets or options.

    ``concurrency`` bounds the pool's requests in flight. ``sleep`` is the
    pool's own wait between passes (default ``asyncio.sleep``, not the
    client's, so a test clock on the client does not spin the pool).

    On exit the pool lets a pass in progress finish. A replica that leaves
    while others remain hands the lease over and stops nothing. The last one
    (or a single pool), with ``stop_on_exit``, stops the pool's starting and
    idle processes, including those reads do not show yet (a stop answered
    404 within the grace window is tried again until it ends, so an exit can
    take up to that long). Busy processes host matches, so they are left
    running unless ``stop_busy_on_exit``; Hathora stops them once idle. Since
    a match may have landed after the last pass, each process is read again
    right before it is stopped (on exit and when trimming) and spared if it
    now has rooms or is no longer starting or running; a match landing in the
    few milliseconds between that read and the stop cannot be seen. Processes
    the exit could not stop (API errors, a closed client) are logged at
    WARNING by id and stay in ``process_ids()``.
    """

    def __init__(
        self,
        client: ApiClient,
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
        store: PoolStore | None = None,
    ) -> None:
        checked = check_plan(targets)
        # The targets this replica was given; those in force are the store's.
        self._given = Targets(checked, _check_max(max_per_region, checked))
        self._grace = C.READ_AFTER_CREATE_GRACE  # read now: tests shorten it
        self._use(self._given)
        self._targets_seen = False
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
        self._store: PoolStore = store if store is not None else MemoryPoolStore()
        self._clock = client._options.clock
        # The pool's "now" is epoch seconds (records are shared by replicas),
        # advancing with the client's clock (so a test clock drives it too).
        self._epoch = time.time() - self._clock()
        # The latest Date header seen, and when (client clock): the server's clock.
        self._server: tuple[float, float] | None = None
        # The last state read or written: what snapshot() and friends report.
        self._records: dict[str, ProcessRecord] = {}
        self._counts: dict[Region, RegionCounts] = {}
        # Processes the pool lost track of, and whether a stop of each was confirmed.
        self._lost: dict[str, bool] = {}
        # Intents whose create this replica is sending, and when each left (client clock).
        self._in_flight: set[str] = set()
        self._sent: dict[str, float] = {}
        # Ids listings showed that fit an intent but were not taken: others'.
        self._not_ours: set[str] = set()
        # Candidates of ambiguous listings (some may be the pool's): never adopted.
        self._ambiguous: dict[str, None] = {}
        # Per region, the creates whose process is not known yet (in flight, or
        # lost and looked for), by intent id: a create is sent only while each
        # has fewer than STRAY_SIGHT newer ones, so a lost create's process stays
        # among the 10 a listing shows until found (see ``_strays.Sight``).
        self._sights: dict[Region, Sight] = {}
        self._entries: dict[str, tuple[Region, UnknownCreate]] = {}
        self._changes = Changes()
        # What the store looked like at the last load: its epoch and commit count
        # (to notice a data loss), the intents it held, and when (client clock)
        # this replica first saw each intent: intents' ages are measured on this
        # replica's own clock, never by comparing its wall clock with the writer's.
        self._epoch_seen: str | None = None
        self._seq_seen = 0
        self._known_intents: dict[str, CreateIntent] = {}
        self._first_seen: dict[str, float] = {}
        self._holding = False
        self._mismatch_logged = False
        self._delay = self._poll_interval
        self._retry_after: float | None = None
        # Set when the client was closed: the background task has ended.
        self._ended: ClientClosedError | None = None
        self._task: asyncio.Task[None] | None = None
        self._lease: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._changed: asyncio.Condition | None = None
        self._limit: asyncio.Semaphore | None = None
        self._sleeping = False
        self._closing = False
        self._closed = False
        self.errors = 0
        """API and store errors met since the pool started."""
        self.last_error: HathoraError | None = None
        """The most recent API or store error, or None."""

    def _use(self, targets: Targets) -> None:
        """Put ``targets`` in force (what reconciles, ``snapshot()`` and ``ready`` use)."""
        self._targets = dict(targets.targets)
        self._max = dict(targets.max_per_region)
        grace = self._grace
        self._rules = Rules(self._targets, self._max, intent_grace=grace, give_up_missing=grace)

    def _follow_targets(self, stored: Targets) -> None:
        """Follow the store's targets; say once if they are not the ones this replica was given."""
        current = Targets(self._targets, self._max)
        if stored != current:
            if self._targets_seen:
                logger.info(
                    "warm pool %s: targets are now %s (max %s), were %s (max %s)",
                    self._store.name,
                    _plan(stored.targets),
                    _plan(stored.max_per_region),
                    _plan(current.targets),
                    _plan(current.max_per_region),
                )
            self._use(stored)
        self._targets_seen = True
        if stored != self._given and not self._mismatch_logged:
            self._mismatch_logged = True
            logger.warning(
                "warm pool %s: the pool's stored targets are %s (max %s); replica %s was "
                "given %s (max %s): the stored ones apply (change them with set_targets())",
                self._store.name,
                _plan(stored.targets),
                _plan(stored.max_per_region),
                self._store.replica_id,
                _plan(self._given.targets),
                _plan(self._given.max_per_region),
            )

    async def set_targets(self, targets: Plan, *, max_per_region: int | Plan | None = None) -> None:
        """Change the pool's targets, for every replica; validated as the constructor's.

        ``targets`` and ``max_per_region`` are as for ``WarmPool(...)`` and are
        checked before any I/O (``ValueError``/``TypeError``). One atomic store
        write replaces the targets the pool's replicas share: this replica
        uses them at once, the others (the leader included) at their next
        pass, so the pool grows or trims to them. Raises ``RuntimeError`` once
        the pool is closed and ``StoreError`` (``StoreUnavailableError``: the
        outcome is unknown; call again) when the store fails. If cancelled
        while writing, the write may or may not have landed.
        """
        checked = check_plan(targets)
        wanted = Targets(checked, _check_max(max_per_region, checked))
        if self._closed:
            raise RuntimeError("the WarmPool is closed")
        await self._store.set_targets(wanted)
        self._given = wanted
        self._follow_targets(wanted)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()  # ready may have changed

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> WarmPool:
        if self._task is not None or self._closed:
            raise RuntimeError("a WarmPool can be entered only once")
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._limit = asyncio.Semaphore(self._concurrency)
        loop = asyncio.get_running_loop()
        tried = asyncio.Event()
        self._lease = loop.create_task(keep_lease(self._store, tried=tried))
        # Enter knowing whether this replica leads (one store round trip or two).
        waiter = loop.create_task(tried.wait())
        try:
            await asyncio.wait({self._lease, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not tried.is_set():  # cancelled, or a bug ended the lease task
                self._lease.cancel()
                await asyncio.gather(self._lease, return_exceptions=True)
                self._closed = True
        if self._lease.done():
            self._lease.result()  # raises what ended it
        self._task = loop.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the background task, then hand over or stop processes. Safe to call twice."""
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
            if self._lease is not None:
                self._lease.cancel()
                await asyncio.gather(self._lease, return_exceptions=True)
            if self._changed is not None:
                async with self._changed:
                    self._changed.notify_all()  # wake wait_ready() callers
        try:
            await self._leave()
        finally:
            with contextlib.suppress(StoreError):
                await self._store.release()

    async def _remaining(self) -> int | None:
        """How many other replicas live on (None: unknown).

        Those that heartbeated within a lease count; if some did, ask again
        after more than a lease (handing the lease over meanwhile): a live
        replica has heartbeated since, a crashed one no longer counts.
        """
        store = self._store
        try:
            remaining = await store.leave()
            if remaining and math.isfinite(store.lease_ttl):
                with contextlib.suppress(StoreError):
                    await store.release()
                await asyncio.sleep(C.LEAVE_RECHECK_LEASES * store.lease_ttl)
                remaining = await store.leave()
        except StoreError as exc:
            # Who remains is unknown: stopping could end another replica's pool.
            logger.warning(
                "warm pool %s: could not leave the store (%s); stopping nothing", store.name, exc
            )
            return None
        return remaining

    async def _leave(self) -> None:
        """Hand over to the replicas that remain, or (the last) stop the pool's processes."""
        store = self._store
        remaining = await self._remaining()
        if remaining is None:
            return
        if remaining:
            logger.info(
                "warm pool %s: replica %s left; %d replica(s) keep the pool",
                store.name,
                store.replica_id,
                remaining,
            )
            return
        if not self._stop_on_exit:
            return
        fence = await self._lead_for_exit()
        if fence is None:
            logger.warning(
                "warm pool %s: the last replica could not take the lease to stop the pool's "
                "processes; Hathora's idle reaper stops them",
                store.name,
            )
            return
        # Renew the lease through the exit: a long exit must not outlive it.
        renewing = asyncio.get_running_loop().create_task(self._renew_until_cancelled())
        try:
            await self._stop_everything(fence)
        except FencedOutError:
            logger.warning("warm pool %s: another replica took over during the exit", store.name)
        except StoreError as exc:
            self._note(exc)
            logger.warning("warm pool %s: the exit could not finish: %s", store.name, exc)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _renew_until_cancelled(self) -> None:
        store = self._store
        tick = store.lease_ttl / 3 if math.isfinite(store.lease_ttl) else 3600.0
        while True:
            await asyncio.sleep(tick)
            with contextlib.suppress(StoreError):
                await store.renew()  # once lost, the fence checks refuse every stop

    async def _lead_for_exit(self) -> int | None:
        """Take the lease for the exit, waiting out a predecessor's lease; its fence."""
        deadline = time.monotonic() + 2 * self._store.lease_ttl
        while True:
            with contextlib.suppress(StoreError):
                if await self._store.acquire():
                    return self._store.fence
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(0.1, self._store.lease_ttl / 10))

    async def _stop_everything(self, fence: int) -> None:
        await self._reconcile_on_exit(fence)
        state = await self._load()
        records = self._records = dict(state.records)
        ledger = _Ledger(records)
        doomed = [
            records[pid] for pid in exit_stops(records.values(), stop_busy=self._stop_busy_on_exit)
        ]
        check = not self._stop_busy_on_exit
        stopped = await asyncio.gather(
            *(self._stop_at_exit(r, fence, check, ledger) for r in doomed)
        )
        unstopped = [pid for pid, ok in self._lost.items() if not ok]
        again = await asyncio.gather(*(self._stop_now(pid, fence) for pid in unstopped))
        for pid, outcome in zip(unstopped, again, strict=True):
            self._lost[pid] = outcome == "stopped"
        self._end_pass(records, ledger.failed, self._failed(state))
        await self._store.commit(self._commit(ledger, fence, snapshot=True), fence=fence)
        left = [r.process_id for r, ok in zip(doomed, stopped, strict=True) if not ok]
        left += [pid for pid, ok in self._lost.items() if not ok]
        # Never abandon billed processes silently: say which ones still run.
        if left:
            logger.warning(
                "warm pool: could not stop %d process(es), they may still run: %s (%s)",
                len(left),
                ", ".join(left),
                self.last_error,
            )
        regions = Counter(
            i.region for i in state.intents.values() if i.intent_id not in self._in_flight
        )
        for region, count in regions.items():
            logger.warning(
                "warm pool: could not look for processes that %d create(s) with unknown "
                "outcome may have made in %s; Hathora's idle reaper stops them",
                count,
                region.value,
            )

    async def _reconcile_on_exit(self, fence: int) -> None:
        """Look for strays until found, or until every lost create's grace has ended."""
        while True:
            state = await self._load()
            if not regions_to_list(state.intents.values(), self._in_flight):
                return
            latest = max(self._local_sent(i) + i.window for i in state.intents.values())
            await self._lead(fence, act=False)
            if self._now() >= latest + C.READ_AFTER_CREATE_GRACE:
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
        """Run one pass now and return the new ``snapshot()`` (``RegionCounts`` per region).

        The leader polls, adopts, replaces and trims; a follower reads the
        leader's state. The background task runs the same pass; calls never
        overlap. Raises ``ClientClosedError`` when the client is (or gets) closed.
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
            fence = self._store.fence
            store_failed = False
            try:
                if fence is None:
                    await self._follow()
                else:
                    await self._lead(fence, act=True)
            except FencedOutError as exc:
                logger.info("warm pool %s: pass abandoned: %s", self._store.name, exc)
            except StoreError as exc:
                self._note(exc)
                store_failed = True
            if self.errors == errors_before:
                self._delay = self._poll_interval
            else:
                backoff = min(self._max_backoff, max(self._poll_interval, self._delay * 2))
                if self._retry_after is not None:
                    backoff = max(backoff, min(self._retry_after, self._max_backoff))
                if store_failed:
                    # Leadership moves on the lease's time: a replica that takes the
                    # lease once the store is back must not sleep through it.
                    backoff = min(backoff, max(self._poll_interval, self._store.lease_ttl))
                self._delay = backoff
        async with self._changed:
            self._changed.notify_all()
        if self._client.closed:
            raise ClientClosedError("the HathoraClient was closed: the WarmPool cannot run")
        return self.snapshot()

    async def _load(self) -> PoolState:
        """The store's state; after a data loss, first put back what this replica knew.

        A loss shows as an epoch other than the one seen before (or none), or
        fewer commits than seen before within it. Every replica that notices
        restores its last loaded records and the intents it knew (its own
        unconfirmed creates included); the leader acts on nothing meanwhile
        (``PoolState.recovering``).
        """
        store = self._store
        state = await store.load()
        seen = self._epoch_seen
        if seen is not None and (
            state.epoch != seen or (state.epoch == seen and state.seq < self._seq_seen)
        ):
            logger.warning(
                "warm pool %s: the store lost its data (epoch %s, was %s); replica %s puts "
                "back the %d process(es) and %d create(s) it knew",
                store.name,
                state.epoch,
                seen,
                store.replica_id,
                len(self._records),
                len(self._known_intents),
            )
            ttl = store.lease_ttl if math.isfinite(store.lease_ttl) else 0.0
            hold = C.RECOVERY_HOLD_LEASES * max(ttl, self._poll_interval)
            await store.restore(
                self._records.values(), self._known_intents.values(), seen=seen, hold=hold
            )
            state = await store.load()
        stored = state.targets
        if stored is None:  # none yet (or lost with the rest): the first writer wins
            stored = await store.claim_targets(Targets(self._targets, self._max))
        self._follow_targets(stored)
        if state.epoch is not None:
            if state.epoch != self._epoch_seen:
                self._seq_seen = 0
            self._epoch_seen = state.epoch
            self._seq_seen = max(self._seq_seen, state.seq)
        self._known_intents = dict(state.intents)
        now = self._clock()
        self._first_seen = {
            iid: self._first_seen.get(iid, now) for iid in (*state.intents, *self._sent)
        }
        return state

    def _local_sent(self, intent: CreateIntent) -> float:
        """When this replica sent ``intent``, or first saw it: on its own clock, as epoch s."""
        at = self._sent.get(intent.intent_id, self._first_seen.get(intent.intent_id))
        return intent.sent_at if at is None else self._epoch + at

    async def _follow(self) -> None:
        """A follower's pass: the leader's records and counts, and nothing else."""
        state = await self._load()
        self._records = dict(state.records)
        snap = state.snapshot
        if snap is None:
            return
        self._counts = dict(snap.counts)

    async def _lead(self, fence: int, *, act: bool) -> None:
        """A leader's pass: poll, list for strays, reconcile, commit; then (``act``) create, trim.

        Every write carries ``fence``: after losing the lease, nothing this
        pass learnt reaches the store, and nothing more is sent.
        """
        state = await self._load()
        if state.recovering != self._holding:
            self._holding = state.recovering
            if act:
                logger.warning(
                    "warm pool %s: %s",
                    self._store.name,
                    "replicas are restoring the store's lost data; the leader waits"
                    if state.recovering
                    else "restored; the leader acts again",
                )
        act = act and not state.recovering
        records = dict(state.records)
        # Coalesced polling (issue 12): a listing per region answers the records it shows.
        with watch_regions(self._client, self._app_id, (r.region for r in records.values())):
            polled = await asyncio.gather(*(self._poll(r) for r in records.values()))
        records = {r.process_id: r for r in polled}
        intents = dict(state.intents)
        listings = await self._list(intents)
        # Ages on this replica's clock: when it sent each intent, or first saw it.
        local = [attrs.evolve(i, sent_at=self._local_sent(i)) for i in intents.values()]
        actions = reconcile(
            self._rules,
            records,
            local,
            now=self._now(),
            in_flight=self._in_flight,
            listings=listings,
            failed=self._failed(state),
            not_ours=self._not_ours,
        )
        self._not_ours.update(actions.foreign)
        self._unclaimed(actions.ambiguous)
        settled = {a.intent_id for a in actions.adoptions} | set(actions.expired)
        self._sync_sights({k: i for k, i in intents.items() if k not in settled}, records)
        ledger = _Ledger(records)
        for record in polled:
            if record != state.records[record.process_id]:
                ledger.keep(record)
        lost = []
        for drop in actions.drops:
            if drop.reason == "missing":
                lost.append(records[drop.process_id])
            ledger.forget(records[drop.process_id])
        for adoption in actions.adoptions:
            ledger.keep(adoption.record)
            _log_adopted(adoption.record)
        ledger.drop_intents.update(a.intent_id for a in actions.adoptions)
        ledger.drop_intents.update(actions.expired)
        # Before any create leaves, its intent is in the store (the same commit).
        now, server = self._now(), self._server_now()
        window = self._client._options.timeouts.total
        creates = [
            new_intent(region, fence=fence, now=now, server_sent=server, window=window)
            for region, n in (actions.creates.items() if act else ())
            for _ in range(n)
        ]
        fixed = [i for i in intents.values() if i != state.intents[i.intent_id]]
        for iid in ledger.drop_intents:
            self._sent.pop(iid, None)
        self._records = records
        failed = Counter({r: c.failed for r, c in actions.counts.items()})
        if creates:
            # The intents must be in the store before their creates leave; the
            # counts too (the drops' failures), in case this replica dies now.
            self._end_pass(records, Counter(), failed)
            first = self._commit(ledger, fence, intents=(*fixed, *creates), snapshot=True)
            await self._store.commit(first, fence=fence)
            now_c = self._clock()
            for intent in creates:
                self._known_intents[intent.intent_id] = intent
                self._first_seen.setdefault(intent.intent_id, now_c)
            after, fixed = _Ledger(records), []
        else:
            after = ledger  # one write for the whole pass
        stops = actions.stops if act else ()
        await asyncio.gather(
            *(self._lose(record, fence) for record in lost),
            *(self._create(intent, fence, after) for intent in creates),
            *(self._trim_one(records[pid], fence, after) for pid in stops),
        )
        self._end_pass(records, after.failed, failed)
        final = self._commit(after, fence, intents=fixed, snapshot=True)
        await self._store.commit(final, fence=fence)

    def _failed(self, state: PoolState) -> dict[Region, int]:
        counts = state.snapshot.counts if state.snapshot is not None else self._counts
        return {region: c.failed for region, c in counts.items()}

    def _end_pass(
        self,
        records: dict[str, ProcessRecord],
        failed_now: Counter[Region],
        failed: Mapping[Region, int],
    ) -> None:
        """Adopt the pass's records and compute the counts to publish."""
        self._records = records
        self._counts = tally(records.values(), self._targets, Counter(failed) + failed_now)

    def _commit(
        self,
        ledger: _Ledger,
        fence: int,
        *,
        intents: Iterable[CreateIntent] = (),
        snapshot: bool,
    ) -> Commit:
        """The store write for ``ledger``; with ``snapshot``, the counts ``_end_pass`` made."""
        snap = None
        if snapshot:
            snap = Snapshot(
                counts=dict(self._counts),
                targets=dict(self._targets),
                max_per_region=dict(self._max),
                leader=self._store.replica_id,
                fence=fence,
                written_at=self._now(),
            )
        return Commit(
            put_records=tuple(ledger.put.values()),
            drop_records=tuple(ledger.drop),
            put_intents=tuple(intents),
            drop_intents=tuple(ledger.drop_intents),
            snapshot=snap,
        )

    def _note(self, error: HathoraError) -> None:
        self.errors += 1
        self.last_error = error
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            self._retry_after = max(self._retry_after or 0.0, error.retry_after)
        if not isinstance(error, ClientClosedError):  # said once, by the loop or the exit
            logger.warning("warm pool: %s", error)

    def _now(self) -> float:
        """The pool's clock: epoch seconds, moving with the client's clock."""
        return self._epoch + self._clock()

    def _observe(self, headers: Mapping[str, str]) -> None:
        date = server_date(headers)
        if date is not None:
            self._server = (date.timestamp(), self._clock())

    def _server_now(self) -> float:
        """The server's clock now, as best known; early rather than late."""
        if self._server is None:
            # No Date seen yet: the local clock with the usual allowance for skew.
            return self._now() - C.STRAY_CLOCK_SKEW + C.STRAY_SERVER_CLOCK_MARGIN
        date, at = self._server
        return date + (self._clock() - at)

    def _lag(self, record: ProcessRecord) -> bool:
        """Whether a 404 for the process may still be read lag (made or seen lately)."""
        return self._now() < record.seen_at + C.READ_AFTER_CREATE_GRACE

    async def _read(self, process_id: str) -> ProcessRecord:
        """The process as the API sees it now; raises ``NotFoundError`` and the like."""
        assert self._limit is not None
        async with self._limit:
            response = await self._client.processes.get_process_info_with_http_info(
                process_id, app_id=self._app_id
            )
        self._observe(response.headers)
        return record_of(response.data, now=self._now())

    async def _poll(self, record: ProcessRecord) -> ProcessRecord:
        try:
            # Coalesced polling (issue 12): the region's shared listing, else its own read.
            deadline = self._clock() + self._client.timeouts.total
            seen = await read_shared(
                self._client,
                record.process_id,
                record.region,
                app_id=self._app_id,
                deadline=deadline,
                interval=self._poll_interval,
            )
            if seen is not None:
                return record_of(seen, now=self._now())
            return await self._read(record.process_id)
        except NotFoundError:
            logger.debug("warm pool: process %s not visible", record.process_id)
            return _missing(record)
        except HathoraError as exc:
            self._note(exc)
            return record

    async def _list(self, intents: dict[str, CreateIntent]) -> dict[Region, list[ProcessRecord]]:
        """List the regions where an intent may have made a process; fix this replica's intents.

        An intent this replica sent is placed on the server's clock with the
        listing's own ``Date`` header and the client's clock (exact whatever
        the skew), and written back so a successor has it.
        """
        regions = regions_to_list(intents.values(), self._in_flight)
        listings: dict[Region, list[ProcessRecord]] = {}

        async def one(region: Region) -> None:
            assert self._limit is not None
            try:
                async with self._limit:
                    response = await self._client.processes.get_latest_processes_with_http_info(
                        region=[region], app_id=self._app_id
                    )
            except HathoraError as exc:
                self._note(exc)
                return
            self._observe(response.headers)
            now = self._now()
            listings[region] = [record_of(p, now=now) for p in response.data]
            for iid, intent in intents.items():
                sent = self._sent.get(iid)
                if intent.region == region and sent is not None:
                    estimate, _ = send_on_server_clock(response.headers, self._clock() - sent)
                    intents[iid] = attrs.evolve(intent, server_sent=estimate.timestamp())

        await asyncio.gather(*(one(region) for region in regions))
        return listings

    async def _create(self, intent: CreateIntent, fence: int, ledger: _Ledger) -> None:
        """Send ``intent``'s create once its region's sight admits it; look at once if lost."""
        entry = await self._admit(intent.region)
        if entry is None:
            ledger.drop_intents.add(intent.intent_id)  # never sent: it made nothing
            return
        self._entries[intent.intent_id] = (intent.region, entry)
        try:
            lost = await self._send(intent, fence, ledger)
        except BaseException:
            entry.lost = True  # cancelled in flight: the next pass looks for its process
            self._changes.notify()
            raise
        if not lost:
            self._settle(intent.intent_id)
            return
        entry.lost = True
        await self._search(intent.region, ledger)

    async def _send(self, intent: CreateIntent, fence: int, ledger: _Ledger) -> bool:
        """The create itself; True when its outcome is unknown (it may have made a process)."""
        assert self._limit is not None
        async with self._limit:
            if self._store.fence != fence:
                return False  # no longer leads: the intent is a successor's to settle
            self._in_flight.add(intent.intent_id)
            self._sent[intent.intent_id] = self._clock()
            try:
                response = await self._client.processes.create_process_with_http_info(
                    intent.region, app_id=self._app_id
                )
            except HathoraError as exc:
                self._note(exc)
                if exc.process_id is not None:
                    # The answer could not be read whole, yet it named the process: it exists.
                    now = self._now()
                    pid = exc.process_id
                    ledger.keep(
                        ProcessRecord(pid, intent.region, ProcessStatus.STARTING, 0, now, now)
                    )
                    ledger.drop_intents.add(intent.intent_id)
                    return False
                if not exc.outcome_unknown:
                    ledger.drop_intents.add(intent.intent_id)  # known to have made nothing
                    return False
                return True  # the intent stays: looked for now, and by later passes
            finally:
                self._in_flight.discard(intent.intent_id)
        self._observe(response.headers)
        record = record_of(response.data, now=self._now())
        self._sent.pop(intent.intent_id, None)
        ledger.keep(record)
        ledger.drop_intents.add(intent.intent_id)
        return False

    # -- keeping lost creates in sight -------------------------------------

    async def _admit(self, region: Region) -> UnknownCreate | None:
        """Enter a create in ``region``'s sight, waiting while creates in flight or a
        search hold it; None when a lost create already has ``STRAY_SIGHT`` newer
        ones (its region creates no more until a later pass finds or gives it up)."""
        sight = self._sights.setdefault(region, Sight())
        while not sight.admits():
            if not sight.held and sight.stuck():
                return None
            await self._changes.wait()
        return sight.enter(self._clock())

    def _settle(self, intent_id: str) -> None:
        """The create's process is known, or none was made: it leaves its region's sight."""
        item = self._entries.pop(intent_id, None)
        if item is not None:
            region, entry = item
            self._sights[region].open.remove(entry)
            self._changes.notify()

    def _sync_sights(
        self, intents: Mapping[str, CreateIntent], records: Mapping[str, ProcessRecord]
    ) -> None:
        """Line the sights up with the store's open ``intents`` at a pass's start.

        An entry whose intent is settled leaves; one not in flight is lost. An
        intent this replica did not send (a predecessor's, or put back after a
        data loss) enters as lost, as many newer creates counted as the pool
        has processes and intents in its region that may be newer than it.
        """
        for intent_id in [i for i in self._entries if i not in intents]:
            self._settle(intent_id)
        for intent_id, (_, entry) in self._entries.items():
            if intent_id not in self._in_flight:
                entry.lost = True
        for intent_id, intent in intents.items():
            if intent_id in self._entries or intent_id in self._in_flight:
                continue
            region = intent.region
            bound = -math.inf if intent.server_sent is None else intent.server_sent
            bound -= self._rules.skew
            newer = sum(r.region == region and r.created_at >= bound for r in records.values())
            newer += sum(
                i.region == region and i.sent_at > intent.sent_at for i in intents.values()
            )
            entry = UnknownCreate(self._clock(), newer, lost=True)
            self._sights.setdefault(region, Sight()).open.append(entry)
            self._entries[intent_id] = (region, entry)

    async def _search(self, region: Region, ledger: _Ledger) -> None:
        """Look for the processes of ``region``'s lost creates now, and adopt them.

        The region's new creates are held and those in flight answered first,
        so every process the pool made there is known and none is taken for a
        stray. One look: a process reads do not show yet is left to later
        passes (the sight keeps the region's creates from pushing it out).
        A search already running covers the creates lost meanwhile.
        """
        sight = self._sights[region]
        if sight.searching:
            return
        sight.searching = sight.held = True
        try:
            while sight.in_flight():
                await self._changes.wait()
            waiting = {
                intent_id: self._known_intents[intent_id]
                for intent_id, (where, entry) in self._entries.items()
                if where == region and entry.lost and intent_id in self._known_intents
            }
            listed = (await self._list(waiting)).get(region) if waiting else None
            if listed is None:
                return
            pairs, foreign, unclear = match_listing(
                region,
                list(waiting.values()),
                listed,
                known=ledger.records,
                not_ours=self._not_ours,
                skew=self._rules.skew,
            )
            self._not_ours.update(foreign)
            if unclear:
                self._unclaimed(foreign)
                for intent_id in waiting:
                    self._searched(intent_id, ledger)
            for intent, record in pairs:
                ledger.keep(record)
                self._searched(intent.intent_id, ledger)
                _log_adopted(record)
        finally:
            sight.searching = sight.held = False
            self._changes.notify()

    def _searched(self, intent_id: str, ledger: _Ledger) -> None:
        """A lost create's search has ended for it (adopted, or given up as ambiguous)."""
        ledger.drop_intents.add(intent_id)
        self._sent.pop(intent_id, None)
        self._settle(intent_id)

    async def _trim_one(self, record: ProcessRecord, fence: int, ledger: _Ledger) -> None:
        """Stop a surplus idle process, if it still is one.

        It is read again first: the pass's poll may be old enough for a match
        to have landed on it since, and stopping it would end that match.
        """
        try:
            fresh = await self._read(record.process_id)
        except NotFoundError:
            ledger.keep(_missing(record))
            return
        except HathoraError as exc:
            self._note(exc)
            return
        if fresh.state == "ended":
            ledger.forget(fresh, failed=True)
            return
        ledger.keep(fresh)
        if fresh.state != "idle" or self._store.fence != fence:
            return  # hosts rooms now, or this replica no longer leads
        outcome = await self._stop_now(record.process_id, fence)
        if outcome == "stopped":
            ledger.forget(fresh)
        elif outcome == "missing":
            ledger.keep(_missing(fresh))

    async def _lose(self, record: ProcessRecord, fence: int) -> None:
        """A process reads have not found for the whole grace: stop it anyway, report it."""
        stopped = await self._stop_now(record.process_id, fence) == "stopped"
        self._report_lost(record, "not found", stopped)

    def _report_lost(self, record: ProcessRecord, why: str, stopped: bool) -> None:
        self._lost[record.process_id] = stopped
        logger.warning(
            "warm pool: lost track of process %s in %s (%s %.0f s after it was last seen); %s",
            record.process_id,
            record.region.value,
            why,
            self._now() - record.seen_at,
            "stopped it" if stopped else "could not stop it: it may still run, billed",
        )

    async def _stop_at_exit(
        self, record: ProcessRecord, fence: int, check: bool, ledger: _Ledger
    ) -> bool:
        """Stop a process on exit; False when an error left it running.

        With ``check``, read it again first and spare it if it now hosts rooms
        or has ended. One that reads do not show is stopped anyway; a stop
        answered 404 is tried again while it may be lag.
        """
        if check:
            try:
                fresh = await self._read(record.process_id)
            except NotFoundError:
                pass  # not visible (yet): made by the pool, so stopped all the same
            except HathoraError as exc:
                self._note(exc)
                return False
            else:
                if fresh.state == "ended":
                    ledger.forget(fresh, failed=True)
                    return True
                ledger.keep(fresh)
                if fresh.state == "busy":
                    return True
        while True:
            outcome = await self._stop_now(record.process_id, fence)
            if outcome == "stopped":
                ledger.forget(record)
                return True
            if outcome != "missing":
                return False
            if not self._lag(record):
                ledger.forget(record)
                self._report_lost(record, "not found by a stop", False)
                return True  # named by the warning, listed in lost_process_ids()
            await self._client._options.sleep(C.LAG_RETRY_INTERVAL)

    async def _confirm(self, fence: int) -> bool:
        """Whether ``fence`` still leads, asked of the store itself (a fenced empty write).

        A leader's local belief can outlive its lease in the store (the store
        lost its data, or a pause): a stop, like a create, is sent only after
        the store accepted a write under the fence.
        """
        if self._store.fence != fence:
            return False
        try:
            await self._store.commit(Commit(), fence=fence)
        except FencedOutError:
            return False
        except StoreError as exc:
            self._note(exc)
            return False
        return True

    async def _stop_now(self, process_id: str, fence: int) -> str:
        """Send a stop under ``fence``: ``"stopped"``, ``"missing"`` (404), ``"error"``
        (noted) or ``"fenced"`` (this replica no longer leads: nothing sent)."""
        assert self._limit is not None
        try:
            async with self._limit:
                if not await self._confirm(fence):
                    return "fenced"
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
        """The idle processes wanted per region: the pool's stored targets once read.

        With many replicas these are global, whatever this replica was given
        (a mismatch is logged once); ``set_targets()`` changes them.
        """
        return dict(self._targets)

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the pool's lease: it alone creates and stops."""
        return self._store.is_leader

    @property
    def store(self) -> PoolStore:
        """Where the pool's state lives (a ``MemoryPoolStore`` unless one was given)."""
        return self._store

    def snapshot(self) -> dict[Region, RegionCounts]:
        """Counts per target region as of the leader's last pass (cheap; no I/O).

        Every replica reports the same counts: a follower's come from the
        leader's last pass, read at its own last pass.
        """
        return {region: self._counts.get(region, RegionCounts()) for region in self._targets}

    def ambiguous_process_ids(self) -> list[str]:
        """Ids of processes lost creates may have made that could not be told from
        other clients' (each logged at WARNING), oldest first.

        A region's listing showed more unknown processes in a lost create's
        window than the pool had lost creates there: some are the pool's (at
        most as many as those creates), the others another client's, and
        nothing tells which (Hathora's processes carry no client tag). The pool
        adopts none of them (it would stop another client's on exit) and gives
        the lost creates up: those of its own stay until Hathora's idle timeout
        stops them, unless the caller stops them.
        """
        return list(self._ambiguous)

    def _unclaimed(self, ids: Iterable[str]) -> None:
        new = [pid for pid in ids if pid not in self._ambiguous]
        if not new:
            return
        self._ambiguous.update(dict.fromkeys(new))
        logger.warning(
            "warm pool: %d process(es) may have been made by creates whose answer was "
            "lost, or by another client: not adopted (see ambiguous_process_ids()): %s",
            len(new),
            ", ".join(new),
            extra={C.LOG_AMBIGUOUS: tuple(new)},
        )

    def lost_process_ids(self) -> list[str]:
        """Ids of processes this replica lost track of (each logged at WARNING), oldest first.

        A process the pool made that reads still did not find after the grace
        window, or that a stop did not find: the pool tried to stop it and no
        longer counts it. It may still run if that stop failed.
        """
        return list(self._lost)

    def process_ids(self, region: Region | str | None = None) -> list[str]:
        """The ids of the processes the pool tracks (in ``region``, if given)."""
        if region is None:
            return list(self._records)
        wanted = coerce_region(region)
        return [pid for pid, r in self._records.items() if r.region == wanted]

    def busy_process_ids(self) -> list[str]:
        """The ids of the tracked processes hosting rooms (or draining), as last read.

        After the exit, these are the ones it left running on purpose: stopping
        one would end the matches it hosts. The rest of ``process_ids()`` then
        are those it did not stop (``stop_on_exit=False``, or a stop failed).
        """
        return [pid for pid, record in self._records.items() if record.state == "busy"]

    @property
    def ready(self) -> bool:
        """True when every region has at least its target of idle processes."""
        counts = self.snapshot()
        return all(counts[r].idle >= t for r, t in self._targets.items())

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


def _check_max(max_per_region: int | Plan | None, targets: dict[Region, int]) -> dict[Region, int]:
    """The cap per target region, validated against ``targets``."""
    if max_per_region is None:
        return dict(targets)
    if isinstance(max_per_region, Mapping):
        given = check_plan(max_per_region)
        unknown = set(given) - set(targets)
        if unknown:
            names = ", ".join(sorted(r.value for r in unknown))
            raise ValueError(f"max_per_region names regions without a target: {names}")
        limits = {r: given.get(r, t) for r, t in targets.items()}
    else:
        if isinstance(max_per_region, bool) or not isinstance(max_per_region, int):
            raise ValueError(f"max_per_region must be an int, got {max_per_region!r}")
        limits = dict.fromkeys(targets, max_per_region)
    for region, limit in limits.items():
        if limit < targets[region]:
            raise ValueError(
                f"max_per_region for {region.value} ({limit}) is below its target "
                f"({targets[region]})"
            )
    return limits


def _log_adopted(record: ProcessRecord) -> None:
    logger.info(
        "warm pool: adopted process %s in %s, probably made by a create whose answer was lost",
        record.process_id,
        record.region.value,
    )


def _plan(plan: Mapping[Region, int]) -> str:
    return "{" + ", ".join(f"{r.value}: {n}" for r, n in sorted(plan.items())) + "}"
