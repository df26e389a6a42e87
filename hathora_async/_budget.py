"""The send budget: how fast one client (and its ``with_options`` siblings) sends.

Every attempt of every call waits for the budget before it is sent, and
reports its answer after: a success, or a 429 (the server refused to act
because the app sends too fast). One budget per ``Transport``, so siblings
share it, and so do ``preallocate``, the waits and ``WarmPool``.

The approach follows botocore's "adaptive" retry mode (a client-side token
bucket whose fill rate follows throttling answers, CUBIC, TCP's congestion
control, to probe back up, and growth capped by the measured sending rate;
see botocore/retries/adaptive.py), adapted to short, bursty jobs against a
gateway that answers ``Retry-After``, where each limit costs a pause:

1. Before the server has said anything, at most ``RATE_INITIAL_WINDOW``
   requests go at once (plus as many per second) and each success lets
   ``RATE_START_GAIN`` more go (TCP's slow start, clocked by answers): a
   client with no confirmed limit stops gating after ``RATE_OPEN_AFTER``
   successes, and from then on the budget costs one attribute read before
   each attempt, and one call after each answer.
2. Two *lanes*: writes (POST: creates, stops) and reads (GET: polls, lists).
   A 429 is read as a *limit* only when its lane has had at least
   ``RATE_CONFIRM_REFUSALS`` refusals in the last ``RATE_CONFIRM_WINDOW``
   seconds that are at least ``RATE_CONFIRM_SHARE`` of its answers (a
   gateway's overload refuses most; stray 429s stay at their base rate), or
   ``RATE_PROBE_SHARE`` when pacing at or above a limit already confirmed.
   A stray 429 delays only its own call (its ``Retry-After``, or the policy's
   first delays: were they a storm they would be a limit), and changes no
   estimate. Each cut is watched (``_Check``): a gateway's refusals depend on
   the send rate, strays do not. If the first ``RATE_STRAY_SAMPLE`` answers
   after it are refused about as much as before (and from the start), while
   their successes per second fell with the pace, they were strays: the cut is
   undone and their share learned, which confirmation must then exceed by
   ``RATE_STRAY_MARGIN``.
3. A limit is the app's (one pace and pause shared by both lanes) unless the
   other lane shows it is unaffected: ``RATE_LANE_EVIDENCE`` successes in the
   confirm window, no refusal for ``RATE_LANE_MEMORY`` seconds, and no
   app-wide cut meanwhile. Then only the refused lane is paced and paused.
   With no evidence (the first limit of a job that only creates), it is the
   app's. A limit's ``Retry-After`` (at most the policy's
   ``max_retry_after``; a longer one pauses nobody, its call ends at once)
   pauses its scope.
4. The limit's rate is estimated from the successes of its scope since the
   server's bucket was last full (after a pause, or the previous limit), less
   the burst it allowed at first: for a token-bucket gateway of rate R and
   burst B, successes over the window ending at the refusals are B + R x
   window, so the best window gives R, never less than what the server took
   in the last second. A pause refills the bucket from empty by the last
   limit's rate times the pause at most, not to B. Where the model explains
   nothing (a limit met again, at least ``RATE_MEASURE_WINDOW`` after the
   first, whose successes it calls all burst: a sliding or fixed window
   admits its count anew each window, a bucket may hold far more than its
   refill), the successes of the last ``RATE_MEASURE_WINDOW`` seconds are the
   estimate, whatever the limiter's shape. The pace goes ``RATE_MARGIN`` below
   that. A first
   limit that says nothing about R ramps instead: doubling every
   ``RATE_RAMP_DOUBLING`` seconds from twice that burst per second until the
   next limit, which does, but never above twice the successes of the last
   doubling time (a ramp per round of answers, not of the clock); with no
   demand it settles at that, not at what the clock would have made.
5. While answers succeed a pace grows along a CUBIC curve, relative to the
   rate at the last cut (flat near it, then probing above it), never above
   ``max_per_second`` nor above ``RATE_MAX_OVER_USED`` times the measured
   sending rate (answers per second, refusals included). Once
   ``RATE_RAMP_ABOVE`` times that rate without a limit, and with more
   successes above it since the cut than the server's burst explains (a
   bucket's credit saved while paced below it would let a probe through for
   a while), the limit has moved: the pace ramps as in 4.

Pacing is a GCRA schedule (a virtual time per request, equivalent to a token
bucket) per pace: a lane's own, and the shared one (the app-wide limit, or
``max_per_second``). Each lane's queue is served head of line: only its first
waiter sleeps, with the call's own sleep function, until its slot, then hands
the head to the next, so a new pace or a pause applies at once and nothing is
booked ahead. When both lanes' heads wait for the shared pace, writes take its
slots but reads get at least one in ``RATE_READ_EVERY``: polls progress while
creates are backlogged, and polling cannot starve creates. ``close()``,
cancellation and an injected sleep apply to the wait as to any pause between
retries. All constants are in ``_constants``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from typing import Any

import attrs

from . import _constants as C
from .errors import HathoraTimeoutError

__all__ = ["RateLimit", "RateLimitState", "SendBudget", "not_sent"]

logger = logging.getLogger(C.LOGGER_NAME)

Sleep = Callable[[float], Awaitable[None]]

_OPEN = "open"  # nothing counted for lanes without a pace: no limit seen (or none wanted)
_START = "start"  # slow start: answers clock the requests out

# A budget turn already taken for the next attempt of this task (see ``turn``).
_PREPAID: contextvars.ContextVar[SendBudget | None] = contextvars.ContextVar(
    "hathora_async_prepaid", default=None
)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_rate(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if not _is_number(value):
        raise TypeError(f"{attribute.name} must be a number or None, not {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number > 0 or None, got {value!r}")


def _check_burst(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int or None, not {value!r}")
    if value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1 or None, got {value!r}")


def _check_bool(_: object, attribute: attrs.Attribute[Any], value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be True or False, not {value!r}")


def _as_rate(value: float | None) -> float | None:
    # Only numbers become floats: anything else is left for the validator to refuse.
    return float(value) if value is not None and _is_number(value) else value


@attrs.frozen
class RateLimit:
    """How fast a ``HathoraClient`` may send: ``HathoraClient(rate_limit=RateLimit(...))``.

    - ``max_per_second``: a ceiling in requests per second over all calls of
      the client and its ``with_options`` siblings, when you know your quota;
      the client starts at it. None (the default): no ceiling, the client
      finds the server's limit from its 429 answers.
    - ``burst``: requests that may go at once when pacing. None (the
      default): a tenth of a second's worth, and never more than the server
      was seen to allow at once.
    - ``adaptive``: slow down when the server's 429 answers show a limit,
      and probe back up while calls succeed (True, the default). False
      keeps the pace at ``max_per_second`` (or unlimited).

    Raises ``TypeError`` for a value of the wrong type (a str, a bool for a
    number, a float ``burst``, anything but a bool for ``adaptive``) and
    ``ValueError`` for zero, a negative, NaN or an infinite value.

    Whatever the settings, a 429 (a refusal: the server did nothing) does
    not use up a call's retry ``attempts``: it is retried until the call's
    deadline, unless the policy is ``RetryPolicy.none()``. A lone 429 delays
    only its own call; once 429s show a limit, its ``Retry-After`` pauses
    every call the limit applies to (at most the retry policy's
    ``max_retry_after``). ``HathoraClient(rate_limit=None)`` turns the
    budget off: each call then retries on its own, as before.
    """

    max_per_second: float | None = attrs.field(
        default=None, validator=_check_rate, converter=_as_rate
    )
    burst: int | None = attrs.field(default=None, validator=_check_burst)
    adaptive: bool = attrs.field(default=True, validator=_check_bool)


@attrs.frozen
class RateLimitState:
    """What the client's send budget looks like now (``client.rate_limit_state``).

    ``rate``: the tightest pace of any call now, in requests per second (a
    float), None while not pacing (no limit seen and no ``max_per_second``).
    ``write_rate`` and ``read_rate``: the pace of writes (POST: creates,
    stops) and of reads (GET: polls, lists), each its own limit's or the
    app-wide one, whichever is lower; None when that lane is not paced.
    ``throttled``: 429 answers seen since the client was made (stray ones
    included). ``paused_until``: when the latest ``Retry-After`` pause ends,
    as a reading of the client's clock (``time.monotonic`` unless replaced),
    None when not paused. ``max_per_second`` and ``adaptive`` echo the settings.
    """

    rate: float | None
    throttled: int
    paused_until: float | None
    max_per_second: float | None
    adaptive: bool
    write_rate: float | None = None
    read_rate: float | None = None


class _Waiter:
    """One attempt queued for a paced lane; its event says it is now first."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()


