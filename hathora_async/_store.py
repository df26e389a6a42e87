"""Where a warm pool's state lives: the store interface, and the in-memory store.

A store holds the lease (who reconciles now, with a fencing token that grows
on every new lease), the pool's targets (global: the first replica to find none stores its own;
``set_targets`` replaces them), the pool's records of its processes, its
create intents, the latest snapshot of counts (with the targets it was
computed for), and the replicas' membership. ``MemoryPoolStore`` serves one pool in one process: it
always leads. ``hathora_async.redis.RedisPoolStore`` serves many replicas.

Every write goes through ``commit(change, fence=...)``: one atomic write,
refused with ``FencedOutError`` when ``fence`` is not the current lease's, so
a leader that lost its lease (paused, partitioned) cannot change the state its
successor works from.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import NoReturn, Protocol

import attrs

from . import _constants as C
from ._reconcile import CreateIntent, ProcessRecord, RegionCounts
from .errors import HathoraError
from .models import Region

__all__ = [
    "Commit",
    "FencedOutError",
    "MemoryPoolStore",
    "PoolState",
    "PoolStore",
    "Snapshot",
    "StoreError",
    "StoreUnavailableError",
    "Targets",
    "keep_lease",
]

logger = logging.getLogger(C.LOGGER_NAME)


class StoreError(HathoraError):
    """The warm pool's store failed (a bug, or a value it cannot read)."""


class StoreUnavailableError(StoreError):
    """The store could not be reached in time. A write's outcome is unknown."""


class FencedOutError(StoreError):
    """A write carried a fence older than the current lease's: this replica no longer leads."""


@attrs.frozen
class Targets:
    """The pool's targets, shared by its replicas: idle processes wanted per
    region, and the cap on idle ones (``max_per_region``, every target region
    named, each at least its target)."""

    targets: dict[Region, int]
    max_per_region: dict[Region, int]


@attrs.frozen
class Snapshot:
    """The leader's counts after its last pass, and what they were computed for.

    ``targets`` and ``max_per_region`` let followers notice a mismatch with
    their own. ``leader`` is the writer's replica id, ``fence`` its lease and
    ``written_at`` its wall clock (epoch seconds).
    """

    counts: dict[Region, RegionCounts]
    targets: dict[Region, int]
    max_per_region: dict[Region, int]
    leader: str
    fence: int
    written_at: float


@attrs.frozen
class PoolState:
    """Everything a pass reads from the store, read at once.

    ``epoch`` names the store's lifetime: it changes (or is None) when the
    store lost its data (flushed, restarted without persistence, expired).
    ``seq`` counts commits within an epoch; a ``seq`` lower than one seen
    before means the store went back in time (restored from an old
    snapshot). ``recovering`` is True while replicas are putting back what
    they knew after such a loss (``PoolStore.restore``): the leader creates
    and stops nothing meanwhile. ``targets`` is None until a replica stored
    them (``PoolStore.claim_targets``).
    """

    records: dict[str, ProcessRecord] = attrs.field(factory=dict)
    intents: dict[str, CreateIntent] = attrs.field(factory=dict)
    snapshot: Snapshot | None = None
    epoch: str | None = None
    seq: int = 0
    recovering: bool = False
    targets: Targets | None = None


@attrs.frozen
class Commit:
    """One atomic write: records and intents upserted or removed, a new snapshot."""

    put_records: tuple[ProcessRecord, ...] = ()
    drop_records: tuple[str, ...] = ()
    put_intents: tuple[CreateIntent, ...] = ()
    drop_intents: tuple[str, ...] = ()
    snapshot: Snapshot | None = None

    def __bool__(self) -> bool:
        return bool(
            self.put_records
            or self.drop_records
            or self.put_intents
            or self.drop_intents
            or self.snapshot
        )


class PoolStore(Protocol):
    """The store a ``WarmPool`` works through.

    Leadership is local knowledge with a deadline: ``is_leader`` turns False by
    itself once the lease could have expired elsewhere, with no I/O. Methods
    raise ``StoreUnavailableError`` when the store cannot be reached in time
    and ``FencedOutError`` for a write under a fence that is no longer current.
    """

    @property
    def name(self) -> str:
        """The pool's name (shared by its replicas)."""

    @property
    def replica_id(self) -> str:
        """This replica's id, unique among the pool's replicas."""

    @property
    def lease_ttl(self) -> float:
        """Seconds a lease lasts unless renewed."""

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the lease and its local deadline has not passed."""

    @property
    def fence(self) -> int | None:
        """The current lease's fencing token while ``is_leader``, else None."""

    async def acquire(self) -> bool:
        """Take the lease if it is free, or renew it if held; True when leading after."""

    async def renew(self) -> bool:
        """Extend the lease held; False (and no longer leading) when it was lost."""

    async def release(self) -> None:
        """Give the lease up now (a follower can take it without waiting for expiry)."""

    async def load(self) -> PoolState:
        """Records, intents, the snapshot and the targets, read consistently."""

    async def claim_targets(self, targets: Targets) -> Targets:
        """Store ``targets`` if none are stored (atomically: the first writer wins); the stored."""

    async def set_targets(self, targets: Targets) -> None:
        """Replace the stored targets (atomically, unfenced: a deliberate change)."""

    async def commit(self, change: Commit, *, fence: int) -> None:
        """Apply ``change`` atomically if ``fence`` is the current lease's."""

    async def restore(
        self,
        records: Iterable[ProcessRecord],
        intents: Iterable[CreateIntent],
        *,
        seen: str | None,
        hold: float,
    ) -> None:
        """Put back what this replica knew after the store lost it (unfenced, adds only).

        Records and intents the store lacks are added; none is changed or
        removed. ``seen`` is the epoch this replica knew: when the store still
        shows it (it went back in time), a new epoch is started so every
        other replica notices too. ``recovering`` reads True for ``hold``
        seconds after the last restore.
        """

    async def heartbeat(self) -> int:
        """Say this replica is alive; returns how many replicas are."""

    async def leave(self) -> int:
        """Withdraw this replica (again: no-op); how many others heartbeated within a lease.

        A crashed replica still counts until a lease after its last
        heartbeat: call again after more than a lease to tell.
        """

    async def members(self) -> list[str]:
        """The live replicas' ids, sorted."""


