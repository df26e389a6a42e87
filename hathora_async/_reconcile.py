"""The warm pool's decisions as a pure function: observed state + targets -> actions.

No I/O, no clock, no randomness: the driver (``WarmPool``) reads the store and
Hathora, passes what it saw here with ``now``, carries out the returned
``Actions`` and writes the outcome back to the store. The same function runs
for a single pool (in-memory store) and for the leader of many replicas
(Redis store), so a successor leader applies exactly the rules its
predecessor did.

The rules (issue 9's, which a successor relies on):

- A process the pool made is dropped only once seen ``failed``/``stopping``/
  ``stopped`` (or once stopped by the pool, which the driver records itself).
  A 404 is "not visible yet" and keeps the record with its last known state;
  after ``Rules.give_up_missing`` seconds of unbroken 404s it is dropped (the
  driver logs its id at WARNING, tries to stop it and reports it lost).
- A create is recorded as an *intent* before it is sent. An intent that is not
  in flight in this process (its outcome was unknown, its writer died or lost
  the lease, or the write landed but the create was never sent) may have made
  a process: the region's latest processes are listed and matched to such
  intents, at most one process per intent, and adopted. It is looked for
  its create's ``window`` (the server may act until the client's deadline)
  plus ``Rules.intent_grace`` seconds (listings lag behind creates too), and given
  up once a listing after that has not found its process, or
  ``Rules.intent_max_age`` after it was written. Meanwhile it counts as
  capacity only with ``Rules.count_unknown`` (fewer extra creates, slower
  replacement when the create made nothing). Listed processes that fit an
  intent's window but were not taken are other clients': reported as
  ``foreign`` and never adopted later (passed back as ``not_ours``).
- Idle processes above ``max_per_region`` are stopped oldest first (the
  closest to being reaped); a process with rooms, draining, or in a status
  newer than this client is busy and never trimmed. A region missing from the
  targets has target and limit 0.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Literal

import attrs

from . import _constants as C
from .models import ProcessStatus, ProcessV2, Region

__all__ = [
    "Actions",
    "Adoption",
    "CreateIntent",
    "Drop",
    "ProcessRecord",
    "RegionCounts",
    "Rules",
    "exit_stops",
    "match_listing",
    "match_strays",
    "new_intent",
    "reconcile",
    "record_of",
    "regions_to_list",
    "tally",
]

State = Literal["starting", "idle", "busy", "ended"]


@attrs.frozen
class RegionCounts:
    """A pool's processes in one region, for metrics.

    ``starting``, ``idle`` (running, no rooms) and ``busy`` (hosting rooms, or
    draining) count processes the pool tracks now. ``failed`` counts, since
    the pool's state was created, its processes that ended without the pool
    stopping them: failed to boot, crashed, reaped when idle, stopped
    elsewhere, or lost from reads.
    """

    starting: int = 0
    idle: int = 0
    busy: int = 0
    failed: int = 0


# A process in one of these is gone for good. Draining is not: it still hosts
# rooms, so it counts as busy until it stops.
GONE = frozenset({ProcessStatus.FAILED, ProcessStatus.STOPPING, ProcessStatus.STOPPED})
# The only statuses in which a process is spare capacity, and so the pool's to stop.
LIVE = frozenset({ProcessStatus.STARTING, ProcessStatus.RUNNING})


@attrs.frozen
class ProcessRecord:
    """What the pool knows of one process it made (or adopted).

    ``status`` and ``rooms_allocated`` are as last read. ``created_at`` is the
    server's ``createdAt`` in epoch seconds (orders trimming). ``seen_at`` is
    when it was last read and ``missing_since`` when an unbroken run of 404s
    began (None: found at the last read); both are the writer's wall clock,
    epoch seconds.
    """

    process_id: str
    region: Region
    status: ProcessStatus
    rooms_allocated: int = 0
    created_at: float = 0.0
    seen_at: float = 0.0
    missing_since: float | None = None

    @property
    def state(self) -> State:
        if self.status in GONE:
            return "ended"
        # A room can be placed on a process still booting: that one is not capacity.
        if self.status not in LIVE or self.rooms_allocated:
            # Hosting rooms, draining, or a status newer than this client: not gone.
            return "busy"
        return "starting" if self.status == ProcessStatus.STARTING else "idle"


def record_of(process: ProcessV2, *, now: float) -> ProcessRecord:
    """The record of a process as Hathora just returned it (found: no 404 run)."""
    return ProcessRecord(
        process_id=process.process_id,
        region=process.region,
        status=process.status,
        rooms_allocated=process.rooms_allocated,
        created_at=process.created_at.timestamp(),
        seen_at=now,
    )


@attrs.frozen
class CreateIntent:
    """A create about to be sent (or sent): written before the request leaves.

    ``sent_at`` is the writer's wall clock (epoch seconds). ``server_sent`` is
    the writer's estimate of the *server's* clock at that moment (from a
    ``Date`` header or a fresh ``createdAt``), None when it had none: a process
    this create made has ``createdAt`` no earlier than ``server_sent`` less
    ``Rules.skew``. ``fence`` is the lease the writer held. ``window`` is how
    long (seconds after ``sent_at``) the create call may run: the client's
    deadline; the server may act on it until then, so its process is looked
    for until ``window`` plus ``Rules.intent_grace`` after ``sent_at``.
    """

    intent_id: str
    region: Region
    sent_at: float
    fence: int
    server_sent: float | None = None
    window: float = 0.0


def new_intent(
    region: Region,
    *,
    fence: int,
    now: float,
    server_sent: float | None = None,
    window: float = 0.0,
) -> CreateIntent:
    """A fresh intent with a random id (the only impure helper here: ids must be unique)."""
    return CreateIntent(uuid.uuid4().hex, region, now, fence, server_sent, window)


@attrs.frozen
class Rules:
    """What the pool aims for, and its patience (seconds).

    ``max_per_region`` caps idle processes; a region it omits is capped at its
    target. Raises ``ValueError`` when a cap is below its target. ``skew`` is
    the allowance below an intent's ``server_sent`` (the spread of Hathora's
    clocks when that came from a ``Date`` header).
    """

    targets: Mapping[Region, int]
    max_per_region: Mapping[Region, int] = attrs.field(factory=dict)
    intent_grace: float = C.READ_AFTER_CREATE_GRACE
    count_unknown: bool = False
    intent_max_age: float = C.DEFAULT_INTENT_MAX_AGE
    give_up_missing: float = C.READ_AFTER_CREATE_GRACE
    skew: float = C.STRAY_SERVER_CLOCK_MARGIN

    def __attrs_post_init__(self) -> None:
        for region, target in self.targets.items():
            if self.limit(region) < target:
                raise ValueError(
                    f"max_per_region for {region.value} ({self.limit(region)}) is below "
                    f"its target ({target})"
                )

    def limit(self, region: Region) -> int:
        """Idle processes allowed in ``region``: its cap, else its target, else 0."""
        return self.max_per_region.get(region, self.targets.get(region, 0))


@attrs.frozen
class Adoption:
    """A listed process matched to an intent that may have made it."""

    intent_id: str
    record: ProcessRecord


@attrs.frozen
class Drop:
    """A record to forget: its process ``ended``, or stayed ``missing`` too long."""

    process_id: str
    region: Region
    reason: Literal["ended", "missing"]


@attrs.frozen
class Actions:
    """One pass's decisions.

    - ``creates``: processes to create per region (each after writing an intent);
    - ``stops``: idle processes above the limit, oldest first; the driver reads
      each again right before stopping it and spares it if it got rooms;
    - ``adoptions`` and ``drops``: record changes; ``expired``: intent ids given
      up on (their process, if any, is left to Hathora's idle reaper);
    - ``look``: regions whose unmatched intents want a listing next pass;
    - ``foreign``: listed processes that fit an intent's window but were not
      taken: other clients', to pass as ``not_ours`` from now on;
    - ``ambiguous``: candidates of regions whose listing showed more of them
      than unmatched intents (``match_listing``): none adopted, the intents
      given up (in ``expired``), the candidates also in ``foreign``;
    - ``counts``: per region, after the drops and adoptions; ``failed`` adds
      this pass's drops to the ``failed`` given.
    """

    creates: dict[Region, int]
    stops: tuple[str, ...]
    adoptions: tuple[Adoption, ...]
    drops: tuple[Drop, ...]
    expired: tuple[str, ...]
    look: frozenset[Region]
    foreign: tuple[str, ...]
    counts: dict[Region, RegionCounts]
    ambiguous: tuple[str, ...] = ()


def _orphans(intents: Iterable[CreateIntent], in_flight: AbstractSet[str]) -> list[CreateIntent]:
    return [i for i in intents if i.intent_id not in in_flight]


def regions_to_list(
    intents: Iterable[CreateIntent], in_flight: AbstractSet[str]
) -> frozenset[Region]:
    """The regions to list before ``reconcile``: where an intent may have made a process."""
    return frozenset(i.region for i in _orphans(intents, in_flight))


def _threshold(intent: CreateIntent, skew: float) -> float:
    return -math.inf if intent.server_sent is None else intent.server_sent - skew


def match_strays(
    intents: Sequence[CreateIntent], candidates: Sequence[ProcessRecord], *, skew: float
) -> list[tuple[CreateIntent, ProcessRecord]]:
    """Pair intents of one region with listed processes they may have made, one each.

    A candidate fits an intent when created no earlier than ``server_sent - skew``.
    The eligible sets are nested (a higher bound sees a subset), so serving the
    highest bound first, whatever it picks, yields a largest matching. Each
    intent prefers processes created at or after its send to those within the
    allowance (likelier its own), oldest first.
    """
    free = list(candidates)
    pairs = []
    for intent in sorted(intents, key=lambda i: _threshold(i, skew), reverse=True):
        bound = _threshold(intent, skew)
        sent = intent.server_sent if intent.server_sent is not None else -math.inf
        fits = [c for c in free if c.created_at >= bound]
        if not fits:
            continue
        best = min(fits, key=lambda c: (c.created_at < sent, c.created_at, c.process_id))
        free.remove(best)
        pairs.append((intent, best))
    return pairs


def match_listing(
    region: Region,
    waiting: Sequence[CreateIntent],
    listed: Sequence[ProcessRecord],
    *,
    known: AbstractSet[str] | Mapping[str, object],
    not_ours: AbstractSet[str],
    skew: float,
) -> tuple[list[tuple[CreateIntent, ProcessRecord]], list[str], bool]:
    """Match ``region``'s unmatched intents (``waiting``, not empty) to its listing.

    Candidates are listed processes of the region, starting or running, neither
    ``known`` (the pool's) nor ``not_ours``. Returns the pairs (``match_strays``),
    the ids of candidates that fit an intent's window but were not taken
    (other clients'), and whether the match is ambiguous: when more candidates
    fit the window than there are intents, some are other clients' and nothing
    tells which (ProcessV2 has no client tag), so no pair is made and every
    candidate that fits is returned.
    """
    candidates = [
        c
        for c in listed
        if c.process_id not in known
        and c.process_id not in not_ours
        and c.status in LIVE
        and c.region == region
    ]
    lowest = min(_threshold(i, skew) for i in waiting)
    if sum(c.created_at >= lowest for c in candidates) > len(waiting):
        return [], [c.process_id for c in candidates if c.created_at >= lowest], True
    pairs = match_strays(waiting, candidates, skew=skew)
    taken = {record.process_id for _, record in pairs}
    foreign = [
        c.process_id for c in candidates if c.created_at >= lowest and c.process_id not in taken
    ]
    return pairs, foreign, False


def tally(
    records: Iterable[ProcessRecord],
    regions: Iterable[Region],
    failed: Mapping[Region, int],
) -> dict[Region, RegionCounts]:
    """Counts per region: every region in ``regions`` and every region with a record."""
    states: dict[Region, Counter[State]] = {region: Counter() for region in regions}
    for record in records:
        states.setdefault(record.region, Counter())[record.state] += 1
    return {
        region: RegionCounts(
            starting=s["starting"], idle=s["idle"], busy=s["busy"], failed=failed.get(region, 0)
        )
        for region, s in states.items()
    }


def reconcile(
    rules: Rules,
    records: Mapping[str, ProcessRecord],
    intents: Iterable[CreateIntent],
    *,
    now: float,
    in_flight: AbstractSet[str] = frozenset(),
    listings: Mapping[Region, Sequence[ProcessRecord]] | None = None,
    failed: Mapping[Region, int] | None = None,
    not_ours: AbstractSet[str] = frozenset(),
) -> Actions:
    """Decide one pass from the pool's ``records``, its create ``intents`` and ``targets``.

    ``in_flight`` are the intent ids whose create this process is sending now
    (counted as starting capacity; never matched). ``listings`` are the latest
    processes of the regions ``regions_to_list`` named, as read this pass (a
    region missing from it could not be listed). ``now`` is wall-clock epoch
    seconds, the same clock as ``sent_at`` and ``missing_since``. ``not_ours``
    are ids an earlier pass reported ``foreign``.
    """
    listings = listings or {}
    failed_now: Counter[Region] = Counter(failed or {})

    drops = []
    kept: dict[str, ProcessRecord] = {}
    for pid, record in records.items():
        if record.state == "ended":
            drops.append(Drop(pid, record.region, "ended"))
        elif (
            record.missing_since is not None and now - record.missing_since >= rules.give_up_missing
        ):
            drops.append(Drop(pid, record.region, "missing"))
        else:
            kept[pid] = record
            continue
        failed_now[record.region] += 1

    orphans = _orphans(intents, in_flight)
    by_region: dict[Region, list[CreateIntent]] = {}
    for intent in orphans:
        by_region.setdefault(intent.region, []).append(intent)

    adoptions = []
    foreign: list[str] = []
    ambiguous: list[str] = []
    gone: set[str] = set()  # intents of ambiguous listings: given up
    matched: set[str] = set()
    for region, waiting in by_region.items():
        listed = listings.get(region)
        if listed is None:
            continue
        pairs, others, unclear = match_listing(
            region, waiting, listed, known=records, not_ours=not_ours, skew=rules.skew
        )
        for intent, record in pairs:
            adoptions.append(Adoption(intent.intent_id, record))
            matched.add(intent.intent_id)
            kept[record.process_id] = record
        foreign.extend(others)
        if unclear:
            ambiguous.extend(others)
            gone.update(i.intent_id for i in waiting)

    expired = []
    pending: Counter[Region] = Counter()  # unmatched intents still counted as capacity
    look = set()
    for intent in orphans:
        if intent.intent_id in matched:
            continue
        if intent.intent_id in gone:
            expired.append(intent.intent_id)
            continue
        age = now - intent.sent_at
        looked = intent.region in listings
        patience = intent.window + rules.intent_grace
        if age >= rules.intent_max_age or (looked and age >= patience):
            expired.append(intent.intent_id)
            continue
        look.add(intent.region)
        if rules.count_unknown and age < patience:
            pending[intent.region] += 1
    for intent in intents:
        if intent.intent_id in in_flight:
            pending[intent.region] += 1

    counts = tally(kept.values(), rules.targets, failed_now)
    creates = {}
    for region, target in rules.targets.items():
        c = counts[region]
        missing = target - c.idle - c.starting - pending[region]
        if missing > 0:
            creates[region] = missing

    stops: list[str] = []
    for region in counts:
        limit = rules.limit(region)
        # A record under a 404 run cannot be read again before stopping, nor be
        # relied on: trim among the others, keeping ``limit`` of them.
        # Sorting is stable: equal times keep the records' order (the order they were made).
        idle = sorted(
            (
                r
                for r in kept.values()
                if r.region == region and r.state == "idle" and r.missing_since is None
            ),
            key=lambda r: r.created_at,
        )
        stops.extend(r.process_id for r in idle[: max(0, len(idle) - limit)])

    return Actions(
        creates=creates,
        stops=tuple(stops),
        adoptions=tuple(adoptions),
        drops=tuple(drops),
        expired=tuple(expired),
        look=frozenset(look),
        foreign=tuple(foreign),
        counts=counts,
        ambiguous=tuple(ambiguous),
    )


def exit_stops(records: Iterable[ProcessRecord], *, stop_busy: bool) -> list[str]:
    """The processes to stop on exit (the last replica's): starting and idle, or all."""
    return [
        r.process_id
        for r in records
        if r.state != "ended" and (stop_busy or r.state in ("starting", "idle"))
    ]