class _Pace:
    """One GCRA schedule whose rate follows confirmed limits (estimate, then CUBIC)."""

    __slots__ = (
        "base",
        "burst_count",
        "credit",
        "cut_at",
        "full",
        "full_since",
        "k",
        "lanes",
        "origin",
        "paused_until",
        "ramp",
        "rate",
        "server_burst",
        "storm_at",
        "tat",
        "w_max",
    )

    # What a cut changes, and an undo restores (see ``_Check``).
    SAVED = (
        "base", "burst_count", "credit", "cut_at", "full", "full_since", "k", "origin",
        "paused_until", "ramp", "rate", "server_burst", "storm_at", "tat", "w_max",
    )  # fmt: skip

    def __init__(self, lanes: tuple[_Lane, ...]) -> None:
        self.lanes = lanes  # whose successes its estimates count
        self.rate: float | None = None
        self.tat = -math.inf  # the virtual time of the next free slot
        self.paused_until = -math.inf
        self.ramp = False
        self.base = 0.0
        self.w_max = 0.0
        self.k = 0.0
        self.origin = 0.0
        self.cut_at = -math.inf
        self.storm_at: float | None = None
        self.burst_count = 0
        self.server_burst: float | None = None
        self.full = True  # the server's bucket, as far as estimates go
        self.credit = math.inf  # what it can hold then: its burst, or a pause's refill
        self.full_since = -math.inf

    def saved(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.SAVED}

    def restore(self, saved: dict[str, Any]) -> None:
        for name, value in saved.items():
            setattr(self, name, value)

    def used(self, now: float) -> int:
        """The measured sending rate: answers per second (the busier of the last two)."""
        return sum(lane.used(now) for lane in self.lanes)

    def count_since(self, since: float) -> int:
        count = 0
        for lane in self.lanes:
            for when in reversed(lane.history):
                if when < since:
                    break
                count += 1
        return count

    def history(self) -> list[float]:
        """Success times of its lanes, newest first."""
        if len(self.lanes) == 1:
            return list(reversed(self.lanes[0].history))
        return sorted((t for lane in self.lanes for t in lane.history), reverse=True)