class MemoryPoolStore:
    """The store of a single pool: in this process, always the leader.

    Each ``acquire()`` after a ``release()`` starts a new lease with a larger
    fence, so the fence rules hold as for a shared store.
    """

    def __init__(self, name: str = "local", *, replica_id: str = "local") -> None:
        self.name = name
        self.replica_id = replica_id
        self.lease_ttl = math.inf
        self._fence = 0
        self._leading = False
        self._joined = False
        self._state = PoolState()
        self._targets: Targets | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def fence(self) -> int | None:
        return self._fence if self._leading else None

    async def acquire(self) -> bool:
        if not self._leading:
            self._fence += 1
            self._leading = True
        return True

    async def renew(self) -> bool:
        return self._leading

    async def release(self) -> None:
        self._leading = False

    async def load(self) -> PoolState:
        state = self._state
        return PoolState(
            dict(state.records),
            dict(state.intents),
            state.snapshot,
            "memory",
            state.seq,
            targets=self._targets,
        )

    async def claim_targets(self, targets: Targets) -> Targets:
        if self._targets is None:
            self._targets = targets
        return self._targets

    async def set_targets(self, targets: Targets) -> None:
        self._targets = targets

    async def restore(
        self,
        records: Iterable[ProcessRecord],
        intents: Iterable[CreateIntent],
        *,
        seen: str | None,
        hold: float,
    ) -> None:
        # Memory is never lost while the pool runs: a restore only adds.
        state = self._state
        added = {r.process_id: r for r in records if r.process_id not in state.records}
        more = {i.intent_id: i for i in intents if i.intent_id not in state.intents}
        self._state = attrs.evolve(
            state, records={**state.records, **added}, intents={**state.intents, **more}
        )

    async def commit(self, change: Commit, *, fence: int) -> None:
        if fence != self._fence:
            raise FencedOutError(f"fence {fence} is not the current lease's ({self._fence})")
        records = dict(self._state.records)
        intents = dict(self._state.intents)
        for record in change.put_records:
            records[record.process_id] = record
        for process_id in change.drop_records:
            records.pop(process_id, None)
        for intent in change.put_intents:
            intents[intent.intent_id] = intent
        for intent_id in change.drop_intents:
            intents.pop(intent_id, None)
        self._state = PoolState(
            records, intents, change.snapshot or self._state.snapshot, seq=self._state.seq + 1
        )

    async def heartbeat(self) -> int:
        self._joined = True
        return 1

    async def leave(self) -> int:
        self._joined = False
        return 0

    async def members(self) -> list[str]:
        return [self.replica_id] if self._joined else []


async def keep_lease(
    store: PoolStore,
    *,
    interval: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tried: asyncio.Event | None = None,
) -> NoReturn:
    """Heartbeat and take or renew the lease every ``interval`` seconds, forever.

    The default interval, a third of the lease, renews twice before the local
    deadline even when one renewal is lost. Store errors are logged when the
    state changes and retried at the next tick; cancel the task to stop.
    ``tried`` is set once the first attempt has ended (led or not).
    """
    tick = store.lease_ttl / 3 if interval is None else interval
    if not math.isfinite(tick):  # an in-memory lease never lapses: one acquire is enough
        tick = 3600.0
    leading = False
    failing = False
    while True:
        try:
            await store.acquire()  # first: the lease is the one with a deadline
            await store.heartbeat()
        except StoreError as exc:
            if not failing:
                logger.warning("warm pool %s: store unavailable: %s", store.name, exc)
            failing = True
        except Exception:
            # A bug must not silently end this replica's bid for the lease.
            logger.exception("warm pool %s: lease upkeep failed", store.name)
            failing = True
        else:
            if failing:
                logger.info("warm pool %s: store reachable again", store.name)
            failing = False
        if store.is_leader != leading:
            leading = store.is_leader
            logger.info(
                "warm pool %s: replica %s %s",
                store.name,
                store.replica_id,
                "leads" if leading else "no longer leads",
            )
        if tried is not None:
            tried.set()
        await sleep(tick)
