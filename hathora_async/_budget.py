"""The send budget: how fast one client (and its ``with_options`` siblings) sends.

Every attempt of every call waits for the budget before it is sent, and
reports its answer after: a success, or a 429 (the server refused to act
because the app sends too fast). One budget per ``Transport``, so siblings
share it, and so do ``preallocate``, the waits and ``WarmPool``.

The approach follows botocore's "adaptive" retry mode (a client-side token
bucket whose fill rate follows throttling answers, and CUBIC, TCP's
congestion control, to probe back up; see botocore/retries/adaptive.py),
adapted to short, bursty jobs against a gateway that answers
``Retry-After``, where each 429 costs a pause of the whole client:

1. Before the server has said anything, at most ``RATE_INITIAL_WINDOW``
   requests go at once (plus as many per second) and each success lets
   ``RATE_START_GAIN`` more go
   (TCP's slow start, clocked by answers): a client that is never refused
   stops gating after ``RATE_OPEN_AFTER`` successes, and from then on the
   budget costs one attribute read before each attempt, and one call after
   each success (which notes its time: a first 429 is read against them).
2. A 429 pauses everyone until its ``Retry-After`` (capped by the retry
   policy's ``max_retry_after``) and switches to pacing. The server's rate is
   estimated from the successes it let through since its bucket was last
   full (after a pause, or the previous 429), less the burst it allowed at
   first: for a token-bucket gateway of rate R and burst B, successes over
   the window ending at the 429 are B + R x window, so the best window gives
   R. The client then paces ``RATE_MARGIN`` below that. A first 429 in a
   burst says nothing about R: the client then doubles its pace every
   ``RATE_RAMP_DOUBLING`` seconds from twice that burst per second until the
   next 429, which does.
3. While answers succeed the pace grows along a CUBIC curve, relative to the
   rate at the last 429 (flat near it, then probing above it), never above
   ``max_per_second`` nor above ``RATE_MAX_OVER_USED`` times the rate the
   client actually uses.

Pacing is a GCRA schedule (a virtual time per request, equivalent to a token
bucket) served head of line: only the first waiter sleeps, with the call's own
sleep function, until its slot, then hands the head to the next, so a new pace
or a pause applies at once and nothing is booked ahead. ``close()``,
cancellation and an injected sleep apply to the wait as to any pause between
retries. Writes (POST: creates, stops) are served before reads (GET: polls and
lists). All constants are in ``_constants``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs

from . import _constants as C
from .errors import HathoraTimeoutError

__all__ = ["RateLimit", "RateLimitState", "SendBudget", "not_sent"]

logger = logging.getLogger(C.LOGGER_NAME)

Sleep = Callable[[float], Awaitable[None]]

_OPEN = "open"  # nothing counted: no limit seen (or none wanted)
_START = "start"  # slow start: answers clock the requests out
_PACED = "paced"  # a pace in requests per second

# A budget turn already taken for the next attempt of this task (see ``turn``).
_PREPAID: contextvars.ContextVar[SendBudget | None] = contextvars.ContextVar(
    "hathora_async_prepaid", default=None
)


def _check_rate(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number > 0 or None, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _check_burst(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be an int >= 1 or None, got {value!r}")


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
    - ``adaptive``: slow down for everyone when the server answers 429, and
      probe back up while calls succeed (True, the default). False keeps
      the pace at ``max_per_second`` (or unlimited).

    Whatever the settings, a 429's ``Retry-After`` pauses every call of the
    client until then (at most the retry policy's ``max_retry_after``), and
    a 429 (a refusal: the server did nothing) does not use up a call's
    retry ``attempts``: it is retried until the call's deadline, unless the
    policy is ``RetryPolicy.none()``. ``HathoraClient(rate_limit=None)``
    turns the budget off: each call then retries on its own, as before.
    """

    max_per_second: float | None = attrs.field(default=None, validator=_check_rate)
    burst: int | None = attrs.field(default=None, validator=_check_burst)
    adaptive: bool = True