class _Lane:
    """Writes or reads: their queue, their own pace, and what their answers say."""

    __slots__ = (
        "bucket",
        "history",
        "last_refused",
        "last_second",
        "ok",
        "ok_before",
        "pace",
        "queue",
        "refused",
        "refused_before",
        "roll_at",
        "second",
        "strays",
        "this_second",
        "write",
    )

    def __init__(self, write: bool) -> None:
        self.write = write
        self.queue: deque[_Waiter] = deque()
        self.history: deque[float] = deque(maxlen=C.RATE_HISTORY)  # success times
        self.pace = _Pace((self,))
        self.last_refused = -math.inf
        self.strays = 0.0  # the share of stray 429s learned (see ``_Check``)
        # Answers in two half-window buckets: the current one and the one before.
        self.bucket = -math.inf
        self.ok = self.refused = self.ok_before = self.refused_before = 0
        self.second = -math.inf
        self.this_second = self.last_second = 0
        self.roll_at = -math.inf  # see answered()

    def answered(self, now: float, ok: bool) -> None:
        if now - self.bucket >= C.RATE_CONFIRM_WINDOW / 2:
            if now - self.bucket < C.RATE_CONFIRM_WINDOW:
                self.ok_before, self.refused_before = self.ok, self.refused
            else:
                self.ok_before = self.refused_before = 0
            self.bucket = now
            self.ok = self.refused = 0
        if now - self.second >= 1.0:
            self.last_second = self.this_second if now - self.second < 2.0 else 0
            self.second = now
            self.this_second = 0
        self.this_second += 1
        if ok:
            self.ok += 1
            self.history.append(now)
        else:
            self.refused += 1
            self.last_refused = now
        # Until then neither window above rolls over: a success before
        # it only counts (see SendBudget.passed, which skips this call then).
        self.roll_at = min(self.second + 1.0, self.bucket + C.RATE_CONFIRM_WINDOW / 2)

    def recent(self, now: float) -> tuple[int, int]:
        """(successes, refusals) within about the last ``RATE_CONFIRM_WINDOW``."""
        age = now - self.bucket
        if age >= C.RATE_CONFIRM_WINDOW:
            return 0, 0
        if age >= C.RATE_CONFIRM_WINDOW / 2:
            return self.ok, self.refused
        return self.ok + self.ok_before, self.refused + self.refused_before

    def used(self, now: float) -> int:
        if now - self.second >= 2.0:
            return 0
        if now - self.second >= 1.0:
            return self.this_second
        return max(self.last_second, self.this_second)


class _Check:
    """A cut under watch: the answers to requests sent after it say whether it
    met a limit or strays (``RATE_STRAY_*`` in ``_constants``)."""

    __slots__ = (
        "before",
        "early",
        "first",
        "generation",
        "ok",
        "refused",
        "saved",
        "scope",
        "share",
    )

    def __init__(
        self, scope: _Pace, saved: dict[str, Any], generation: int, share: float, before: float
    ) -> None:
        self.scope = scope
        self.saved = saved  # the pace before the cut
        self.generation = generation
        self.share = share  # the refusal share that confirmed it
        self.before = before  # successes per second before it
        self.ok = self.refused = self.early = 0
        self.first = math.inf  # when its first answer came


def withdraw_close_cancel(task: asyncio.Task[Any]) -> bool:
    """Withdraw a close's cancellation of ``task``; True if nobody else cancelled it too."""
    uncancel = getattr(task, "uncancel", None)
    # Python 3.10 cannot tell cancellations apart: the close is the likely one.
    return uncancel is None or uncancel() == 0


def not_sent(method: str, path: str) -> HathoraTimeoutError:
    """The error of a call whose deadline passed while it waited for the budget."""
    error = HathoraTimeoutError(
        "call deadline exceeded while waiting for the send budget; the request was not sent"
    )
    error._locate(method, path, outcome_unknown=False)
    error.attempts = 0
    return error


