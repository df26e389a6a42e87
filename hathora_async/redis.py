"""A warm pool's state in Redis, shared by replicas: ``RedisPoolStore``.

Needs the ``redis`` extra (``pip install 'hathora-async[redis]'``, redis-py's
asyncio client); the rest of the package never imports this module.

Key layout, for a pool named ``N`` (the ``{N}`` hash tag keeps every key in
one cluster slot, so each script runs on one node)::

    hathora-async:pool:{N}:lease     string  token of the leader        PX lease_ttl
    hathora-async:pool:{N}:fence     string  fencing token (integer)     PX state_ttl
    hathora-async:pool:{N}:records   hash    process id -> record JSON   PX state_ttl
    hathora-async:pool:{N}:intents   hash    intent id -> intent JSON    PX intent_ttl
    hathora-async:pool:{N}:snapshot  string  snapshot JSON               PX state_ttl
    hathora-async:pool:{N}:targets   string  targets JSON                PX state_ttl
    hathora-async:pool:{N}:members   zset    replica id, score: expiry   PX member_ttl
    hathora-async:pool:{N}:epoch     string  the store's lifetime id     PX state_ttl
    hathora-async:pool:{N}:seq       string  commits in this epoch       PX state_ttl
    hathora-async:pool:{N}:recovering string "1" after a restore       PX hold

- The lease is taken with ``SET lease token NX PX``; each new lease sets the
  fence above both the last one and Redis's clock in milliseconds, so a fence
  never repeats even after every key expired or was lost, and starts an epoch
  (``SET NX``) if there is none. Renewal and release are scripts that act only
  while the lease holds this replica's token.
- Every write is one script that first compares the caller's fence with the
  current one and refuses it if they differ; the write refreshes the TTLs of
  what it touches and counts itself in ``seq``. Records and the snapshot live
  ``state_ttl`` (a day) after the last write; intents ``intent_ttl`` after the
  last intent written (longer than the reconciler's ``intent_max_age``).
- The targets are global: a replica that finds none stores its own with
  ``SET NX`` (the first writer wins; the others follow what is stored and log
  a mismatch once); ``set_targets`` replaces them with a plain ``SET``. Each
  leader commit refreshes their TTL, so they outlive the pool by ``state_ttl``
  like its records. After a data loss, the first replica to notice stores the
  targets it was following.
- A data loss shows as a missing or changed ``epoch``, or a ``seq`` below one
  seen before. ``restore`` (unfenced) adds records and intents with ``HSETNX``
  (never changes or removes one), starts a new epoch when the old one is gone or
  still the one the caller saw, and sets ``recovering`` for ``hold``.
- Replicas heartbeat into ``members`` with an expiry ``member_ttl`` (three
  leases) ahead of Redis's clock; expired members are pruned on each access.
  A leaving replica counts as remaining only those that heartbeated within
  the last ``LEAVE_FRESH_LEASES`` (one) lease; the pool asks again a little
  more than a lease later to tell a live replica from a crashed one.
- Values are compact JSON arrays of a few dozen bytes (the snapshot: a few
  per region).

Guarantees and limits: a leader stops considering itself leader
``LEASE_SAFETY_FRACTION`` of the lease before the lease can expire in Redis,
measured from when its last successful renewal was *sent*, on its monotonic
clock. Redis is the single source of truth: a failover of Redis itself
(asynchronous replication) can lose the latest writes and a lease, so run it
without replicas or accept that window. Hathora does not check fences: a
leader paused between its last check and a request's departure can still
send that one request.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import _constants as C
from ._reconcile import CreateIntent, ProcessRecord, RegionCounts
from ._store import (
    Commit,
    FencedOutError,
    PoolState,
    Snapshot,
    StoreError,
    StoreUnavailableError,
    Targets,
)
from .models import ProcessStatus, Region

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster
    from redis.commands.core import AsyncScript

__all__ = ["RedisPoolStore"]

T = TypeVar("T")

# KEYS: lease, fence, epoch. ARGV: token, lease ms, state ms, a token to
# release first or "", an epoch to start if there is none.
# The new fence is above both the last one and Redis's clock in ms: it never
# repeats, even after the store lost or rolled back its data.
_ACQUIRE = """
redis.replicate_commands()
if ARGV[4] ~= '' and redis.call('GET', KEYS[1]) == ARGV[4] then
  redis.call('DEL', KEYS[1])
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fence = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if ms > fence then
  fence = ms
