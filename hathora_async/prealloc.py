"""Pre-allocation: create many processes across regions at once, then wait for them.

``client.preallocate(plan)`` is the entry point; this module holds the run and
its result types. Creates go out from a fixed set of worker tasks (never more
than ``concurrency``), so the concurrency limit is also the number of requests
in flight; waits are cheap sleeping tasks that take a slot only to poll.

With ``reconcile``, a create whose outcome is unknown starts a search of its
region at once (``_Preallocation.search``), and ``Sight`` admits the region's
creates so that its process stays within the 10 a listing shows until found.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import _constants as C
from ._strays import Changes, Sight, StrayLook, UnknownCreate, list_strays
from .errors import ClientClosedError, HathoraError, ProcessFailedError, ProcessWaitTimeoutError
from .models import ProcessV2, Region, coerce_region
from .waiting import Watch, bounded_fetch, check_wait_options, poll_until_running

if TYPE_CHECKING:
    from ._api import ApiClient

__all__ = [
    "EventKind",
    "Plan",
    "PreallocationEvent",
    "PreallocationFailure",
    "PreallocationResult",
]

logger = logging.getLogger(C.LOGGER_NAME)

EventKind = Literal["created", "running", "failed", "stray", "stopped"]

# Region -> count. Both spellings, since a mapping's key type is invariant.
Plan = Mapping[Region, int] | Mapping[str, int]


@attrs.frozen
class PreallocationEvent:
    """One step of a pre-allocation, for progress displays and bookkeeping.

    ``kind`` is one of:

    - ``"created"``: a process exists (``process_id`` set); sent the moment its
      create returns, so a callback sees every process id. ``process`` is the
      create's answer, or None when that answer could not be read whole but
      still named the process (the error's ``process_id``);
    - ``"running"``: it reached ``running`` (only with ``wait=True``);
    - ``"failed"``: a slot failed; ``error`` says why, ``process_id`` is None
      when the create itself failed (check ``error.outcome_unknown``);
    - ``"stray"``: reconciliation found a process that an unknown-outcome
      create probably made;
    - ``"stopped"``: the process was stopped because the call was cancelled.

    ``elapsed`` is the seconds since this slot's create was sent (None for
    strays and stops).
    """

    kind: EventKind
    region: Region
    process_id: str | None = None
    process: ProcessV2 | None = None
    error: HathoraError | None = None
    elapsed: float | None = None


@attrs.frozen
class PreallocationFailure:
    """A slot of the plan that did not end with a ready process.

    ``process_id`` is None when the create failed; then ``outcome_unknown``
    says whether a process may exist anyway (see ``PreallocationResult.strays``).
    When the process was created but failed, stopped or timed out while
    awaited, ``process_id`` is set and ``process`` is its last observed state.
    """

    region: Region
    error: HathoraError
    process_id: str | None = None
    outcome_unknown: bool = False
    process: ProcessV2 | None = None


@attrs.define
class PreallocationResult:
    """What a ``preallocate`` call did. Partial failure is a normal result.

    - ``requested``: the plan, per region;
    - ``ready``: per region, the processes seen ``running`` (``wait=True``);
    - ``starting``: per region, the processes created but not awaited
      (``wait=False``), as their create returned them (or as first read, for
      a process its create's error named);
    - ``failed``: every slot that did not succeed, with its reason;
    - ``created``: the id of every process this call created, in creation
      order, including those that later failed or timed out, and those whose
      create failed with an error naming the process (``error.process_id``);
    - ``strays``: processes found by reconciliation after creates whose outcome
      was unknown: probably made by this call, not in ``created``. Only found
      when a region's listing showed no more unknown processes in the window
      than such creates; still, if a lost create made nothing (or its process
      did not show yet), another client's process created in the same region
      at about the same time can show up here (see ``hathora_async._strays``);
    - ``ambiguous``: processes found after such creates where the listing
      could not tell them from other clients' (more unknown processes in the
      window than creates lost, or a listing too full to reach back to the
      send): each may be this call's or another client's (Hathora's processes
      carry no client tag), and up to as many as those creates are this
      call's. Not in ``strays``: stopping them may stop another client's
      processes; leaving them leaves this call's running until Hathora's idle
      timeout. Logged at WARNING with their ids;
    - ``stopped``: the ids in ``created`` that the call stopped because it was
      cancelled (``stop_on_cancel``); empty when it ran to its end.

    A cancelled call attaches its partial result to the ``CancelledError`` it
    raises, as ``preallocation``: see ``HathoraClient.preallocate``.
    """

    requested: dict[Region, int]
    ready: dict[Region, list[ProcessV2]]
    starting: dict[Region, list[ProcessV2]]
    failed: list[PreallocationFailure] = attrs.Factory(list)
    created: list[str] = attrs.Factory(list)
    strays: list[ProcessV2] = attrs.Factory(list)
    stopped: list[str] = attrs.Factory(list)
    ambiguous: list[ProcessV2] = attrs.Factory(list)

    @property
    def complete(self) -> bool:
        """True when every requested slot has a ready (or, with ``wait=False``, created) process."""
        done = sum(map(len, self.ready.values())) + sum(map(len, self.starting.values()))
        return not self.failed and done == sum(self.requested.values())


def check_plan(plan: Plan) -> dict[Region, int]:
    """Validate a plan before any I/O; counts of the same region add up."""
    if not isinstance(plan, Mapping):
        raise TypeError(f"plan must be a mapping of region to count, not {type(plan).__name__}")
    checked: dict[Region, int] = {}
    for region, count in plan.items():
        key = coerce_region(region)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count for {key.value} must be an int >= 0, got {count!r}")
        checked[key] = checked.get(key, 0) + count
    return checked


def _check_limit(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _interleave(plan: Mapping[Region, int]) -> deque[Region]:
    # Round-robin over regions: every region makes progress from the start, and
    # a per-region limit rarely leaves a worker waiting while others have work.
    left = {region: count for region, count in plan.items() if count > 0}
    order: deque[Region] = deque()
    while left:
        for region in list(left):
            order.append(region)
            left[region] -= 1
            if left[region] <= 0:
                del left[region]
    return order


class _Limit:
    """The per-region slot (if any), then the global one; released in reverse."""

    __slots__ = ("_global", "_region")

    def __init__(self, global_: asyncio.Semaphore, region: asyncio.Semaphore | None) -> None:
        self._global = global_
        self._region = region

    async def __aenter__(self) -> None:
        if self._region is not None:
            await self._region.acquire()
        try:
            await self._global.acquire()
        except BaseException:
            if self._region is not None:
                self._region.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._global.release()
        if self._region is not None:
            self._region.release()


class _Tasks:
    """Tasks of one run: join() ends when all are done or one raised unexpectedly."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.error: BaseException | None = None
        self._settled = asyncio.Event()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            error = task.exception()
            if error is not None and self.error is None:
                self.error = error
        if self.error is not None or not self.tasks:
            self._settled.set()

    async def join(self) -> None:
        while self.tasks and self.error is None:
            self._settled.clear()
            await self._settled.wait()
        if self.error is not None:
            raise self.error