@attrs.frozen
class RateLimitState:
    """What the client's send budget looks like now (``client.rate_limit_state``).

    ``rate``: the pace in requests per second, None while not pacing (no 429
    seen and no ``max_per_second``). ``throttled``: 429 answers seen since the
    client was made. ``paused_until``: when a ``Retry-After`` pause ends, as a
    reading of the client's clock (``time.monotonic`` unless replaced), None
    when not paused. ``max_per_second`` and ``adaptive`` echo the settings.
    """

    rate: float | None
    throttled: int
    paused_until: float | None
    max_per_second: float | None
    adaptive: bool


class _Waiter:
    """One attempt queued for a paced budget; its event says it is now first."""

    __slots__ = ("event", "write")

    def __init__(self, write: bool) -> None:
        self.write = write
        self.event = asyncio.Event()


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
        self._paused_until = -math.inf
        self._epoch = 0  # bumped when sleeping waiters must book again
        self._history: deque[float] = deque(maxlen=C.RATE_HISTORY)  # success times
        self._server_burst: float | None = None
        self._storm_at: float | None = None
        self._settled = -math.inf  # 429s before this belong to the last cut
        self._burst_count = 0
        self._full = True  # the server's bucket, as far as estimates go
        self._full_since = -math.inf
        self._rate: float | None = None
        self._ramp = False
        self._base = 0.0
        self._w_max = 0.0
        self._k = 0.0
        self._origin = 0.0
        self._tat = -math.inf  # GCRA: the virtual time of the next free slot
        self._writes: deque[_Waiter] = deque()
        self._reads: deque[_Waiter] = deque()
        self._waiting: set[asyncio.Task[Any]] = set()
        self._sent = 0
        self._ok = 0
        self._start_at: float | None = None
        self._second = -math.inf
        self._this_second = 0
        self._last_second = 0
        self._mode = _OPEN
        if self._ceiling is not None:
            self._mode = _PACED
            self._settle(clock(), self._ceiling, self._ceiling)
        elif self._adaptive:
            self._mode = _START
        self.gated = self._mode != _OPEN
        """True when an attempt must call ``acquire`` before it is sent."""

    # -- reading it ----------------------------------------------------------

    def state(self) -> RateLimitState:
        """A snapshot for ``client.rate_limit_state``."""
        now = self._clock()
        return RateLimitState(
            rate=self._rate,
            throttled=self.throttled,
            paused_until=self._paused_until if self._paused_until > now else None,
            max_per_second=self._ceiling,
            adaptive=self._adaptive,
        )

    # -- answers -------------------------------------------------------------

    def passed(self, ticket: int) -> None:
        """An attempt sent when ``generation`` was ``ticket`` succeeded."""
        if not self.enabled:
            return
        now = self._clock()
        self._history.append(now)
        if ticket == 0 < self.generation and self._server_burst is None:
            # Sent before the first 429, answered after it: part of that burst.
            assert self._storm_at is not None
            if now < self._storm_at + C.RATE_STORM_WINDOW:
                self._burst_count += 1
        if now - self._second >= 1.0:
            self._last_second = self._this_second if now - self._second < 2.0 else 0
            self._second = now
            self._this_second = 0
        self._this_second += 1
        if self._mode == _START:
            self._ok += 1
            if self._ok >= C.RATE_OPEN_AFTER:
                self._mode = _OPEN
                self.gated = now < self._paused_until
        elif self._mode == _PACED and self._adaptive:
            self._grow(now)

    def refused(self, ticket: int, retry_after: float | None, cap: float) -> None:
        """An attempt sent when ``generation`` was ``ticket`` was answered 429.

        ``retry_after`` (seconds, or None) pauses every call, capped at ``cap``.
        """
        if not self.enabled:
            return
        now = self._clock()
        self.throttled += 1
        until = now + min(retry_after, cap) if retry_after else -math.inf
        # One cut per episode: a 429 to a request sent before the last cut, or
        # just after it (the server's bucket was still empty), is old news.
        if self._adaptive and ticket == self.generation and now >= self._settled:
            self.generation += 1
            self._cut(now, max(now, until, self._paused_until))
        if until > self._paused_until:
            self._paused_until = until
            # Waiting lets the server's bucket fill up: estimates count from here.
            self._full_since = max(self._full_since, until)
            self._full = True
            self._tat = until
            self._epoch += 1
            self.gated = True

    # -- adapting ------------------------------------------------------------

    def _count_since(self, since: float) -> int:
        count = 0
        for when in reversed(self._history):
            if when < since:
                break
            count += 1
        return count

    def _burst_seen(self, now: float) -> float | None:
        """What the server let through at once: the successes around the first 429."""
        if self._server_burst is None and self._storm_at is not None:
            # Answers to one burst arrive in any order: those sent before the
            # 429 and answered just after it count too (see ``passed``).
            count = float(max(1, self._burst_count))
            if now >= self._storm_at + C.RATE_STORM_WINDOW:
                self._server_burst = count
            return count
        return self._server_burst

    def _estimate(self, now: float) -> float | None:
        """The server's rate from the successes since its bucket was last full."""
        # The server's bucket was full after a pause, empty right after a 429.
        burst = (self._burst_seen(now) or 0.0) if self._full else 0.0
        best: float | None = None
        for count, when in enumerate(reversed(self._history), 1):
            if when < self._full_since:
                break
            span = now - when
            if span >= C.RATE_ESTIMATE_MIN_WINDOW:
                rate = (count - burst) / span
                if best is None or rate > best:
                    best = rate
        # Whatever the windows say, the server took the last second's successes.
        floor = (self._count_since(now - 1.0) - burst) / 1.0
        if best is not None and floor > best:
            best = floor
        return best if best is not None and best >= C.RATE_MIN else None

    def _cut(self, now: float, resume: float) -> None:
        old = self._rate
        if self._storm_at is None:
            self._storm_at = now
            self._burst_count = self._count_since(now - C.RATE_STORM_WINDOW)
        estimate = self._estimate(now)
        if old is None or self._ramp:
            if estimate is not None:
                self._settle(resume, estimate, estimate * (1 - C.RATE_MARGIN))
            elif old is None:
                self._ramp = True
                burst = self._burst_seen(now) or 1.0
                self._base = max(C.RATE_RAMP_MIN_BASE, 2.0 * burst)
                self._origin = resume
                self._rate = self._clamp(self._base)
            else:
                self._settle(resume, old, old * C.RATE_BETA)
        elif estimate is not None:
            peak = min(estimate, old)
            self._settle(resume, peak, peak * (1 - C.RATE_MARGIN))
        else:
            self._settle(resume, old, old * C.RATE_BETA)
        self._mode = _PACED
        self.gated = True
        self._full_since = max(self._full_since, now)
        self._full = False
        # No burst right after a 429, and nothing until the server's bucket
        # has had time for a token (a pause, if any, comes on top).
        rate = self._rate
        assert rate is not None
        self._tat = now + self._capacity(rate) / rate
        self._settled = now + C.RATE_STORM_WINDOW
        self._epoch += 1
        logger.debug(
            "send budget: 429 at %.3f; estimate %s, burst %s, pace %s -> %.1f/s, ramp %s",
            now,
            estimate,
            self._server_burst,
            old,
            rate,
            self._ramp,
        )
        if old is None or rate < old * C.RATE_LOG_DROP:
            logger.info(
                "the server answered 429: now sending at most %.1f requests/s (was %s)",
                rate,
                "unlimited" if old is None else f"{old:.1f}",
            )

    def _settle(self, origin: float, peak: float, rate: float) -> None:
        """Pace at ``rate``, growing along CUBIC back towards ``peak`` from ``origin``."""
        self._ramp = False
        self._w_max = peak
        self._origin = origin
        rate = self._clamp(rate)
        self._rate = rate
        self._k = (max(0.0, 1.0 - rate / peak) / C.RATE_CUBIC_SCALE) ** (1 / 3)

    def _clamp(self, rate: float) -> float:
        if self._ceiling is not None:
            rate = min(rate, self._ceiling)
        return max(C.RATE_MIN, rate)

    def _grow(self, now: float) -> None:
        elapsed = now - self._origin
        if elapsed <= 0:
            return
        used = max(self._last_second, self._this_second)
        if self._ramp:
            rate = self._base * 2.0 ** min(64.0, elapsed / C.RATE_RAMP_DOUBLING)
            if rate > 4 * max(used, self._base) and self._head() is None:
                # The server's limit is above what this client asks for: stop ramping.
                self._settle(now, rate, rate)
                return
        else:
            offset = elapsed - self._k
            rate = self._w_max * (1 + C.RATE_CUBIC_SCALE * offset * offset * offset)
            if rate > self._w_max:
                rate = min(rate, max(self._w_max, C.RATE_MAX_OVER_USED * used))
        self._rate = self._clamp(rate)

    def _capacity(self, rate: float) -> float:
        if self._burst is not None:
            return float(self._burst)
        cap = rate * C.RATE_BURST_SECONDS
        seen = self._burst_seen(self._clock())
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

        ``write`` attempts (POST) go before reads. ``sleep`` is the call's own.
        Cancelled, it holds nothing back.
        """
        if _PREPAID.get() is self:
            _PREPAID.set(None)
            return True
        task = asyncio.current_task()
        if task is not None:
            self._waiting.add(task)
        try:
            if self._rate is None:
                allowed = await self._unpaced(deadline, sleep)
                if allowed is not None:
                    return allowed
            return await self._paced(write, deadline, sleep)
        finally:
            if task is not None:
                self._waiting.discard(task)

    async def _unpaced(self, deadline: float, sleep: Sleep) -> bool | None:
        """Not pacing: only a pause, or the slow start, holds an attempt back.

        True when it may go, False when the deadline comes first, None when
        the budget started pacing meanwhile (then ``_paced`` decides).
        """
        while self._rate is None:
            now = self._clock()
            start = max(now, self._paused_until)
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
                self.gated = self._clock() < self._paused_until
            return True
        return None

    def _head(self) -> _Waiter | None:
        if self._writes:
            return self._writes[0]
        return self._reads[0] if self._reads else None

    def _leave(self, waiter: _Waiter) -> None:
        was_head = self._head() is waiter
        queue = self._writes if waiter.write else self._reads
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        head = self._head()
        if was_head and head is not None:
            head.event.set()

    async def _paced(self, write: bool, deadline: float, sleep: Sleep) -> bool:
        """Only the head of the queue sleeps, until its slot; the rest wait their turn."""
        waiter: _Waiter | None = None
        try:
            while True:
                now = self._clock()
                rate = self._rate
                assert rate is not None
                interval = 1.0 / rate
                slot = max(
                    now, self._paused_until, self._tat - (self._capacity(rate) - 1) * interval
                )
                if waiter is None:
                    if slot <= now and self._head() is None:
                        self._tat = max(self._tat, now) + interval
                        return True
                    waiter = _Waiter(write)
                    (self._writes if write else self._reads).append(waiter)
                if self._head() is not waiter:
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
                    epoch = self._epoch
                    await sleep(slot - now)
                    # A pause or a cut meanwhile, or a write now first: look again.
                    if self._epoch != epoch or self._head() is not waiter:
                        continue
                # A late departure pushes the schedule: lateness is no credit.
                self._tat = max(self._tat, slot, self._clock()) + interval
                return True
        finally:
            if waiter is not None:
                self._leave(waiter)

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