class SendBudget:
    """One client's send budget (see the module docstring). ``None`` settings: off."""

    def __init__(self, settings: RateLimit | None, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.enabled = settings is not None
        chosen = settings if settings is not None else RateLimit(adaptive=False)
        self._adaptive = self.enabled and chosen.adaptive
        self._ceiling = chosen.max_per_second
        self._burst = chosen.burst
        self.generation = 0
        """Bumped at each cut: a 429 to a request sent before the last cut is old news."""
        self.throttled = 0
        self._epoch = 0  # bumped when sleeping waiters must look again
        self._grants = 0  # slots of the shared pace taken
        self._writes_in_row = 0  # shared slots writes took while a read waited
        self._write = _Lane(True)
        self._read = _Lane(False)
        self._shared = _Pace((self._write, self._read))  # app-wide limit, or the ceiling
        self._last_scope: _Pace | None = None
        self._settled = -math.inf  # refusals before this belong to the last cut
        self._check: _Check | None = None
        self._fresh = 0  # answers to attempts sent before this generation say nothing new
        self._waiting: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._ended_by_close: set[asyncio.Task[Any]] = set()
        self._sent = 0
        self._ok = 0
        self._start_at: float | None = None
        self._mode = _OPEN
        if self._ceiling is not None:
            self._settle(self._shared, clock(), self._ceiling, self._ceiling)
        elif self._adaptive:
            self._mode = _START
        self.gated = self._mode != _OPEN or self._ceiling is not None
        """True when an attempt must call ``acquire`` before it is sent."""

    # -- reading it ----------------------------------------------------------

    def _lane_rate(self, lane: _Lane) -> float | None:
        rates = [r for r in (lane.pace.rate, self._shared.rate) if r is not None]
        return float(min(rates)) if rates else None

    def state(self) -> RateLimitState:
        """A snapshot for ``client.rate_limit_state``."""
        now = self._clock()
        write, read = self._lane_rate(self._write), self._lane_rate(self._read)
        rates = [r for r in (write, read) if r is not None]
        paused = max(self._shared.paused_until, self._write.pace.paused_until)
        paused = max(paused, self._read.pace.paused_until)
        return RateLimitState(
            rate=min(rates) if rates else None,
            throttled=self.throttled,
            paused_until=paused if paused > now else None,
            max_per_second=self._ceiling,
            adaptive=self._adaptive,
            write_rate=write,
            read_rate=read,
        )

    # -- answers -------------------------------------------------------------

    def passed(self, ticket: int, write: bool = True) -> None:
        """An attempt (a write or a read) sent when ``generation`` was ``ticket`` succeeded."""
        # -- ungated fast path: every success of an open budget passes here --
        if not self.gated:
            # Open, nothing paced or paused (no pace exists while ungated; a budget
            # that is off is never gated): only the answer counts, for telling a
            # later limit from strays. Within both of the lane's windows, that is
            # ``answered(now, True)`` without its call and its rollover checks.
            if self.enabled:
                lane = self._write if write else self._read
                now = self._clock()
                if now < lane.roll_at:
                    lane.this_second += 1
                    lane.ok += 1
                    lane.history.append(now)
                else:
                    lane.answered(now, True)
            return
        # --
        if not self.enabled:
            return
        now = self._clock()
        lane = self._write if write else self._read
        lane.answered(now, True)
        if ticket == 0 < self.generation:
            # Sent before the first limit, answered after it: part of that burst.
            for pace in (self._shared, lane.pace):
                storm = pace.storm_at
                if storm is not None and pace.server_burst is None:
                    pace.burst_count += now < storm + C.RATE_STORM_WINDOW
                    if pace.ramp and pace.rate is not None and 2.0 * pace.burst_count > pace.base:
                        # Refusals came back first: the ramp starts from the burst seen.
                        pace.base = 2.0 * pace.burst_count
                        pace.rate = self._clamp(max(pace.rate, pace.base))
        check = self._check
        if check is not None and ticket == check.generation and lane in check.scope.lanes:
            check.ok += 1
            check.first = min(check.first, now)
            self._judge(check, now)
        if self._mode == _START:
            self._ok += 1
            if self._ok >= C.RATE_OPEN_AFTER:
                self._mode = _OPEN
                self._regate(now)
        if self._adaptive:
            if lane.pace.rate is not None:
                self._grow(lane.pace, now)
            if self._shared.rate is not None:
                self._grow(self._shared, now)

    def refused(
        self, ticket: int, retry_after: float | None, cap: float, write: bool = True
    ) -> bool:
        """An attempt sent when ``generation`` was ``ticket`` was answered 429.

        True when the budget now holds the call's next attempt back for it:
        its lane is paused for the ``Retry-After`` (when it has one), or paced
        (when it has none), because the 429 belongs to a limit. False when
        the call waits on its own (a stray 429, or nothing paces it): its
        ``Retry-After``, or its policy's backoff. A ``Retry-After`` above
        ``cap`` pauses nobody (its call ends at once).
        """
        if not self.enabled:
            return False
        now = self._clock()
        self.throttled += 1
        lane = self._write if write else self._read
        lane.answered(now, False)
        pause = retry_after if retry_after and retry_after <= cap else None
        check = self._check
        if check is not None and ticket == check.generation and lane in check.scope.lanes:
            check.early += 2 * (check.ok + check.refused) < C.RATE_STRAY_SAMPLE
            check.refused += 1
            check.first = min(check.first, now)
            if self._judge(check, now):
                return False  # strays: each waits on its own
        scope = self._last_scope
        if (
            scope is not None
            and (ticket != self.generation or now < self._settled)
            and (scope is self._shared or scope is lane.pace)
        ):
            # Sent before the last cut, or just after it (the server's bucket
            # was still empty): the same episode, one cut is enough.
            if pause is not None:
                self._pause(scope, now + pause)
            return self._holds(lane, now, retry_after)
        if ticket < self._fresh or not self._confirms(lane, now):
            # A stray (or sent before strays were found): it delays its own call
            # only. Without a Retry-After it is retried after the policy's first
            # delays: adaptive, the budget would have confirmed a storm of them as
            # a limit, so 429s need not grow the backoff (an unlucky create would
            # otherwise wait seconds while the others succeed).
            return self._adaptive and retry_after is None
        scope = self._scope_of(lane, now)
        self.generation += 1
        self._last_scope = scope
        self._settled = now + C.RATE_STORM_WINDOW
        resume = max(now, now + pause if pause is not None else now, scope.paused_until)
        if self._adaptive:
            ok, refusals = lane.recent(now)
            before = float(scope.count_since(now - 1.0))
            saved = scope.saved()
            self._cut(scope, now, resume)
            share = refusals / max(1, ok + refusals)
            if scope.ramp:
                before = math.inf  # a ramp's successes grow by design: no comparison
            check = self._check
            if check is not None and check.scope is scope:
                # Cut again before its sample was in: one watch (and one undo) for both.
                check.generation = self.generation
            else:
                self._check = _Check(scope, saved, self.generation, share, before)
        if pause is not None:
            self._pause(scope, now + pause)
        self._regate(now)
        return self._holds(lane, now, retry_after)

    def unavailable(self, retry_after: float | None, cap: float) -> bool:
        """A 503 with a ``Retry-After`` (issue 12): the service, not one call, is
        unavailable until then, so every call pauses (no cut: it says nothing of
        the rate). True when it paused; a 503 without one, or above ``cap``,
        pauses nobody (as for a 429).
        """
        if not self.enabled or not retry_after or retry_after > cap:
            return False
        self._pause(self._shared, self._clock() + retry_after)
        return True

    def _holds(self, lane: _Lane, now: float, retry_after: float | None) -> bool:
        if retry_after:
            until = max(self._shared.paused_until, lane.pace.paused_until)
            return until >= now + retry_after - 1e-9
        return self._lane_rate(lane) is not None

    def _confirms(self, lane: _Lane, now: float) -> bool:
        """Whether the lane's recent refusals look like a limit, not strays."""
        ok, refused = lane.recent(now)
        if refused < C.RATE_CONFIRM_REFUSALS:
            return False
        share = C.RATE_CONFIRM_SHARE
        for pace in (lane.pace, self._shared):
            if pace.rate is not None and pace.w_max > 0 and pace.rate >= pace.w_max:
                share = C.RATE_PROBE_SHARE  # probing above a known limit: this is its answer
        if lane.strays > 0:
            # Strays seen at this share: a limit must refuse clearly more, and often.
            if refused < C.RATE_STRAY_REFUSALS:
                return False
            share = max(share, lane.strays + C.RATE_STRAY_MARGIN)
        return refused >= share * (ok + refused)

    def _judge(self, check: _Check, now: float) -> bool:
        """Whether the watched cut met strays (then undone: True), once its sample is in."""
        answers = check.ok + check.refused
        if answers < C.RATE_STRAY_SAMPLE:
            return False
        self._check = None
        scope = check.scope
        share = check.refused / answers
        success = check.ok / max(now - check.first, C.RATE_ESTIMATE_MIN_WINDOW)
        if not (
            C.RATE_STRAY_FLOOR <= share <= C.RATE_STRAY_MAX
            and share >= C.RATE_STRAY_SAME * check.share
            # Strays come all along; a limit that moved meanwhile, from then on.
            and 4 * check.early >= check.refused
            # Strays follow the pace down; a saturated limit's successes stay.
            and success <= C.RATE_STRAY_TRACK * check.before
        ):
            return False  # the cut met a limit (or cannot tell): it stays
        # Paced lower, refused as much: the refusals do not follow the send rate.
        scope.restore(check.saved)
        for lane in scope.lanes:
            lane.strays = max(lane.strays, share)
        self.generation += 1
        self._fresh = self.generation
        self._last_scope = None
        self._epoch += 1
        for lane in scope.lanes:
            if lane.queue:
                lane.queue[0].event.set()
        self._regate(now)
        logger.info(
            "send budget: %.0f %% of answers are 429 whatever the pace: strays, not a limit;"
            " back to %s",
            100 * share,
            "unlimited" if scope.rate is None else f"{scope.rate:.1f} requests/s",
        )
        return True

    def _scope_of(self, lane: _Lane, now: float) -> _Pace:
        """The app's limit, or this lane's alone when the other lane shows it is unaffected."""
        other = self._read if lane.write else self._write
        if (
            other.last_refused < now - C.RATE_LANE_MEMORY
            and self._shared.cut_at < now - C.RATE_LANE_MEMORY
            and other.recent(now)[0] >= C.RATE_LANE_EVIDENCE
        ):
            return lane.pace
        return self._shared

    def _pause(self, scope: _Pace, until: float) -> None:
        if until > scope.paused_until:
            scope.paused_until = until
            # Waiting lets the server's bucket fill up: estimates count from here.
            # From empty (it just refused), by the limit's rate times the pause
            # at most: a large bucket is far from full again after a short pause.
            if not scope.ramp and scope.w_max > 0:
                scope.credit = scope.w_max * (until - scope.cut_at)
            else:
                scope.credit = math.inf
            scope.full_since = max(scope.full_since, until)
            scope.full = True
            scope.tat = max(scope.tat, until) if scope.rate is not None else until
            self._epoch += 1
            self.gated = True

    def _regate(self, now: float) -> None:
        self.gated = (
            self._mode != _OPEN
            or self._shared.rate is not None
            or self._write.pace.rate is not None
            or self._read.pace.rate is not None
            or now < max(self._shared.paused_until, self._write.pace.paused_until)
            or now < self._read.pace.paused_until
        )

    # -- adapting ------------------------------------------------------------

    def _burst_seen(self, pace: _Pace, now: float) -> float | None:
        """What the server let through at once: the successes around the first limit."""
        if pace.server_burst is None and pace.storm_at is not None:
            # Answers to one burst arrive in any order: those sent before the
            # limit and answered just after it count too (see ``passed``).
            count = float(max(1, pace.burst_count))
            if now >= pace.storm_at + C.RATE_STORM_WINDOW:
                pace.server_burst = count
            return count
        return pace.server_burst

    def _estimate(self, pace: _Pace, now: float) -> float | None:
        """The server's rate from the scope's successes since its bucket was last full."""
        # The server's bucket was full after a pause, empty right after a cut.
        burst = min(self._burst_seen(pace, now) or 0.0, pace.credit) if pace.full else 0.0
        best: float | None = None
        for count, when in enumerate(pace.history(), 1):
            if when < pace.full_since:
                break
            span = now - when
            if span >= C.RATE_ESTIMATE_MIN_WINDOW:
                rate = (count - burst) / span
                if best is None or rate > best:
                    best = rate
        # Whatever the windows say, the server took the last second's successes.
        last = pace.count_since(now - C.RATE_MEASURE_WINDOW) / C.RATE_MEASURE_WINDOW
        floor = last - burst / C.RATE_MEASURE_WINDOW
        if best is not None and floor > best:
            best = floor
        if (
            (best is None or best < C.RATE_MIN)
            and pace.storm_at is not None
            and now - pace.storm_at >= C.RATE_MEASURE_WINDOW
        ):
            # A limit again, and its successes since the bucket was full were all
            # "burst": the burst model does not fit (a window limiter admits its
            # count anew each window; a large bucket refills by far less than its
            # burst during a pause). What the server took in the last window of
            # this length is its rate, whatever its shape.
            best = last
        return best if best is not None and best >= C.RATE_MIN else None

    def _cut(self, pace: _Pace, now: float, resume: float) -> None:
        old = pace.rate
        if pace.storm_at is None:
            # The first limit: the successes just before its first refusals
            # are the burst the server allowed.
            pace.storm_at = now
            pace.burst_count = pace.count_since(now - C.RATE_STORM_WINDOW)
        estimate = self._estimate(pace, now)
        if old is None or pace.ramp:
            if estimate is not None:
                self._settle(pace, resume, estimate, estimate * (1 - C.RATE_MARGIN))
            elif old is None:
                pace.ramp = True
                burst = self._burst_seen(pace, now) or 1.0
                pace.base = max(C.RATE_RAMP_MIN_BASE, 2.0 * burst)
                pace.origin = resume
                pace.rate = self._clamp(pace.base)
            else:
                self._settle(pace, resume, old, old * C.RATE_BETA)
        elif estimate is not None:
            # Never below what the server demonstrably accepted (the estimate's floor).
            self._settle(pace, resume, estimate, estimate * (1 - C.RATE_MARGIN))
        else:
            self._settle(pace, resume, old, old * C.RATE_BETA)
        pace.cut_at = now
        self._mode = _OPEN  # the server has spoken: no more slow start
        pace.full_since = max(pace.full_since, now)
        pace.full = False
        # No burst right after a cut, and nothing until the server's bucket
        # has had time for a token (a pause, if any, comes on top).
        rate = pace.rate
        assert rate is not None
        pace.tat = now + self._capacity(pace, rate) / rate
        self._epoch += 1
        lanes = "writes" if pace.lanes[0].write else "reads"
        lanes = "both lanes" if len(pace.lanes) == 2 else lanes
        logger.debug(
            "send budget: limit on %s at %.3f; estimate %s, burst %s, pace %s -> %.1f/s, ramp %s",
            lanes,
            now,
            estimate,
            pace.server_burst,
            old,
            rate,
            pace.ramp,
        )
        if old is None or rate < old * C.RATE_LOG_DROP:
            logger.info(
                "the server answered 429: now sending at most %.1f requests/s (%s; was %s)",
                rate,
                lanes,
                "unlimited" if old is None else f"{old:.1f}",
            )

    def _settle(self, pace: _Pace, origin: float, peak: float, rate: float) -> None:
        """Pace at ``rate``, growing along CUBIC back towards ``peak`` from ``origin``."""
        pace.ramp = False
        pace.w_max = peak
        pace.origin = origin
        rate = self._clamp(rate)
        pace.rate = rate
        pace.k = (max(0.0, 1.0 - rate / peak) / C.RATE_CUBIC_SCALE) ** (1 / 3)

    def _clamp(self, rate: float) -> float:
        # The floor is for the budget's own estimates; a user's ceiling wins over it.
        rate = max(C.RATE_MIN, rate)
        if self._ceiling is not None:
            rate = min(rate, self._ceiling)
        return float(rate)

    def _grow(self, pace: _Pace, now: float) -> None:
        elapsed = now - pace.origin
        if elapsed <= 0:
            return
        used = pace.used(now)
        if pace.ramp:
            rate = pace.base * 2.0 ** min(64.0, elapsed / C.RATE_RAMP_DOUBLING)
            # Doubling per round of answers, not per tick of the clock: never above
            # twice what went through over the last doubling time (over at least
            # two requests' time: one success in a quarter second is no rate).
            window = max(C.RATE_RAMP_DOUBLING, 2.0 / pace.rate if pace.rate else 0.0)
            recent = pace.count_since(now - window) / window
            capped = min(rate, max(pace.base, C.RATE_MAX_OVER_USED * recent))
            if rate > 4 * max(used, pace.base) and not any(lane.queue for lane in pace.lanes):
                # The server's limit is above what this client asks for: stop
                # ramping, at what it uses (not at what the clock would have made).
                self._settle(pace, now, capped, capped)
                return
            rate = capped
        else:
            offset = elapsed - pace.k
            rate = pace.w_max * (1 + C.RATE_CUBIC_SCALE * offset * offset * offset)
            if rate > pace.w_max:
                rate = min(rate, max(pace.w_max, C.RATE_MAX_OVER_USED * used))
                if rate >= C.RATE_RAMP_ABOVE * pace.w_max and self._beyond_credit(pace, now):
                    # Well above the last limit and not refused, for more than the
                    # server's burst can explain: it has moved (a dip is over). Ramp
                    # to find it rather than creep along CUBIC.
                    pace.ramp = True
                    pace.base = rate
                    pace.origin = now
        pace.rate = self._clamp(rate)

    def _beyond_credit(self, pace: _Pace, now: float) -> bool:
        """Whether more succeeded since the pace's origin than the last limit and a burst allow.

        Paced below a limit, a token bucket saves up credit (up to its burst)
        that lets a probe above it through for a while: not yet a sign it moved.
        """
        burst = self._burst_seen(pace, now) or 0.0
        excess = pace.count_since(pace.origin) - pace.w_max * (now - pace.origin)
        return excess > burst

    def _capacity(self, pace: _Pace, rate: float) -> float:
        if self._burst is not None:
            return float(self._burst)
        cap = rate * C.RATE_BURST_SECONDS
        seen = self._burst_seen(pace, self._clock())
        if seen is not None:
            # Half: the burst seen may include a token or two refilled meanwhile.
            cap = min(cap, seen / 2)
        return max(1.0, cap)

    # -- waiting -------------------------------------------------------------

    def _start_allows(self, now: float) -> bool:
        if self._start_at is None:
            self._start_at = now
        # Answers clock requests out; time does too, so a lost answer leaks nothing.
        allowance = (
            C.RATE_INITIAL_WINDOW * (1.0 + now - self._start_at) + C.RATE_START_GAIN * self._ok
        )
        return self._sent < allowance

    def waiting(self, task: asyncio.Task[Any]) -> bool:
        """True while ``task`` waits for the budget (its attempt is not sent yet)."""
        return task in self._waiting

    async def acquire(self, write: bool, deadline: float, sleep: Sleep) -> bool:
        """Wait until an attempt may be sent; False if not before ``deadline``.

        ``write`` attempts (POST) and reads (GET) have lanes of their own (see
        the module docstring). ``sleep`` is the call's own. Cancelled, it
        holds nothing back.
        """
        if _PREPAID.get() is self:
            _PREPAID.set(None)
            return True
        if self._closed:
            return False
        lane = self._write if write else self._read
        task = asyncio.current_task()
        if task is not None:
            self._waiting.add(task)
        try:
            if lane.pace.rate is None and self._shared.rate is None:
                allowed = await self._unpaced(lane, deadline, sleep)
                if allowed is not None:
                    return allowed
            return await self._paced(lane, deadline, sleep)
        except asyncio.CancelledError:
            if task in self._ended_by_close and withdraw_close_cancel(task):
                return False  # the client closed: this attempt is not to be sent
            raise
        finally:
            if task is not None:
                self._waiting.discard(task)
                if self._ended_by_close:
                    self._ended_by_close.discard(task)

    def close(self, ended_elsewhere: Container[asyncio.Task[Any]]) -> None:
        """The client closes: every wait for the budget ends, as not sent.

        Tasks in ``ended_elsewhere`` (calls the transport cancels itself) are
        left alone; the others (``preallocate``'s turns, waiting outside any
        call) see ``acquire`` return False. Later ``acquire`` calls too.
        """
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._waiting):
            if task is not current and task not in ended_elsewhere:
                self._ended_by_close.add(task)
                task.cancel()

    async def _unpaced(self, lane: _Lane, deadline: float, sleep: Sleep) -> bool | None:
        """Not pacing: only a pause, or the slow start, holds an attempt back.

        True when it may go, False when the deadline comes first, None when
        the lane started pacing meanwhile (then ``_paced`` decides).
        """
        while lane.pace.rate is None and self._shared.rate is None:
            now = self._clock()
            start = max(now, self._shared.paused_until, lane.pace.paused_until)
            if start > now:
                if start >= deadline:
                    return False
                epoch = self._epoch
                await sleep(start - now)
                if self._epoch != epoch:
                    continue
                now = start  # trust the sleep: an injected one may not move the clock
            if self._mode == _START and not self._start_allows(now):
                if now + C.RATE_START_RECHECK >= deadline:
                    return False
                await sleep(C.RATE_START_RECHECK)
                continue
            self._sent += 1
            if self._mode == _OPEN:
                self._regate(self._clock())
            return True
        return None

    def _own_slot(self, lane: _Lane, now: float) -> float:
        """When the lane's own pace and the pauses let its next attempt go."""
        pace = lane.pace
        slot = max(now, self._shared.paused_until, pace.paused_until)
        rate = pace.rate
        if rate is not None:
            slot = max(slot, pace.tat - (self._capacity(pace, rate) - 1) / rate)
        return slot

    def _slot(self, lane: _Lane, now: float) -> tuple[float, bool]:
        """When the lane's head may go, and whether the other lane's head goes first.

        Its own pace, then its turn at the shared one: when both heads want
        the next shared slot, reads get one in ``RATE_READ_EVERY``.
        """
        slot = self._own_slot(lane, now)
        shared = self._shared
        rate = shared.rate
        if rate is None:
            return slot, False
        turn = max(slot, shared.tat - (self._capacity(shared, rate) - 1) / rate)
        other = self._read if lane.write else self._write
        if other.queue and self._own_slot(other, now) <= turn:
            reads_owed = self._writes_in_row >= C.RATE_READ_EVERY - 1
            return turn, reads_owed == lane.write
        return turn, False

    def _take(self, lane: _Lane, at: float) -> None:
        """The lane's attempt goes at ``at``: book it on its paces."""
        now = self._clock()
        # A late departure pushes the schedule: lateness is no credit.
        pace = lane.pace
        if pace.rate is not None:
            pace.tat = max(pace.tat, at, now) + 1.0 / pace.rate
        shared = self._shared
        if shared.rate is not None:
            shared.tat = max(shared.tat, at, now) + 1.0 / shared.rate
            self._grants += 1
            if not lane.write:
                self._writes_in_row = 0
            elif self._read.queue:
                self._writes_in_row += 1
            other = self._read if lane.write else self._write
            if other.queue:
                other.queue[0].event.set()  # its head may be waiting behind this one

    def _leave(self, lane: _Lane, waiter: _Waiter) -> None:
        queue = lane.queue
        was_head = bool(queue) and queue[0] is waiter
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if was_head:
            if queue:
                queue[0].event.set()
            other = self._read if lane.write else self._write
            if other.queue:
                other.queue[0].event.set()  # it may have been waiting behind this head

    async def _paced(self, lane: _Lane, deadline: float, sleep: Sleep) -> bool:
        """Only the head of the lane's queue sleeps, until its slot; the rest wait their turn."""
        waiter: _Waiter | None = None
        queue = lane.queue
        try:
            while True:
                now = self._clock()
                slot, behind = self._slot(lane, now)
                if waiter is None:
                    if slot <= now and not queue and not behind:
                        self._take(lane, now)
                        return True
                    waiter = _Waiter()
                    queue.append(waiter)
                if queue[0] is not waiter or behind:
                    # Not first in its lane, or the other lane's head takes the
                    # next shared slot: wait to be told (only one head sleeps on it).
                    waiter.event.clear()
                    if deadline <= now:
                        return False
                    try:
                        await asyncio.wait_for(waiter.event.wait(), deadline - now)
                    except asyncio.TimeoutError:
                        return False
                    continue
                if slot >= deadline:
                    return False
                if slot > now:
                    epoch, grants = self._epoch, self._grants
                    await sleep(slot - now)
                    # A pause or a cut meanwhile, or the other lane took a shared slot:
                    # look again. Otherwise trust the sleep (an injected one may not
                    # move the clock).
                    if self._epoch != epoch or self._grants != grants or queue[0] is not waiter:
                        continue
                self._take(lane, slot)
                return True
        finally:
            if waiter is not None:
                self._leave(lane, waiter)

    @contextlib.asynccontextmanager
    async def turn(self, sleep: Sleep) -> AsyncIterator[None]:
        """Wait (without deadline) for a write's turn; the next attempt in the block uses it.

        ``preallocate`` takes each create's turn this way, so the create call's
        deadline starts when it may be sent, not while it queues.
        """
        if not self.gated or not await self.acquire(True, math.inf, sleep):
            yield
            return
        token = _PREPAID.set(self)
        try:
            yield
        finally:
            _PREPAID.reset(token)