end
redis.call('SET', KEYS[2], string.format('%d', fence), 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[5], 'NX', 'PX', ARGV[3])
return fence
"""

# KEYS: lease, fence, epoch, seq. ARGV: token, lease ms, state ms.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for k = 2, 4 do
  redis.call('PEXPIRE', KEYS[k], ARGV[3])
end
return 1
"""

# KEYS: lease. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: fence, records, intents, snapshot, epoch, seq, targets.
# ARGV: fence, state ms, intent ms, snapshot or '', then four groups, each a
# count and its items: records to put (id, value), records to drop (id),
# intents to put (id, value), intents to drop (id).
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local i = 5
local function group(key, pairs, op)
  local n = tonumber(ARGV[i])
  i = i + 1
  local step = pairs and 2 or 1
  for j = i, i + n * step - 1, step do
    if pairs then
      redis.call(op, key, ARGV[j], ARGV[j + 1])
    else
      redis.call(op, key, ARGV[j])
    end
  end
  i = i + n * step
  return n
end
group(KEYS[2], true, 'HSET')
group(KEYS[2], false, 'HDEL')
if group(KEYS[3], true, 'HSET') > 0 then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
group(KEYS[3], false, 'HDEL')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[5], ARGV[2])
redis.call('PEXPIRE', KEYS[7], ARGV[2])
redis.call('INCR', KEYS[6])
redis.call('PEXPIRE', KEYS[6], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[2])
end
return 1
"""

# KEYS: records, intents, snapshot, epoch, seq, recovering, targets.
_LOAD = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
        redis.call('GET', KEYS[3]), redis.call('GET', KEYS[4]),
        redis.call('GET', KEYS[5]), redis.call('EXISTS', KEYS[6]),
        redis.call('GET', KEYS[7])}
"""

# KEYS: targets. ARGV: targets JSON, state ms, "NX" (store only if none) or "".
# Answers the targets stored after.
_TARGETS = """
if ARGV[3] == 'NX' then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return redis.call('GET', KEYS[1])
"""

# KEYS: records, intents, epoch, seq, recovering. ARGV: the epoch the caller
# knew or "", a new epoch, state ms, intent ms, hold ms, then records (a
# count, then id and value pairs) and intents (the same). Adds only (HSETNX).
_RESTORE = """
local epoch = redis.call('GET', KEYS[3])
if not epoch or epoch == ARGV[1] then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[4])
end
redis.call('SET', KEYS[5], '1', 'PX', ARGV[5])
local i = 6
for g = 1, 2 do
  local n = tonumber(ARGV[i])
  for j = i + 1, i + 2 * n, 2 do
    redis.call('HSETNX', KEYS[g], ARGV[j], ARGV[j + 1])
  end
  i = i + 1 + 2 * n
  if n > 0 then
    redis.call('PEXPIRE', KEYS[g], g == 1 and ARGV[3] or ARGV[4])
  end
end
return 1
"""