def _cancelled_in_flight() -> HathoraError:
    error = HathoraError("create_process was cancelled while in flight")
    error.outcome_unknown = True
    return error


class _Seen(Exception):
    """Ends a wait at the first state read (``wait=False``: the process is only looked up)."""

    def __init__(self, process: ProcessV2) -> None:
        self.process = process


class _Withdrawn(Exception):
    """A create given up between two attempts, when none of its attempts made a process."""


def _withdrawn() -> HathoraError:
    return HathoraError("create_process was not retried: the call was cancelled; nothing was made")


class _Preallocation:
    """One ``preallocate`` call: ``await _Preallocation(client, plan, ...).run()``.

    The arguments are those of ``HathoraClient.preallocate`` (no defaults here),
    checked before any I/O.
    """

    def __init__(
        self,
        client: ApiClient,
        plan: Plan,
        *,
        concurrency: int,
        per_region_concurrency: int | None,
        wait: bool,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float,
        on_event: Callable[[PreallocationEvent], None] | None,
        reconcile: bool,
        stop_on_cancel: bool,
        app_id: str | None,
    ) -> None:
        plan = check_plan(plan)
        _check_limit(concurrency, "concurrency")
        if per_region_concurrency is not None:
            _check_limit(per_region_concurrency, "per_region_concurrency")
        timeout, poll_interval, max_poll_interval = check_wait_options(
            timeout, poll_interval, max_poll_interval
        )
        if on_event is not None and not callable(on_event):
            raise TypeError("on_event must be callable")
        client._app_segment(app_id)
        self.client = client
        self.clock = client._options.clock
        self.sleep = client._options.sleep
        # A create pauses between attempts only after one the server provably did
        # not act on (a 429, or a request that never left): so once the run is
        # stopping, the pause withdraws the create instead of sending it again.
        creator = client.with_options(sleep=self.pause_create)
        # The ``_with_http_info`` form (the plain one no longer awaits through it):
        # every create of a run passes there, where tests stand in for it.
        self.create = creator.processes.create_process_with_http_info
        self.pauses: set[asyncio.Future[None]] = set()
        self.wait = wait
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.on_event = on_event
        self.reconcile = reconcile
        self.stop_on_cancel = stop_on_cancel
        self.app_id = app_id
        self.concurrency = concurrency
        self.global_limit = asyncio.Semaphore(concurrency)
        self.limits = {
            region: _Limit(
                self.global_limit,
                asyncio.Semaphore(per_region_concurrency) if per_region_concurrency else None,
            )
            for region in plan
        }
        self.jobs = _interleave(plan)
        self.left = Counter(self.jobs)  # jobs left per region (reconcile only)
        self.result = PreallocationResult(
            requested=dict(plan),
            ready={region: [] for region in plan},
            starting={region: [] for region in plan},
        )
        self.tasks = _Tasks()
        self.in_create: set[asyncio.Task[Any] | None] = set()
        self.withdrawn: set[asyncio.Task[Any]] = set()
        self.region_of: dict[str, Region] = {}
        # Finding what creates with an unknown outcome made (reconcile only).
        self.sight = {region: Sight() for region in plan}
        self.known: set[str] = set()  # every process id the result accounts for
        # Those the run made (created, strays): not ambiguous ones, maybe others'.
        self.ours: set[str] = set()
        # (client clock, id) as each create answered: a process older than a later send.
        self.answered: list[tuple[float, str]] = []
        self.changes = Changes()
        self.stopping = False

    # -- bookkeeping -------------------------------------------------------

    def emit(self, event: PreallocationEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            # A progress display's bug must not leak billed processes.
            logger.exception("preallocate on_event callback failed")

    def failed(
        self,
        region: Region,
        error: HathoraError,
        process_id: str | None,
        process: ProcessV2 | None,
        started: float,
    ) -> None:
        unknown = process_id is None and error.outcome_unknown
        self.result.failed.append(PreallocationFailure(region, error, process_id, unknown, process))
        if self.on_event is not None:
            self.emit(
                PreallocationEvent(
                    "failed", region, process_id, process, error, self.clock() - started
                )
            )

    # -- the work ----------------------------------------------------------

    async def run(self) -> PreallocationResult:
        for _ in range(min(self.concurrency, len(self.jobs))):
            self.tasks.spawn(self.worker())
        try:
            await self.tasks.join()  # the searches for strays included
        except BaseException as exc:
            try:
                await self.abort()
            except BaseException as again:  # cancelled again while aborting
                self.hand_over(again)
                raise
            self.hand_over(exc)
            raise
        return self.result

    def hand_over(self, exc: BaseException) -> None:
        """The call ends with ``exc``: attach the partial result, log what is left behind."""
        # Cancellation must stay a CancelledError, so the result rides on it.
        exc.preallocation = self.result  # type: ignore[attr-defined]
        stopped = set(self.result.stopped)
        left = [pid for pid in self.result.created if pid not in stopped]
        if left:
            logger.warning(
                "preallocate ended early (%s); %d process(es) it created were not stopped: %s",
                type(exc).__name__,
                len(left),
                ", ".join(left),
                extra={C.LOG_LEFT_RUNNING: tuple(left)},
            )
        unknown = sum(failure.outcome_unknown for failure in self.result.failed)
        if unknown:
            logger.warning(
                "preallocate ended early (%s); %d create(s) with an unknown outcome may "
                "have made processes",
                type(exc).__name__,
                unknown,
            )

    def next_job(self) -> tuple[Region, UnknownCreate | None] | None:
        """The first job whose region admits a create now (entered), or None."""
        jobs = self.jobs
        if not self.reconcile:
            return jobs.popleft(), None
        refused: set[Region] = set()
        left = self.left
        for index, region in enumerate(jobs):
            if region in refused:
                continue
            sight = self.sight[region]
            if sight.admits():
                del jobs[index]
                left[region] -= 1
                if not left[region]:
                    del left[region]
                return region, sight.enter(self.clock())
            refused.add(region)
            if len(refused) == len(left):
                break  # every region with jobs left waits
        return None

    async def worker(self) -> None:
        while self.jobs and not self.stopping:
            job = self.next_job()
            if job is None:
                await self.changes.wait()  # every region left waits on its creates or search
                continue
            await self.create_one(*job)

    def settle(self, region: Region, create: UnknownCreate | None, lost: bool) -> None:
        """The create's process is known (or none was made); ``lost``: a search will tell."""
        if create is None:
            return
        sight = self.sight[region]
        if lost and not self.stopping:
            create.lost = True
            if not sight.searching:
                sight.searching = True
                self.tasks.spawn(self.search(region))
        else:
            sight.open.remove(create)
        self.changes.notify()

    async def create_one(self, region: Region, entry: UnknownCreate | None = None) -> None:
        lost = False
        try:
            lost = await self._create_one(region, entry)
        finally:
            self.settle(region, entry, lost)

    async def _create_one(self, region: Region, entry: UnknownCreate | None) -> bool:
        """One create; True when its outcome is unknown (a process may exist)."""
        task = asyncio.current_task()
        async with self.limits[region]:
            started = self.clock()
            self.in_create.add(task)
            process: ProcessV2 | None
            try:
                # Send budget (issue 12): the create's deadline starts when its turn comes.
                async with self.client._budget.turn(self.pause_create):
                    started = self.clock()
                    if entry is not None:
                        entry.sent = started
                    process = (await self.create(region, app_id=self.app_id)).data
            except HathoraError as exc:
                if exc.process_id is None:
                    self.failed(region, exc, None, None, started)
                    return exc.outcome_unknown
                # The answer could not be read whole, yet it named the process: it exists.
                logger.warning("preallocate: %s; process %s exists", exc, exc.process_id)
                process, process_id = None, exc.process_id
            except _Withdrawn:
                self.failed(region, _withdrawn(), None, None, started)
                return False
            except asyncio.CancelledError:
                if task in self.withdrawn:  # send budget (issue 12): waited, never sent
                    self.failed(region, _withdrawn(), None, None, started)
                    return False
                # Only a second cancellation (or a closing loop) gets here.
                self.failed(region, _cancelled_in_flight(), None, None, started)
                raise
            else:
                process_id = process.process_id
            finally:
                self.in_create.discard(task)
        self.made(region, process_id, process, started)
        return False

    def made(
        self, region: Region, process_id: str, process: ProcessV2 | None, started: float
    ) -> None:
        """A create made ``process_id`` (``process`` is its answer, if readable)."""
        self.result.created.append(process_id)
        self.known.add(process_id)
        self.ours.add(process_id)
        self.answered.append((self.clock(), process_id))
        self.region_of[process_id] = region
        if self.on_event is not None:
            self.emit(
                PreallocationEvent(
                    "created", region, process_id, process, None, self.clock() - started
                )
            )
        if self.stopping:
            return
        if self.wait or process is None:
            # Without wait, a process known only by id is read until seen, for ``starting``.
            self.tasks.spawn(self.wait_one(region, process_id, process, started))
        else:
            self.result.starting[region].append(process)

    async def wait_one(
        self, region: Region, process_id: str, process: ProcessV2 | None, started: float
    ) -> None:
        inner = bounded_fetch(self.client, process_id, self.app_id)
        limit = self.limits[region]

        async def own(deadline: float) -> ProcessV2:
            async with limit:
                return await inner(deadline)

        # The waits of a region share one listing per poll interval (issue 12);
        # a poll takes a slot only to read on its own.
        watch = Watch(
            self.client,
            process_id,
            app_id=self.app_id,
            region=region,
            interval=self.poll_interval,
            own=own,
        )

        async def fetch(deadline: float) -> ProcessV2:
            seen = await watch(deadline)
            if not self.wait:
                raise _Seen(seen)
            return seen

        try:
            with watch:
                running = await poll_until_running(
                    fetch,
                    process_id,
                    timeout=self.timeout,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    sleep=self.sleep,
                    clock=self.clock,
                    first=process,
                    # Reads may not see a process made lately: a 404 then is lag.
                    lag_until=self.client._recent.lag_until("process", process_id),
                )
        except _Seen as seen:
            self.result.starting[region].append(seen.process)
            return
        except (ProcessFailedError, ProcessWaitTimeoutError) as exc:
            self.failed(region, exc, process_id, exc.process or process, started)
            return
        except HathoraError as exc:
            self.failed(region, exc, process_id, process, started)
            return
        self.result.ready[region].append(running)
        if self.on_event is not None:
            self.emit(
                PreallocationEvent(
                    "running", region, running.process_id, running, None, self.clock() - started
                )
            )

    async def search(self, region: Region) -> None:
        """List ``region`` until each lost create there has its stray, or its grace ends.

        A create makes one process at most. Each look first holds the
        region's new creates and waits for those in flight to end, so every
        process the run made there is known and none is taken for a stray;
        between looks creates go on (``Sight`` keeps them few). A new process
        may be missing from listings for ``READ_AFTER_CREATE_GRACE`` seconds
        after its create, so the region is listed again (every
        ``poll_interval``) until then. Creates lost meanwhile join the search.
        """
        sight = self.sight[region]
        error: HathoraError | None = None
        late = False
        try:
            while sight.lost():
                sight.held = True
                while sight.in_flight():
                    await self.changes.wait()
                lost = sorted(sight.lost(), key=lambda c: c.sent)
                try:
                    async with self.limits[region]:
                        look = await list_strays(
                            self.client,
                            region,
                            sent=lost[0].sent,
                            known=self.known,
                            app_id=self.app_id,
                            wanted=len(lost),
                            before={pid for at, pid in self.answered if at < lost[0].sent},
                            room=(self.ours, C.STRAY_SIGHT),
                        )
                except ClientClosedError as exc:
                    error = exc
                    break  # no later look can be sent: the caller has the unknown outcomes
                except HathoraError as exc:
                    error = exc
                else:
                    error = None
                    if look.conclusive:
                        for create, process in zip(lost, look.found, strict=False):
                            sight.open.remove(create)
                            self.known.add(process.process_id)
                            self.ours.add(process.process_id)
                            self.result.strays.append(process)
                            self.emit(
                                PreallocationEvent("stray", region, process.process_id, process)
                            )
                        for create in sight.lost():
                            create.foreign = max(create.foreign, look.others)
                    else:
                        self.ambiguous(region, look, lost)
                sight.held = False
                self.changes.notify()
                left = sight.lost()
                if not left:
                    break
                remaining = max(c.sent for c in left) + C.READ_AFTER_CREATE_GRACE - self.clock()
                if remaining <= 0:
                    # The window is over; a look that failed gets one more try.
                    if error is None or late:
                        break
                    late, remaining = True, self.poll_interval
                await self.sleep(min(self.poll_interval, remaining))
        finally:
            sight.open = [c for c in sight.open if not c.lost]  # given up
            sight.held = sight.searching = False
            self.changes.notify()
        if error is not None:
            logger.warning("cannot look for stray processes in %s: %s", region.value, error)

    def ambiguous(self, region: Region, look: StrayLook, lost: list[UnknownCreate]) -> None:
        """A look that cannot tell the run's strays from other clients' processes.

        Every candidate goes to ``result.ambiguous`` (so none of the run's is
        lost, and none of another client's is reported as the run's), and the
        lost creates it covers are settled: a later look cannot tell them apart
        either (ProcessV2 carries no client tag).
        """
        sight = self.sight[region]
        sight.open = [c for c in sight.open if c not in lost]
        ids = [p.process_id for p in look.found]
        self.known.update(ids)
        self.result.ambiguous.extend(look.found)
        if look.truncated:
            logger.warning(
                "preallocate: over %d processes were created in %s since a create with an "
                "unknown outcome: a process it made may be out of sight",
                C.LATEST_PROCESSES_LIMIT,
                region.value,
                extra={C.LOG_AMBIGUOUS: tuple(ids)},
            )
        if ids:
            logger.warning(
                "preallocate: %d create(s) with an unknown outcome in %s, %d candidate "
                "process(es) in their window, some another client's (see "
                "PreallocationResult.ambiguous): %s",
                len(lost),
                region.value,
                len(ids),
                ", ".join(ids),
                extra={C.LOG_AMBIGUOUS: tuple(ids)},
            )

    async def pause_create(self, delay: float) -> None:
        """A create's sleep between attempts; raises ``_Withdrawn`` once the run stops."""
        if not self.stopping:
            sleeping = asyncio.ensure_future(self.sleep(delay))
            self.pauses.add(sleeping)
            try:
                # Unlike ``await``, wait() returns normally when abort() cancels the sleep.
                await asyncio.wait((sleeping,))
            finally:
                self.pauses.discard(sleeping)
                sleeping.cancel()
            if not self.stopping:
                sleeping.result()  # the sleep's own error, if it had one
        if self.stopping:
            raise _Withdrawn

    async def abort(self) -> None:
        """Cancelled (or broken): end the work, keeping every created process known.

        Creates already sent are let finish, bounded by the client's call
        deadline, so the processes they make are reported; a create between
        two attempts (so far refused, nothing made) is withdrawn instead of
        sent again; everything else stops at once. Then, with
        ``stop_on_cancel``, every created process is stopped. A second
        cancellation gives up waiting.
        """
        self.stopping = True
        budget = self.client._budget
        for task in list(self.tasks.tasks):
            if task not in self.in_create:
                task.cancel()
            elif budget.waiting(task):  # send budget (issue 12): not sent yet, withdraw it
                self.withdrawn.add(task)
                task.cancel()
        for pause in list(self.pauses):
            pause.cancel()
        try:
            if self.tasks.tasks:
                await asyncio.wait(set(self.tasks.tasks))
            if self.stop_on_cancel:
                await self.stop_created()
        except asyncio.CancelledError:
            for task in list(self.tasks.tasks):
                task.cancel()
            raise

    async def stop_created(self) -> None:
        region_of = self.region_of
        await asyncio.gather(*(self.stop_one(pid, region_of[pid]) for pid in self.result.created))

    async def stop_one(self, process_id: str, region: Region) -> None:
        try:
            async with self.global_limit:
                await self.client.processes.stop_process(process_id, app_id=self.app_id)
        except HathoraError as exc:
            logger.warning("could not stop process %s after cancellation: %s", process_id, exc)
            return
        self.result.stopped.append(process_id)
        self.emit(PreallocationEvent("stopped", region, process_id))
