"""The fake's gateway rate limit: per bearer token, a token bucket or a window, answering 429."""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal, get_args

from aiohttp import web

__all__ = ["LIMITERS", "GatewayLimit", "Limiter", "check_options"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

Limiter = Literal["token-bucket", "sliding-window", "fixed-window"]
LIMITERS: tuple[str, ...] = get_args(Limiter)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_options(burst: int, retry_after: int | None, limiter: str, window: float) -> None:
    """Refuse bad gateway options (all but the rate) with a ``ValueError`` naming the option.

    The fake checks them whether or not ``rate_limit`` is set: a bad value is
    a mistake even while it is unused.
    """
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"rate_burst must be an int >= 1, got {burst!r}")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
    ):
        raise ValueError(f"retry_after must be an int >= 0 or None, got {retry_after!r}")
    if limiter not in LIMITERS:
        raise ValueError(f"rate_limiter must be one of {', '.join(LIMITERS)}, got {limiter!r}")
    if not _is_number(window) or not (window > 0 and math.isfinite(window)):
        raise ValueError(f"rate_window must be a finite number > 0, got {window!r}")


class GatewayLimit:
    """What an API gateway in front of Hathora does when an app sends too fast.

    Each bearer token (the whole ``Authorization`` header, so a missing or
    wrong one is limited too, as a gateway would) is limited on its own, by
    ``limiter``:

    - ``"token-bucket"`` (the default): a bucket of ``burst`` requests that
      refills at ``rate`` requests per second.
    - ``"sliding-window"``: at most ``rate x window`` requests (rounded down)
      admitted within any ``window`` seconds; ``burst`` is unused.
    - ``"fixed-window"``: at most ``rate x window`` requests (rounded down)
      admitted per window of ``window`` seconds, the windows aligned on the
      clock's multiples of ``window`` (a counter reset each window, so twice
      that may pass around a boundary); ``burst`` is unused.

    For the window limiters ``rate x window`` must be at least 1 (a window
    admits whole requests): a lower rate needs a longer ``window``.

    A request over the limit is answered ``429`` with ``{"message": ...}``
    and a ``Retry-After`` of ``retry_after`` whole seconds (no header when
    None), before it reaches the API, and does not count towards the limit.
    ``clock`` is the fake's clock. ``rate`` may be changed while serving;
    the new value is checked as at construction. Raises ``ValueError`` for
    a bad option, naming it as ``FakeHathora`` does (``rate_limit``,
    ``rate_burst``, ...).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        retry_after: int | None,
        clock: Callable[[], float],
        limiter: Limiter = "token-bucket",
        window: float = 1.0,
    ) -> None:
        check_options(burst, retry_after, limiter, window)
        self.burst = burst
        self.retry_after = retry_after
        self.limiter: Limiter = limiter
        self.window = float(window)
        self.rate = rate  # checked by its setter
        self._clock = clock
        # token-bucket: token -> (tokens left, when last refilled)
        self._buckets: dict[str, tuple[float, float]] = {}
        # sliding-window: token -> admission times within the last window
        self._admitted: dict[str, deque[float]] = {}
        # fixed-window: token -> (window number, admitted in it)
        self._counts: dict[str, tuple[int, int]] = {}
        self.refused = 0
        """Requests answered 429 so far."""
        self.admitted = 0
        """Requests let through so far."""
        body = json.dumps({"message": "Too many requests: rate limit exceeded"}).encode()
        self._body = body

    @property
    def rate(self) -> float:
        """Requests per second (a float > 0); may be set while serving."""
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        if not _is_number(rate) or not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate_limit must be a finite number > 0, got {rate!r}")
        if self.limiter != "token-bucket" and rate * self.window < 1 - 1e-9:
            raise ValueError(
                f"rate_limit x rate_window must be at least 1 for the {self.limiter} limiter "
                f"(a window admits whole requests), got {rate!r} x {self.window!r}: "
                "use a longer rate_window"
            )
        self._rate = float(rate)

    @property
    def per_window(self) -> int:
        """Requests a window admits (the window limiters)."""
        return math.floor(self.rate * self.window + 1e-9)  # >= 1: see the rate's setter

    def admit(self, key: str) -> bool:
        """Count a request of ``key``; False when it is over the limit (not counted then)."""
        now = self._clock()
        if self.limiter == "token-bucket":
            allowed = self._take_token(key, now)
        elif self.limiter == "sliding-window":
            times = self._admitted.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            allowed = len(times) < self.per_window
            if allowed:
                times.append(now)
        else:
            number = math.floor(now / self.window)
            current, taken = self._counts.get(key, (number, 0))
            if current != number:
                taken = 0
            allowed = taken < self.per_window
            self._counts[key] = (number, taken + allowed)
        if allowed:
            self.admitted += 1
        else:
            self.refused += 1
        return allowed

    def _take_token(self, key: str, now: float) -> bool:
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0 - 1e-9:  # a token due now is there, float rounding or not
            self._buckets[key] = (tokens - 1.0, now)
            return True
        self._buckets[key] = (tokens, now)
        return False

    def refusal(self) -> web.Response:
        """The 429 answer."""
        response = web.Response(body=self._body, status=429, content_type="application/json")
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """An aiohttp middleware answering 429 in front of every route."""
        if self.admit(request.headers.get("Authorization", "")):
            return await handler(request)
        return self.refusal()