# KEYS: members. ARGV: replica id, member ms, "join", "leave" or "list", fresh ms.
# "leave" answers only the members whose expiry is more than "fresh ms" away:
# those that heartbeated lately, not a crashed one that has yet to lapse.
_MEMBERS = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == 'join' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif ARGV[3] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now + tonumber(ARGV[4])), '+inf')
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def _text(value: object) -> str:
    # The caller's client may or may not decode responses.
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[object]) -> dict[str, str]:
    items = [_text(v) for v in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _record_value(r: ProcessRecord) -> str:
    return _dump(
        [
            r.region.value,
            r.status.value,
            r.rooms_allocated,
            r.created_at,
            r.seen_at,
            r.missing_since,
        ]
    )


def _record(process_id: str, value: str) -> ProcessRecord:
    region, status, rooms, created, seen, missing = json.loads(value)
    return ProcessRecord(
        process_id,
        Region(region),
        ProcessStatus(status),
        int(rooms),
        float(created),
        float(seen),
        None if missing is None else float(missing),
    )


def _intent_value(i: CreateIntent) -> str:
    return _dump([i.region.value, i.sent_at, i.fence, i.server_sent, i.window])


def _intent(intent_id: str, value: str) -> CreateIntent:
    region, sent, fence, server_sent, *rest = json.loads(value)
    return CreateIntent(
        intent_id,
        Region(region),
        float(sent),
        int(fence),
        None if server_sent is None else float(server_sent),
        float(rest[0]) if rest else 0.0,  # written before the window was kept: none
    )


def _snapshot_value(s: Snapshot) -> str:
    counts = {r.value: [c.starting, c.idle, c.busy, c.failed] for r, c in s.counts.items()}
    return _dump(
        {
            "c": counts,
            "t": {r.value: n for r, n in s.targets.items()},
            "m": {r.value: n for r, n in s.max_per_region.items()},
            "l": s.leader,
            "f": s.fence,
            "w": s.written_at,
        }
    )


def _snapshot(key: str, value: str) -> Snapshot:
    d = json.loads(value)
    return Snapshot(
        counts={Region(r): RegionCounts(*map(int, c)) for r, c in d["c"].items()},
        targets={Region(r): int(n) for r, n in d["t"].items()},
        max_per_region={Region(r): int(n) for r, n in d["m"].items()},
        leader=str(d["l"]),
        fence=int(d["f"]),
        written_at=float(d["w"]),
    )


def _targets_value(t: Targets) -> str:
    return _dump(
        {
            "t": {r.value: n for r, n in t.targets.items()},
            "m": {r.value: n for r, n in t.max_per_region.items()},
        }
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _targets(key: str, value: str) -> Targets:
    d = json.loads(value)
    targets = {Region(r): _count(n) for r, n in d["t"].items()}
    limits = {Region(r): _count(n) for r, n in d["m"].items()}
    if set(limits) != set(targets) or any(limits[r] < n for r, n in targets.items()):
        raise ValueError(f"max_per_region {limits} does not fit targets {targets}")
    return Targets(targets, limits)


def _decode(what: str, key: str, decode: Callable[[str, str], T], value: str) -> T:
    try:
        return decode(key, value)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StoreError(f"unreadable {what} {key!r} in Redis: {exc}") from exc


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValueError(f"name must be a non-empty str of at most 200 characters, got {name!r}")
    if "{" in name or "}" in name:
        raise ValueError(f"name must not contain braces (they delimit the hash tag): {name!r}")
    return name


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisPoolStore:
    """A ``WarmPool``'s state in Redis, for several replicas of one matchmaker.

    ::

        import redis.asyncio as redis
        store = RedisPoolStore(redis.Redis.from_url(url), name="eu-matchmaker")

    ``redis`` is a ``redis.asyncio.Redis`` (or ``RedisCluster``) the caller
    owns and closes. ``name`` names the pool (replicas of one pool share it;
    no braces). ``lease_ttl`` (seconds, default 5) is how long a lease lasts
    unless renewed: a failover takes up to about twice that. ``replica_id``
    defaults to a random one. Each Redis call is bounded by ``op_timeout``
    (default a third of the lease) and raises ``StoreUnavailableError`` past it
    or on a connection error; ``FencedOutError`` when a write's fence is no
    longer current. ``clock`` is the monotonic clock the lease deadline uses.
    """

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        name: str,
        lease_ttl: float = C.DEFAULT_LEASE_TTL,
        replica_id: str | None = None,
        op_timeout: float | None = None,
        state_ttl: float = C.DEFAULT_POOL_STATE_TTL,
        intent_ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import redis.exceptions as redis_errors
        except ImportError as exc:
            raise ImportError(
                "RedisPoolStore needs redis-py: pip install 'hathora-async[redis]'"
            ) from exc
        self.name = _check_name(name)
        self.lease_ttl = _positive(lease_ttl, "lease_ttl")
        self._op_timeout = _positive(
            self.lease_ttl / 3 if op_timeout is None else op_timeout, "op_timeout"
        )
        self._state_ttl = _positive(state_ttl, "state_ttl")
        # Long enough for an intent to be looked for until the reconciler gives up.
        self._intent_ttl = _positive(
            2 * C.DEFAULT_INTENT_MAX_AGE if intent_ttl is None else intent_ttl, "intent_ttl"
        )
        self._member_ttl = C.MEMBER_TTL_LEASES * self.lease_ttl
        # A member whose expiry is nearer than this missed heartbeats for LEAVE_FRESH_LEASES.
        self._member_fresh = (C.MEMBER_TTL_LEASES - C.LEAVE_FRESH_LEASES) * self.lease_ttl
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self._redis = redis
        self._unreachable: tuple[type[BaseException], ...] = (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            asyncio.TimeoutError,
            OSError,
        )
        self._redis_error: type[BaseException] = redis_errors.RedisError
        self._clock = clock
        prefix = f"{C.POOL_KEY_PREFIX}{{{self.name}}}:"
        roles = (
            "lease",
            "fence",
            "records",
            "intents",
            "snapshot",
            "targets",
            "epoch",
            "seq",
            "recovering",
        )
        self.keys = {k: prefix + k for k in roles}
        """The pool's Redis keys by role (plus ``members``), as in the module docstring."""
        self.keys["members"] = prefix + "members"
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(text)
            for name, text in (
                ("acquire", _ACQUIRE),
                ("renew", _RENEW),
                ("release", _RELEASE),
                ("commit", _COMMIT),
                ("load", _LOAD),
                ("targets", _TARGETS),
                ("restore", _RESTORE),
                ("members", _MEMBERS),
            )
        }
        self._token: str | None = None
        self._fence: int | None = None
        self._deadline = -math.inf
        # A token whose lease may still hold in Redis though this replica gave it
        # up (a call timed out): released before the next acquisition.
        self._stale: str | None = None

    def __repr__(self) -> str:
        return (
            f"RedisPoolStore(name={self.name!r}, replica_id={self.replica_id!r}, "
            f"leader={self.is_leader})"
        )

    # -- leadership, locally -------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._token is not None and self._clock() < self._deadline

    @property
    def fence(self) -> int | None:
        return self._fence if self.is_leader else None

    # -- calls -----------------------------------------------------------------

    async def _call(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        call: Awaitable[Any] = self._scripts[script](keys=list(keys), args=list(args))
        try:
            return await asyncio.wait_for(call, self._op_timeout)
        except self._unreachable as exc:
            raise StoreUnavailableError(
                f"Redis did not answer {script!r} within {self._op_timeout:g}s: {exc!r}"
            ) from exc
        except self._redis_error as exc:
            raise StoreError(f"Redis refused {script!r}: {exc}") from exc

    def _keep(self, started: float) -> None:
        # Measured from when the call was sent: the lease began no earlier in Redis.
        self._deadline = started + self.lease_ttl * (1 - C.LEASE_SAFETY_FRACTION)

    def _drop_lease(self, *, stale: bool) -> None:
        if stale and self._token is not None:
            self._stale = self._token
        self._token = None
        self._fence = None
        self._deadline = -math.inf

    # -- lease -------------------------------------------------------------------

    async def acquire(self) -> bool:
        """Take the lease if free (a new, larger fence), or renew it if held."""
        if self._token is not None and await self.renew():
            return True
        token = f"{self.replica_id}:{uuid.uuid4().hex[:8]}"
        started = self._clock()
        try:
            fence = await self._call(
                "acquire",
                (self.keys["lease"], self.keys["fence"], self.keys["epoch"]),
                (
                    token,
                    _ms(self.lease_ttl),
                    _ms(self._state_ttl),
                    self._stale or "",
                    uuid.uuid4().hex,
                ),
            )
        except StoreUnavailableError:
            # The SET may have landed: release that lease at the next contact.
            self._stale = token
            raise
        self._stale = None
        if not int(fence):
            return False
        self._token, self._fence = token, int(fence)
        self._keep(started)
        return self.is_leader

    async def renew(self) -> bool:
        """Extend the held lease; False once it is lost (then call ``acquire``)."""
        token = self._token
        if token is None:
            return False
        started = self._clock()
        try:
            held = await self._call(
                "renew",
                [self.keys[k] for k in ("lease", "fence", "epoch", "seq")],
                (token, _ms(self.lease_ttl), _ms(self._state_ttl)),
            )
        except StoreUnavailableError:
            if self._clock() >= self._deadline:
                self._drop_lease(stale=True)  # keep no lease past its deadline
            raise
        if token != self._token:  # released meanwhile
            return False
        if not int(held):
            self._drop_lease(stale=False)
            return False
        self._keep(started)
        return self.is_leader

    async def release(self) -> None:
        """Give up the lease now; if Redis cannot be reached, it expires by itself."""
        token = self._token or self._stale
        self._drop_lease(stale=False)
        self._stale = None
        if token is not None:
            try:
                await self._call("release", (self.keys["lease"],), (token,))
            except StoreUnavailableError:
                self._stale = token
                raise

    # -- state -------------------------------------------------------------------

    async def load(self) -> PoolState:
        """Records, intents and snapshot, read in one script (one consistent view)."""
        roles = ("records", "intents", "snapshot", "epoch", "seq", "recovering", "targets")
        records, intents, snapshot, epoch, seq, recovering, targets = await self._call(
            "load", [self.keys[k] for k in roles], ()
        )
        return PoolState(
            epoch=None if epoch is None else _text(epoch),
            seq=0 if seq is None else int(_text(seq)),
            recovering=bool(int(recovering)),
            records={k: _decode("record", k, _record, v) for k, v in _pairs(records).items()},
            intents={k: _decode("intent", k, _intent, v) for k, v in _pairs(intents).items()},
            snapshot=(
                None
                if snapshot is None
                else _decode("snapshot", self.keys["snapshot"], _snapshot, _text(snapshot))
            ),
            targets=None if targets is None else self._read_targets(targets),
        )

    def _read_targets(self, value: object) -> Targets:
        return _decode("targets", self.keys["targets"], _targets, _text(value))

    async def claim_targets(self, targets: Targets) -> Targets:
        """Store ``targets`` unless some are (``SET NX``: the first writer wins); the stored."""
        stored = await self._call(
            "targets",
            (self.keys["targets"],),
            (_targets_value(targets), _ms(self._state_ttl), "NX"),
        )
        return self._read_targets(stored)

    async def set_targets(self, targets: Targets) -> None:
        """Replace the stored targets (one ``SET``; every replica follows at its next pass)."""
        await self._call(
            "targets",
            (self.keys["targets"],),
            (_targets_value(targets), _ms(self._state_ttl), ""),
        )

    async def commit(self, change: Commit, *, fence: int) -> None:
        """Apply ``change`` atomically; ``FencedOutError`` if ``fence`` is not current."""
        args: list[str | int] = [
            str(fence),
            _ms(self._state_ttl),
            _ms(self._intent_ttl),
            "" if change.snapshot is None else _snapshot_value(change.snapshot),
        ]
        args.append(len(change.put_records))
        for record in change.put_records:
            args += [record.process_id, _record_value(record)]
        args.append(len(change.drop_records))
        args += change.drop_records
        args.append(len(change.put_intents))
        for intent in change.put_intents:
            args += [intent.intent_id, _intent_value(intent)]
        args.append(len(change.drop_intents))
        args += change.drop_intents
        roles = ("fence", "records", "intents", "snapshot", "epoch", "seq", "targets")
        keys = [self.keys[k] for k in roles]
        if not int(await self._call("commit", keys, args)):
            if fence == self._fence:
                self._drop_lease(stale=False)  # another replica took over
            raise FencedOutError(
                f"warm pool {self.name}: fence {fence} is no longer current; another replica leads"
            )

    async def restore(
        self,
        records: Iterable[ProcessRecord],
        intents: Iterable[CreateIntent],
        *,
        seen: str | None,
        hold: float,
    ) -> None:
        """Add the records and intents Redis lacks (after a data loss); see ``PoolStore``."""
        puts = [(r.process_id, _record_value(r)) for r in records]
        more = [(i.intent_id, _intent_value(i)) for i in intents]
        args: list[str | int] = [
            seen or "",
            uuid.uuid4().hex,
            _ms(self._state_ttl),
            _ms(self._intent_ttl),
            _ms(hold),
        ]
        for group in (puts, more):
            args.append(len(group))
            for key, value in group:
                args += [key, value]
        roles = ("records", "intents", "epoch", "seq", "recovering")
        await self._call("restore", [self.keys[k] for k in roles], args)

    # -- membership ----------------------------------------------------------------

    async def _members(self, op: str) -> list[str]:
        found = await self._call(
            "members",
            (self.keys["members"],),
            (self.replica_id, _ms(self._member_ttl), op, _ms(self._member_fresh)),
        )
        return sorted(_text(m) for m in found)

    async def heartbeat(self) -> int:
        """Renew this replica's membership (it lapses after three leases); live count."""
        return len(await self._members("join"))

    async def leave(self) -> int:
        """Withdraw this replica (again: a no-op); how many others remain (0: the last).

        Only replicas that heartbeated within the last lease count; one that
        crashed less than a lease ago still does, so the pool asks again a
        little more than a lease later before acting as the last.
        """
        return len(await self._members("leave"))

    async def members(self) -> list[str]:
        """The live replicas' ids, sorted."""
        return await self._members("list")
